"""Test runs from the builder: walk a draft against a past event or sample input.

A dry run evaluates conditions and branches and runs read-only actions (`side_effects=False`,
such as retrieve and list); actions with side effects are not executed, only shown with the
params they would get. The whole walk happens inside a transaction that is rolled back, so a
dry run never changes data, and nothing is queued or sent (on-commit hooks of a rolled-back
transaction never fire). No Run row is written: a test run is not part of the run history.

In a sandbox environment `for_real=True` executes every action, side effects included, as a
run would; each step's idempotency key is unique to that test run.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from billing.models import Environment
from workflows.actions import registry
from workflows.actions.registry import ActionContext, ActionError
from workflows.engine.conditions import evaluate
from workflows.engine.templating import TemplateError, resolve

SIMULATED = "simulated"


class _Stop(Exception):
    """The walk ends here (a false condition, or a failed step)."""


class _Rollback(Exception):
    pass


@dataclass
class DryRunResult:
    # step id -> what the canvas draws (`canvas_nodes(..., step_runs=result.steps)`)
    steps: dict[str, dict] = field(default_factory=dict)
    path: list[dict] = field(default_factory=list)
    status: str = "succeeded"
    stop_reason: str = ""
    error: dict | None = None
    for_real: bool = False


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


class _Walk:
    def __init__(self, *, environment: Environment, context: dict, for_real: bool) -> None:
        self.environment = environment
        self.context = context
        self.for_real = for_real
        self.result = DryRunResult(for_real=for_real)
        self.key = f"test-{uuid.uuid4().hex[:12]}"

    def record(self, step_id: str, iteration: str, **data: Any) -> dict:
        entry = self.result.steps.setdefault(step_id, {"attempts": 0, "iterations": 0})
        entry.update(data)
        entry["attempts"] = 1
        entry["iterations"] += 1
        entry["iteration"] = iteration
        for key in ("params", "output"):
            if key in data:
                entry[f"{key}_json"] = _json(data[key])
                entry[f"show_{key}"] = True
        return entry

    def fail(self, step_id: str, iteration: str, error: dict, **data: Any) -> None:
        self.record(step_id, iteration, status="failed", error=error, **data)
        self.result.status = "failed"
        self.result.error = {"step": step_id, **error}
        raise _Stop

    def steps(self, steps: list, iteration: str) -> None:
        for step in steps:
            getattr(self, f"step_{step.get('type')}", self.step_unknown)(step, iteration)

    def step_unknown(self, step: dict, iteration: str) -> None:
        message = f"Unknown step type {step.get('type')!r}."
        self.fail(step.get("id", ""), iteration, {"type": "definition_error", "message": message})

    def _ctx(self, step_id: str, iteration: str) -> ActionContext:
        return ActionContext(
            environment=self.environment,
            idempotency_key=f"{self.key}/{step_id}/{iteration}",
            dry_run=not self.for_real,
        )

    def _resolve(self, step_id: str, iteration: str, template: Any) -> Any:
        try:
            return resolve(template, self.context)
        except TemplateError as exc:
            self.fail(step_id, iteration, {"type": "template_error", "message": str(exc)})

    def _call(self, step_id: str, iteration: str, action, params: Any) -> Any:
        try:
            return action.execute(self._ctx(step_id, iteration), params)
        except ActionError as exc:
            self.fail(step_id, iteration, exc.as_dict(), params=params)
        except Exception as exc:  # a custom action's bug shows on its card, not as a 500
            details = {"type": type(exc).__name__, "message": str(exc)}
            self.fail(step_id, iteration, details, params=params)

    def step_action(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        action = registry.get(step.get("action", ""))
        if action is None:
            message = f"Step '{step_id}' uses unknown action {step.get('action')!r}."
            self.fail(step_id, iteration, {"type": "definition_error", "message": message})
        params = self._resolve(step_id, iteration, step.get("params") or {})
        if action.side_effects and not self.for_real:
            # Later steps may read this output: they see the action's sample output.
            output = action.output
            self.record(
                step_id,
                iteration,
                status=SIMULATED,
                params=params,
                note="Not executed: this action changes data or sends something. "
                "These are the params it would get.",
            )
        else:
            output = self._call(step_id, iteration, action, params)
            self.record(step_id, iteration, status="succeeded", params=params, output=output)
        self.context["steps"][step_id] = {"output": output}

    def step_condition(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        try:
            result = evaluate(step.get("condition"), self.context)
        except Exception as exc:
            self.fail(step_id, iteration, {"type": type(exc).__name__, "message": str(exc)})
        self.record(step_id, iteration, status="succeeded", output={"result": result})
        self.result.path.append({"step": step_id, "iteration": iteration, "result": result})
        self.context["steps"][step_id] = {"output": {"result": result}}
        if not result:
            self.result.stop_reason = (
                f"Condition step '{step_id}' was false; the steps after it were not run."
            )
            raise _Stop

    def step_branch(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        paths = step.get("paths") or []
        chosen = None
        try:
            for index, path in enumerate(paths):
                if path.get("when") is None or evaluate(path["when"], self.context):
                    chosen = index
                    break
        except Exception as exc:
            self.fail(step_id, iteration, {"type": type(exc).__name__, "message": str(exc)})
        name = paths[chosen].get("name") if chosen is not None else None
        output = {"index": chosen, "path": name}
        self.record(step_id, iteration, status="succeeded", output=output, branch_chosen=name or "")
        self.result.path.append({"step": step_id, "iteration": iteration, "branch": name})
        self.context["steps"][step_id] = {"output": output}
        if chosen is not None:
            self.steps(paths[chosen].get("steps") or [], iteration)

    def step_foreach(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        cap = int(step.get("max_items") or settings.BILLFLOW["FOREACH_MAX_ITEMS"])
        if step.get("action"):
            action = registry.get(step["action"])
            if action is None:
                message = f"Step '{step_id}' uses unknown action {step['action']!r}."
                self.fail(step_id, iteration, {"type": "definition_error", "message": message})
            params = self._resolve(step_id, iteration, step.get("params") or {})
            items: list = []
            request = dict(params)
            while True:
                page = self._call(step_id, iteration, action, request) or {}
                data = page.get("data") or []
                items.extend(data)
                if len(items) > cap or not page.get("has_more") or not data:
                    break
                last = data[-1]
                request = {
                    **params,
                    "starting_after": last.get("id") if isinstance(last, dict) else last,
                }
        else:
            params = self._resolve(step_id, iteration, step.get("items"))
            items = params if isinstance(params, list) else None
            if items is None:
                message = (
                    f"Loop '{step_id}' needs a list of items; its items resolved to "
                    f"{type(params).__name__}."
                )
                self.fail(step_id, iteration, {"type": "foreach_items", "message": message})
        if len(items) > cap:
            message = f"Loop '{step_id}' has {len(items)} items, more than its cap of {cap}."
            self.fail(step_id, iteration, {"type": "foreach_cap", "message": message})
        output = {"items": items, "count": len(items)}
        self.record(step_id, iteration, status="succeeded", params=params, output=output)
        self.context["steps"][step_id] = {"output": output}
        outer = self.context.get("item")
        for index, item in enumerate(items):
            self.context["item"] = item
            self.steps(step.get("steps") or [], f"{iteration}.{index}" if iteration else str(index))
        if outer is None:
            self.context.pop("item", None)
        else:
            self.context["item"] = outer


def workflow_test_run(
    *,
    workflow_id: int | None,
    definition: dict,
    trigger: dict,
    environment: Environment,
    for_real: bool = False,
) -> DryRunResult:
    """Walk `definition` with `trigger` as the run context's trigger (an event envelope, or
    {"input": …} for a manual workflow). `for_real` is refused outside a sandbox."""
    if for_real and environment.kind != Environment.Kind.SANDBOX:
        raise ValueError("Only a sandbox may execute a test run for real")
    context = {"trigger": trigger, "steps": {}, "run": {"id": None, "workflow": workflow_id}}
    walk = _Walk(environment=environment, context=context, for_real=for_real)
    try:
        with transaction.atomic():
            try:
                walk.steps(definition.get("steps") or [], "")
            except _Stop:
                pass
            if not for_real:
                raise _Rollback
    except _Rollback:
        pass
    return walk.result
