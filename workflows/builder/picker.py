"""The dynamic fields available at one point of a definition, for the builder's picker.

At a step the run context holds: the trigger (the event's fields for its type, the declared
input of a manual workflow, the schedule), the outputs of the steps that ran before it (earlier
siblings, and the earlier siblings of its enclosing branches and loops), `item` inside a loop,
and `run`. Computed from the JSON form and the registry's samples: no queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows.actions import registry
from workflows.definition import event_types, walk

MAX_DEPTH = 5
MAX_FIELDS = 400


@dataclass(frozen=True)
class Field:
    path: str
    group: str
    example: str = ""
    # A formatter that shows this field for people ("money", "date"), offered beside it.
    formatter: str = ""

    @property
    def reference(self) -> str:
        return "{{ " + self.path + " }}"

    @property
    def formatted(self) -> str:
        return "{{ " + self.path + " | " + self.formatter + " }}" if self.formatter else ""


def _example(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "list" if isinstance(value, list) else "object"
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text[:40]


def _flatten(prefix: str, value: Any, group: str, out: list[Field], depth: int = 0) -> None:
    out.append(Field(prefix, group, _example(value)))
    if depth >= MAX_DEPTH or not isinstance(value, dict):
        return
    for key, item in value.items():
        _flatten(f"{prefix}.{key}", item, group, out, depth + 1)


def _trigger_fields(trigger: dict) -> list[Field]:
    out: list[Field] = []
    kind = trigger.get("type")
    if kind == "event" and event_types.is_known(str(trigger.get("event", ""))):
        sample = event_types.shared_sample_event(trigger["event"])
        obj = sample["data"]["object"]
        # The object first: that is what operators reach for.
        for key, item in obj.items():
            _flatten(f"trigger.data.object.{key}", item, "Trigger object", out, 1)
        if "previous_attributes" in sample["data"]:
            out.append(Field("trigger.data.previous_attributes", "Trigger event", "object"))
        for key in ("id", "type", "created", "livemode", "account"):
            out.append(Field(f"trigger.{key}", "Trigger event", _example(sample.get(key))))
        out = [_with_formatter(trigger["event"], field) for field in out]
    elif kind == "manual":
        for item in trigger.get("input") or []:
            if isinstance(item, dict) and item.get("name"):
                out.append(
                    Field(f"trigger.input.{item['name']}", "Input", str(item.get("type", "")))
                )
    elif kind == "schedule":
        out.append(Field("trigger.schedule.cron", "Schedule", str(trigger.get("cron", ""))))
        out.append(Field("trigger.schedule.at", "Schedule", "time of this run"))
    return out


FORMATTER_OF_KIND = {"money": "money", "timestamp": "date"}


def _with_formatter(event: str, field: Field) -> Field:
    ftype = event_types.field_type(event, field.path)
    formatter = FORMATTER_OF_KIND.get(ftype.kind, "") if ftype else ""
    return Field(field.path, field.group, field.example, formatter) if formatter else field


def _step_output_fields(step: dict) -> list[Field]:
    out: list[Field] = []
    step_id = step.get("id", "")
    group = f"Step {step_id}"
    prefix = f"steps.{step_id}.output"
    kind = step.get("type")
    if kind == "action":
        action = registry.get(str(step.get("action", "")))
        if action is not None:
            _flatten(prefix, action.output, group, out)
    elif kind == "condition":
        out.append(Field(f"{prefix}.result", group, "true"))
    elif kind == "branch":
        out.append(Field(f"{prefix}.path", group, "name of the path taken"))
        out.append(Field(f"{prefix}.index", group, "0"))
    elif kind == "foreach":
        out.append(Field(f"{prefix}.items", group, "list"))
        out.append(Field(f"{prefix}.count", group, "0"))
    elif kind == "approval":
        out.append(Field(f"{prefix}.decision", group, "approved"))
        out.append(Field(f"{prefix}.by", group, "mona"))
        out.append(Field(f"{prefix}.at", group, "2026-12-24T09:00:00+00:00"))
        out.append(Field(f"{prefix}.note", group, "Fine by me"))
    elif kind == "delay":
        out.append(Field(f"{prefix}.resume_at", group, "2026-12-24T09:00:00+00:00"))
        out.append(Field(f"{prefix}.resumed_at", group, "2026-12-24T09:00:01+00:00"))
    return out


def _item_fields(loop: dict) -> list[Field]:
    out: list[Field] = []
    action = registry.get(str(loop.get("action", ""))) if loop.get("action") else None
    sample = None
    if action is not None and isinstance(action.output, dict):
        data = action.output.get("data")
        sample = data[0] if isinstance(data, list) and data else None
    if sample is None:
        out.append(Field("item", f"Loop {loop.get('id', '')} item", "the current item"))
    else:
        _flatten("item", sample, f"Loop {loop.get('id', '')} item", out)
    return out


def _scope(definition: dict, step_id: str, *, inside: bool = False) -> tuple | None:
    """(steps run before `step_id`, loops enclosing it), or None when there is no such step.
    With `inside`, the scope of a new step inside `step_id`: the step itself counts as an
    enclosing loop when it is one.

    What ran before a step is what comes before it, and before each step around it, in their
    own lists: not the steps of another branch path, nor those inside an earlier loop."""
    chain = walk.lineage(definition, step_id)
    if not chain:
        return None
    before = [s for place in chain for s in place.container[: place.index] if isinstance(s, dict)]
    around = [place.step for place in (chain if inside else chain[:-1])]
    return before, [step for step in around if step.get("type") == "foreach"]


def available_fields(
    definition: dict,
    *,
    step_id: str = "",
    parent: str = "",
    position: int | None = None,
    query: str = "",
) -> list[Field]:
    """Fields a reference may name at step `step_id` (or at a new step inserted at the end of
    `parent`'s list, or at `position` of it); filtered by `query` (case-insensitive)."""
    trigger = definition.get("trigger") or {}
    fields = _trigger_fields(trigger)
    scope: tuple | None = None
    if step_id:
        scope = _scope(definition, step_id)
    if scope is None and parent:
        # A new step inside `parent` (a loop or branch) sees what `parent` sees (and `item` in
        # a loop); earlier steps of the same body are left out, which errs on the safe side.
        scope = _scope(definition, parent, inside=True)
    if scope is None:
        top = definition.get("steps") or []
        scope = (top[:position] if position is not None else ([] if step_id else top), [])
    before, loops = scope
    for step in before:
        if isinstance(step, dict) and step.get("id") != parent:
            fields.extend(_step_output_fields(step))
    if loops:
        fields.extend(_item_fields(loops[-1]))
    fields.append(Field("run.id", "Run", "the run's id"))
    fields.append(Field("run.workflow", "Run", "the workflow's id"))
    if query:
        needle = query.lower().strip()
        fields = [f for f in fields if needle in f.path.lower() or needle in f.example.lower()]
    return fields[:MAX_FIELDS]
