"""What the canvas draws: a workflow's JSON form as cards with plain-word summaries.

Shared by the builder (editable, with `+` insertion points) and the run inspector (read-only,
with each step's status and the path the run took). Pure functions of the definition: no
queries, so drawing a canvas costs the same whatever the number of steps.

    canvas_nodes(definition, step_runs={"tag_eu": {"status": "succeeded", ...}, ...})
    canvas_trigger(definition)

`step_runs` maps a step id to {"status", "attempts", "branch_chosen", "error", ...}; a step that
ran in several loop iterations is given once (the caller aggregates: the last, or the worst).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workflows.actions import registry
from workflows.definition import event_types, money, walk
from workflows.engine.conditions import UNARY_OPERATORS, operator_words

OBJECT_PREFIX = "trigger.data.object."
SUMMARY_LENGTH = 140

TYPE_WORDS = {
    "action": "Action",
    "condition": "Condition",
    "branch": "Branch",
    "foreach": "Loop",
    "delay": "Delay",
    "approval": "Approval",
}


@dataclass
class CanvasPath:
    name: str
    is_else: bool
    index: int
    summary: str
    nodes: list[Node]
    # Where a `+` at the end of this path inserts: (parent step id, path index).
    parent: str = ""
    taken: bool = False
    skipped: bool = False


@dataclass
class Node:
    id: str
    type: str
    title: str
    summary: str
    # Insertion address of this node: parent step id ("" at top level), path index for a
    # branch path (None otherwise), and the position in that list.
    parent: str = ""
    path_index: int | None = None
    position: int = 0
    action: str = ""
    side_effects: bool = False
    children: list[Node] = field(default_factory=list)
    paths: list[CanvasPath] = field(default_factory=list)
    url: str = ""
    # Validation messages of this step (the builder sets them).
    errors: list[str] = field(default_factory=list)
    # Set when `step_runs` is given.
    status: str = ""
    attempts: int = 0
    taken: bool = False
    skipped: bool = False
    run: dict = field(default_factory=dict)

    @property
    def type_label(self) -> str:
        return TYPE_WORDS.get(self.type, self.type)


@dataclass
class TriggerCard:
    type: str
    title: str
    summary: str
    conditions: str = ""
    # The event type, drawn beside its human name ("Customer created" · customer.created).
    event: str = ""
    # "One run at a time per customer" (`trigger.serialize_by`), else "".
    serialized: str = ""


# --- plain words ------------------------------------------------------------------------------


def _short_field(path: str) -> str:
    return path[len(OBJECT_PREFIX) :] if path.startswith(OBJECT_PREFIX) else path


def _value_words(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value_words(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def condition_words(tree: Any) -> str:
    """`{"any": [{"field": "trigger.data.object.address.country", "op": "in", ...}]}` ->
    "address.country is one of US, CA"."""
    if not isinstance(tree, dict):
        return ""
    for group, joiner in (("all", " and "), ("any", " or ")):
        if group in tree:
            parts = [condition_words(child) for child in tree.get(group) or []]
            parts = [p for p in parts if p]
            if not parts:
                return "always" if group == "all" else "never"
            text = joiner.join(parts)
            return text if len(parts) == 1 else f"({text})"
    op = str(tree.get("op", ""))
    words = f"{_short_field(str(tree.get('field', '')))} {operator_words(op)}"
    if "value" in tree and op not in UNARY_OPERATORS:
        words += f" {_value_words(tree['value'])}"
    return words.strip()


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"


def _param_words(name: str, value: Any) -> str:
    if isinstance(value, dict) and value and all(not isinstance(v, dict) for v in value.values()):
        pairs = ", ".join(f"{k} = {_value_words(v)}" for k, v in value.items())
        return f"{name} {pairs}"
    return f"{name} = {_value_words(value)}"


def action_words(action_key: str, params: Any) -> tuple[str, str]:
    """(title, summary) of an action step, e.g. ("Update a customer",
    "Update a customer — metadata Location = North America")."""
    action = registry.get(action_key)
    label = action.label if action else (action_key or "Choose an action")
    if action is None and action_key:
        label = f"Unknown action {action_key}"
    params = params if isinstance(params, dict) else {}
    # The object an action acts on is usually the first required input, given as a reference
    # to the trigger; naming it adds nothing an operator needs on the card.
    target = next((f.name for f in action.inputs if f.required), "") if action else ""
    details = [
        _param_words(name, value)
        for name, value in params.items()
        if value not in ("", None, {}, []) and name != target
    ]
    if not details and target and params.get(target):
        details = [_param_words(target, params[target])]
    summary = f"{label} — {', '.join(details)}" if details else label
    return label, _clip(summary)


def _duration_words(seconds: object) -> str:
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 1:
        return "…"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def approval_words(step: dict) -> str:
    """ "Approval by finance (48 h, then reject)"."""
    approvers = ", ".join(str(name) for name in step.get("approvers") or []) or "…"
    hours = step.get("timeout_hours")
    hours = "…" if hours is None else f"{hours:g}" if isinstance(hours, float) else str(hours)
    return f"Approval by {approvers} ({hours} h, then {step.get('on_timeout') or '…'})"


def step_words(step: dict) -> tuple[str, str]:
    kind = step.get("type")
    if kind == "action":
        title, summary = action_words(step.get("action", ""), step.get("params"))
    elif kind == "condition":
        title = "Continue only if"
        summary = f"Continue only if {condition_words(step.get('condition')) or '…'}"
    elif kind == "branch":
        paths = step.get("paths") or []
        title = "Branch"
        summary = f"Branch into {len(paths)} paths; the first that matches runs"
    elif kind == "foreach":
        title = "For each item"
        if step.get("action"):
            action_title, _ = action_words(step["action"], step.get("params"))
            source = action_title
        else:
            source = str(step.get("items") or "…")
        cap = f" (at most {step['max_items']})" if step.get("max_items") else ""
        summary = f"For each item of {source}{cap}"
    elif kind == "approval":
        title = "Approval"
        summary = approval_words(step)
    elif kind == "delay":
        title = "Wait"
        if "until" in step:
            summary = f"Wait until {step.get('until') or '…'}"
        else:
            summary = f"Wait {_duration_words(step.get('seconds'))}"
    else:
        title, summary = str(kind), str(kind)
    if step.get("name"):
        title = str(step["name"])
    return title, _clip(summary)


def _serialized_words(trigger: dict) -> str:
    by = trigger.get("serialize_by")
    if by not in ("customer", "object"):
        return ""
    wait = trigger.get("serialize_max_wait_minutes")
    held = f"; a failed run holds it {wait:g} min at most" if isinstance(wait, int | float) else ""
    return f"One run at a time per {by}, in event order{held}"


def canvas_guardrails(definition: dict) -> list[str]:
    """The guardrails card's lines: each money cap, the runs per hour and the breaker."""
    g = definition.get("guardrails") or {}
    lines = []
    for key, words in (("max_amount_per_run", "per run"), ("max_amount_per_day", "per day")):
        caps = g.get(key) or {}
        if isinstance(caps, dict) and caps:
            amounts = ", ".join(money.format_money(a, c) for c, a in caps.items())
            lines.append(f"At most {amounts} {words}")
    if g.get("max_runs_per_hour"):
        lines.append(f"At most {g['max_runs_per_hour']} money-moving runs per hour")
    b = definition.get("auto_deactivate") or {}
    if isinstance(b, dict) and b.get("failure_rate"):
        lines.append(
            f"Deactivated when {float(b['failure_rate']):.0%} of at least {b.get('min_runs')} "
            f"runs in {b.get('window_minutes')} minutes fail"
        )
    return lines


def canvas_trigger(definition: dict) -> TriggerCard:
    trigger = definition.get("trigger") or {}
    kind = trigger.get("type", "")
    if kind == "event":
        accounts = {
            "platform": "platform events",
            "connected": "connected-account events",
            "all": "platform and connected-account events",
        }.get(trigger.get("accounts") or "platform", "")
        conditions = condition_words(trigger.get("conditions"))
        event = str(trigger.get("event") or "")
        return TriggerCard(
            type=kind,
            title=f"When {event_types.event_label(event)}" if event else "When …",
            event=event,
            summary=f"Starts on each {event or '…'} event ({accounts})",
            conditions=f"Only if {conditions}" if conditions else "",
            serialized=_serialized_words(trigger),
        )
    if kind == "manual":
        fields = [
            f"{f.get('name')} ({f.get('type', 'string')}"
            f"{', required' if f.get('required') else ''})"
            for f in trigger.get("input") or []
            if isinstance(f, dict)
        ]
        summary = "Started by hand" + (f" with {', '.join(fields)}" if fields else "")
        return TriggerCard(type=kind, title="Started by hand", summary=_clip(summary))
    if kind == "schedule":
        return TriggerCard(
            type=kind,
            title="On a schedule",
            summary=f"Runs on the schedule {trigger.get('cron') or '…'} (cron, UTC)",
        )
    return TriggerCard(type=kind, title="Choose a trigger", summary="")


# --- nodes -------------------------------------------------------------------------------------


def _node(
    place: walk.Place, *, step_runs: dict | None, step_url: Callable[[str], str] | None
) -> Node:
    """The card of one step, with its branch paths (empty: the walk fills them) but not what
    is inside it."""
    step = place.step
    title, summary = step_words(step)
    action = registry.get(step.get("action", "")) if step.get("action") else None
    node = Node(
        id=str(step.get("id", "")),
        type=str(step.get("type", "")),
        title=title,
        summary=summary,
        parent=str(place.parent.get("id", "")) if place.parent else "",
        path_index=place.path_index,
        position=place.index,
        action=str(step.get("action", "")),
        side_effects=bool(action and action.side_effects),
        url=step_url(str(step.get("id", ""))) if step_url else "",
    )
    record = (step_runs or {}).get(node.id) if step_runs is not None else None
    if step_runs is not None:
        node.run = dict(record or {})
        node.status = str(node.run.get("status", ""))
        node.attempts = int(node.run.get("attempts") or 0)
        node.taken = record is not None and node.status != "skipped"
        node.skipped = not node.taken
    if node.type == "branch":
        chosen = node.run.get("branch_chosen") if record else None
        for index, path in enumerate(step.get("paths") or []):
            if not isinstance(path, dict):
                continue
            is_else = path.get("when") is None
            taken = bool(record) and chosen is not None and chosen == path.get("name")
            node.paths.append(
                CanvasPath(
                    name=str(path.get("name", "")),
                    is_else=is_else,
                    index=index,
                    summary="Otherwise" if is_else else f"When {condition_words(path.get('when'))}",
                    nodes=[],
                    parent=node.id,
                    taken=taken,
                    skipped=step_runs is not None and not taken,
                )
            )
        # Evaluation order, with the else path last whatever its stored position.
        node.paths.sort(key=lambda p: (p.is_else, p.index))
    return node


def canvas_nodes(
    definition: dict,
    *,
    step_runs: dict | None = None,
    step_url: Callable[[str], str] | None = None,
) -> list[Node]:
    """The top-level nodes of `definition`, nested nodes inside `children` and `paths`."""
    top: list[Node] = []
    # The nodes of the steps around the current one, outermost first: the walk is depth
    # first, so the node a step goes into is the last one above its depth.
    around: list[Node] = []
    for place in walk.places(definition):
        node = _node(place, step_runs=step_runs, step_url=step_url)
        del around[place.depth :]
        if not around:
            top.append(node)
        elif place.path_index is None:  # a loop's body
            around[-1].children.append(node)
        else:
            path = next(p for p in around[-1].paths if p.index == place.path_index)
            path.nodes.append(node)
        around.append(node)
    return top


def all_nodes(nodes: list[Node]) -> Iterator[Node]:
    """Every node of a drawn canvas, nested ones too, in the order the canvas shows them."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        inner = [*node.children, *(n for path in node.paths for n in path.nodes)]
        stack.extend(reversed(inner))


def find_node(nodes: list[Node], step_id: str) -> Node | None:
    return next((node for node in all_nodes(nodes) if node.id == step_id), None)
