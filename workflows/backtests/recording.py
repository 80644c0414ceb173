"""One stored event replayed through the walk in recording mode, and the tally of many.

The walk is the executor's (`workflows/engine/walk.py`); the policy is the builder's test run
(`Recorder`: records in memory, actions with side effects are not executed and later steps see
their sample output, read-only actions run, delays are recorded and not waited), plus the money
each action step would move (`Action.moves_money`, which reads only). Each event's walk happens
in a transaction that is rolled back, so nothing is written to billing and nothing is queued
or sent.

Whether an event would start the workflow is the dispatcher's own answer
(`dispatch.trigger_accepts`, then `dispatch.recursion_error`), asked of the event as stored,
with the run context a run of it would start with (`walk.start_context` of its envelope).

The report's keys (docs/workflows.md, "Backtests"):
* `paths`: a branch decision counts under its path's name ("Europe"); when two branches have
  paths of the same name, under "<branch id>/<name>"; a branch that took no path under
  "<branch id>/no path". A run that stopped at a false condition counts under
  "stopped at <condition id>", one that would fail under "failed at <step id>" (a run cut short
  by the recursion guard: "failed at start: recursion"). A run counts once per decision it
  takes, so a run through two branches counts twice.
* `steps`: per step id, `would_run` (the times it would run and not fail, each loop iteration
  once; a condition counts whether true or false, a simulated action and a skipped system step
  count) and `amounts` ({currency: minor units}).
* `samples`: up to `SAMPLES_PER_ROUTE` events per route (the run's path keys in order, or
  "straight through"), `MAX_SAMPLES` in all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from billing.events import event_envelope
from billing.models import Event
from billing.snapshots import unix
from workflows.actions.registry import Action, ActionContext
from workflows.builder.test_run import Recorder, WalkStopped
from workflows.definition import walk as definition_walk
from workflows.engine.dispatch import recursion_error, trigger_accepts
from workflows.engine.retry import error_details
from workflows.engine.walk import Walk, Work, start_context
from workflows.models import Workflow, WorkflowVersion

SAMPLES_PER_ROUTE = 5
MAX_SAMPLES = 25
STRAIGHT_THROUGH = "straight through"


class _Rollback(Exception):
    pass


class MoneyRecorder(Recorder):
    """The test run's recording policy, adding up what each action step would move."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(for_real=False, **kwargs)
        self.moved: list[tuple[str, str, int]] = []  # (step id, currency, amount)

    def act(
        self, step_id: str, iteration: str, template: Any, work: Work, action: Action | None
    ) -> Any:
        output = super().act(step_id, iteration, template, work, action)
        entry = self.result.steps[step_id]
        if action is None or action.moves_money is None or entry["status"] == "skipped":
            return output
        params = entry.get("params")
        try:
            # Read before the effect, as a run's guardrail reads it: the refund's charge,
            # the invoice's amount due. A step that cannot say would fail in a run too.
            moved = action.moves_money(
                ActionContext(environment=self.environment, dry_run=True), params
            )
        except Exception as exc:
            self._failed(step_id, iteration, error_details(exc, action), params)
        self.moved.extend((step_id, currency, amount) for currency, amount in moved)
        return output


def path_keys(definition: dict) -> dict[str, dict[str | None, str]]:
    """{branch id: {path name: report key}}: the name alone unless another branch has a path
    of the same name; None (no path taken) is always "<branch id>/no path"."""
    branches = [step for step in definition_walk.steps(definition) if step.get("type") == "branch"]
    names = Counter(
        name for step in branches for name in {p.get("name", "") for p in step.get("paths") or []}
    )
    keys: dict[str, dict[str | None, str]] = {}
    for step in branches:
        own = {None: f"{step['id']}/no path"}
        for path in step.get("paths") or []:
            name = path.get("name", "")
            own[name] = name if names[name] == 1 else f"{step['id']}/{name}"
        keys[step["id"]] = own
    return keys


@dataclass
class Replay:
    """What a run of one event would do."""

    route: list[str]  # its path keys, in order
    ran: Counter  # step id -> times it would run
    moved: list[tuple[str, str, int]]


def replay(*, event: Event, workflow: Workflow, definition: dict, keys: dict) -> Replay | None:
    """The run `event` would start, recorded; None when the trigger would not take it."""
    trigger = definition.get("trigger") or {}
    envelope = event_envelope(event)
    accepted = trigger_accepts(
        accounts=trigger.get("accounts") or WorkflowVersion.AccountScope.PLATFORM,
        conditions=trigger.get("conditions"),
        event=event,
        envelope=envelope,
        workflow_id=workflow.pk,
    )
    if not accepted:
        return None
    if recursion_error(workflow, list(event.cause_chain or [])) is not None:
        return Replay(route=["failed at start: recursion"], ran=Counter(), moved=[])
    context = start_context(trigger=envelope, run_id=None, workflow_id=workflow.pk)
    recorder = MoneyRecorder(environment=event.environment, context=context)
    result = recorder.result
    try:
        with transaction.atomic():
            try:
                Walk(recorder, context, result.path).steps(definition.get("steps") or [], "")
            except WalkStopped:
                pass
            raise _Rollback
    except _Rollback:
        pass
    route = [keys[entry["step"]][entry["branch"]] for entry in result.path if "branch" in entry]
    ran = Counter()
    for step_id, entry in result.steps.items():
        ran[step_id] = entry["iterations"] - (1 if entry.get("status") == "failed" else 0)
    if result.status == "failed":
        route.append(f"failed at {result.error['step']}")
    elif result.stop_reason:
        stopped = next(e["step"] for e in reversed(result.path) if e.get("result") is False)
        route.append(f"stopped at {stopped}")
    return Replay(route=route, ran=ran, moved=recorder.moved)


@dataclass
class Tally:
    """A chunk's counts, added to the backtest's totals when the chunk is committed."""

    scanned: int = 0
    would_start: int = 0
    paths: Counter = field(default_factory=Counter)
    ran: Counter = field(default_factory=Counter)
    amounts: dict[str, Counter] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)

    def add(self, event: Event, run: Replay | None, samples: list[dict]) -> None:
        """Count `event` (`run`: what it would start); `samples`: those already kept."""
        self.scanned += 1
        if run is None:
            return
        self.would_start += 1
        self.paths.update(run.route)
        self.ran.update(run.ran)
        for step_id, currency, amount in run.moved:
            self.amounts.setdefault(step_id, Counter())[currency] += amount
        route = " → ".join(run.route) or STRAIGHT_THROUGH
        taken = [s for s in samples + self.samples if s["route"] == route]
        if len(samples) + len(self.samples) < MAX_SAMPLES and len(taken) < SAMPLES_PER_ROUTE:
            self.samples.append(
                {
                    "event": event.pk,
                    "created": unix(event.created),
                    "route": route,
                    "path": run.route,
                    "steps": sorted(step for step, n in run.ran.items() if n),
                }
            )

    def merged_into(self, paths: dict, steps: dict, samples: list) -> tuple[dict, dict, list]:
        """The totals with this chunk added (new dicts; the stored JSON is not changed)."""
        paths = dict(Counter(paths) + self.paths)
        steps = {step_id: dict(entry) for step_id, entry in steps.items()}
        for step_id in set(self.ran) | set(self.amounts):
            entry = steps.setdefault(step_id, {"would_run": 0, "amounts": {}})
            entry["would_run"] += self.ran.get(step_id, 0)
            total = Counter(entry["amounts"])
            total.update(self.amounts.get(step_id, {}))
            entry["amounts"] = dict(total)
        return paths, steps, samples + self.samples
