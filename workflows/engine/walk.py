"""The walk of a workflow's steps: the one place that knows what steps mean.

Conditions, branches, loops (their caps and the run's total of iterations), dynamic fields,
the order of the steps and the context each step sees are decided here, and only here. Two
policies drive it:

* the executor (`executor.py`): records in the database under the run's lease, one
  transaction per step, retries, replay of steps a previous execution finished;
* the builder's test run (`workflows/builder/test_run.py`): records in memory, simulates
  actions with side effects (or executes them, in a sandbox, when the operator asks), rolls back.

So a test run and a real run of the same definition and trigger cannot drift: they take the
same path, make the same decisions and stop at the same step with the same error.

The walk asks its policy through seven methods (`Policy`). An action's work (`Work`) is handed
to the policy, which resolves the step's params in the context and calls the work when and
how it decides (in a fenced transaction, in a savepoint, retried, or not at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from django.conf import settings

from workflows.actions import registry
from workflows.actions.registry import Action, ActionContext, ActionError
from workflows.engine.conditions import evaluate
from workflows.engine.retry import error_details

# An approval step's keys, handed to the policy as its template.
APPROVAL_KEYS = ("approvers", "message", "timeout_hours", "on_timeout")

# What an action step does with its resolved params: returns the step's output.
Work = Callable[[ActionContext, Any], dict]


class Recorded(Protocol):
    """A step a previous execution finished: its output is put back into the context."""

    output: Any


class Policy(Protocol):
    def replayed(self, step_id: str, iteration: str) -> Recorded | None:
        """The step's finished record, if it need not run again (a restart, a takeover)."""

    def decided(self, step_id: str, iteration: str, output: dict, branch: str) -> None:
        """Record a condition's result or a branch's choice."""

    def act(
        self, step_id: str, iteration: str, template: Any, work: Work, action: Action | None
    ) -> Any:
        """Resolve `template` in the context and do `work` with it; returns the output or
        ends the walk (a failure, by calling `fail`, or the run handed back for later)."""

    def wait(self, step_id: str, iteration: str, template: dict) -> Any:
        """A delay step: resolve `template` ({"seconds"} or {"until"}) and wait until then
        (the executor gives the run back as `waiting`; a test run records it and goes on);
        returns the step's output once the time has come."""

    def approve(self, step_id: str, iteration: str, template: dict) -> Any:
        """An approval step: resolve `template` (approvers, message, timeout_hours,
        on_timeout) and ask for a decision (the executor gives the run back as `waiting`
        until someone decides or the time runs out; a test run records it and goes on as if
        approved); returns the step's output once approved, fails the step once rejected."""

    def fail(self, step_id: str, iteration: str, details: dict) -> NoReturn:
        """The step cannot run (unknown action or step type, a condition that cannot be
        evaluated): record the failure and end the walk."""

    def stop(self, step: dict, iteration: str, reason: str) -> NoReturn:
        """A condition step was false: the run ends as succeeded, the steps after it not run."""


def start_context(*, trigger: dict, run_id: int | None, workflow_id: int | None) -> dict:
    """The context a walk starts with (step outputs are added as they succeed): the same for
    a run, a test run and a backtest, so a dynamic field means the same in each."""
    return {"trigger": trigger, "steps": {}, "run": {"id": run_id, "workflow": workflow_id}}


def unknown_action(step_id: str, key: object) -> dict:
    return {"type": "definition_error", "message": f"Step '{step_id}' uses unknown action {key!r}."}


class Walk:
    """One walk of a definition. `context` and `path` are shared with the policy, which
    reads them (the executor saves the path with its lease writes)."""

    __slots__ = ("policy", "context", "path", "iterations")

    def __init__(self, policy: Policy, context: dict, path: list | None = None) -> None:
        self.policy = policy
        self.context = context
        # The decisions taken, in order: {"step", "iteration", "result" | "branch"}.
        self.path = path if path is not None else []
        # Loop iterations walked so far, nested loops included (see `_check_total`).
        self.iterations = 0

    def steps(self, steps: list[dict], iteration: str) -> None:
        for step in steps:
            kind = step.get("type")
            if kind == "action":
                self._action(step, iteration)
            elif kind == "condition":
                self._condition(step, iteration)
            elif kind == "branch":
                self._branch(step, iteration)
            elif kind == "foreach":
                self._foreach(step, iteration)
            elif kind == "delay":
                self._delay(step, iteration)
            elif kind == "approval":
                self._approval(step, iteration)
            else:
                details = {"type": "definition_error", "message": f"Unknown step type {kind!r}."}
                self.policy.fail(step["id"], iteration, details)

    def _set_output(self, step_id: str, output: object) -> None:
        # Inside a loop this overwrites the previous iteration's: references see the current one.
        self.context["steps"][step_id] = {"output": output}

    # --- step kinds -------------------------------------------------------------------------

    def _action(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        done = self.policy.replayed(step_id, iteration)
        if done is not None:
            self._set_output(step_id, done.output)
            return
        action = registry.get(step.get("action", ""))
        if action is None:
            self.policy.fail(step_id, iteration, unknown_action(step_id, step.get("action")))
        output = self.policy.act(
            step_id,
            iteration,
            step.get("params") or {},
            lambda ctx, params: action.execute(ctx, params),
            action,
        )
        self._set_output(step_id, output)

    def _condition(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        done = self.policy.replayed(step_id, iteration)
        if done is not None:
            result = bool((done.output or {}).get("result"))
        else:
            try:
                result = evaluate(step.get("condition"), self.context)
            except Exception as exc:  # a condition that cannot be evaluated fails its step
                self.policy.fail(step_id, iteration, error_details(exc))
            self.policy.decided(step_id, iteration, {"result": result}, "")
        self.path.append({"step": step_id, "iteration": iteration, "result": result})
        self._set_output(step_id, {"result": result})
        if not result:
            reason = f"Condition step '{step_id}' was false; the steps after it were not run."
            self.policy.stop(step, iteration, reason)

    def _branch(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        paths = step.get("paths") or []
        done = self.policy.replayed(step_id, iteration)
        if done is not None:
            index = (done.output or {}).get("index")
        else:
            index = None
            try:
                for position, path in enumerate(paths):
                    if path.get("when") is None or evaluate(path["when"], self.context):
                        index = position
                        break
            except Exception as exc:
                self.policy.fail(step_id, iteration, error_details(exc))
            name = paths[index].get("name", "") if index is not None else ""
            output = {"index": index, "path": name if index is not None else None}
            self.policy.decided(step_id, iteration, output, name)
        chosen = paths[index] if index is not None else None
        name = chosen.get("name") if chosen else None
        self.path.append({"step": step_id, "iteration": iteration, "branch": name})
        self._set_output(step_id, {"index": index, "path": name})
        if chosen is not None:
            self.steps(chosen.get("steps") or [], iteration)

    def _delay(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        done = self.policy.replayed(step_id, iteration)
        if done is not None:
            self._set_output(step_id, done.output)
            return
        template = {key: step[key] for key in ("seconds", "until") if key in step}
        self._set_output(step_id, self.policy.wait(step_id, iteration, template))

    def _approval(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        done = self.policy.replayed(step_id, iteration)
        if done is not None:
            self._set_output(step_id, done.output)
            return
        template = {key: step.get(key) for key in APPROVAL_KEYS}
        self._set_output(step_id, self.policy.approve(step_id, iteration, template))

    def _foreach(self, step: dict, iteration: str) -> None:
        step_id = step["id"]
        done = self.policy.replayed(step_id, iteration)
        if done is not None:
            items = (done.output or {}).get("items") or []
        else:
            cap = int(step.get("max_items") or settings.BILLFLOW["FOREACH_MAX_ITEMS"])
            action: Action | None = None
            if step.get("action"):
                action = registry.get(step["action"])
                if action is None:
                    self.policy.fail(step_id, iteration, unknown_action(step_id, step["action"]))
                source = action

                def gather(ctx: ActionContext, params: dict) -> dict:
                    items = _page_through(step_id, source, ctx, params, cap)
                    self._check_total(step_id, len(items))
                    return {"items": items, "count": len(items)}

                template: object = step.get("params") or {}
            else:

                def gather(ctx: ActionContext, params: object) -> dict:
                    items = _check_items(step_id, params, cap)
                    self._check_total(step_id, len(items))
                    return {"items": items, "count": len(items)}

                template = step.get("items")
            output = self.policy.act(step_id, iteration, template, gather, action)
            items = output["items"]
        self.iterations += len(items)
        self._set_output(step_id, {"items": items, "count": len(items)})
        context = self.context
        outer_item = context.get("item")
        try:
            for index, item in enumerate(items):
                context["item"] = item
                self.steps(
                    step.get("steps") or [], f"{iteration}.{index}" if iteration else str(index)
                )
        finally:
            if outer_item is None:
                context.pop("item", None)
            else:
                context["item"] = outer_item

    def _check_total(self, step_id: str, count: int) -> None:
        """Nested loops multiply: each loop is capped, and so is the run's total of iterations."""
        limit = settings.BILLFLOW["RUN_MAX_ITERATIONS"]
        if self.iterations + count > limit:
            raise ActionError(
                f"Loop '{step_id}' would bring this run to {self.iterations + count} loop "
                f"iterations, more than the run's limit of {limit}; narrow the lists or split "
                "the workflow.",
                type="run_iteration_cap",
            )


def _check_items(step_id: str, items: object, cap: int) -> list:
    if not isinstance(items, list):
        raise ActionError(
            f"Loop '{step_id}' needs a list of items; its items resolved to "
            f"{type(items).__name__}.",
            type="foreach_items",
        )
    if len(items) > cap:
        raise ActionError(
            f"Loop '{step_id}' has {len(items)} items, more than its cap of {cap}; "
            "raise max_items or narrow the list.",
            type="foreach_cap",
        )
    return items


def _page_through(step_id: str, action: Action, ctx: ActionContext, params: dict, cap: int) -> list:
    """All items of a list action, page by page (`starting_after`), failing above the cap."""
    items: list = []
    request = dict(params)
    while True:
        page = action.execute(ctx, request) or {}
        data = page.get("data") or []
        items.extend(data)
        if len(items) > cap:
            raise ActionError(
                f"Loop '{step_id}' found more than {cap} items (its cap); "
                "raise max_items or narrow the list.",
                type="foreach_cap",
            )
        if not page.get("has_more") or not data:
            return items
        last = data[-1]
        request = {**params, "starting_after": last.get("id") if isinstance(last, dict) else last}
