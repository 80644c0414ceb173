"""The JSON form of a workflow version <-> its relational rows, losslessly.

The canonical JSON form (docs/workflows.md has the full reference):

    {"name": str, "description": str (only when not empty),
     "trigger": {"type": "event", "event": str, "accounts": "platform"|"connected"|"all",
                 "conditions": tree (only when set)}
              | {"type": "manual", "input": [{"name", "type", "required", ...}]}
              | {"type": "schedule", "cron": str},
     "steps": [step, ...],
     "guardrails": {...} (only when set), "auto_deactivate": {...} (only when set)}

    step: {"id", "type": "action", "action": key, "params": {...}}
        | {"id", "type": "condition", "condition": tree}
        | {"id", "type": "branch", "paths": [{"name", "when": tree | null, "steps": [...]}]}
        | {"id", "type": "foreach", "items": "{{ ref }}" or "action": key + "params": {...},
           "max_items": int (optional), "steps": [...]}
        | {"id", "type": "delay", "seconds": int} | {"id", "type": "delay", "until": str}
        | {"id", "type": "approval", "approvers": [str], "message": str,
           "timeout_hours": number, "on_timeout": "reject" | "approve"}
      each with an optional "name".

A canonical definition survives `definition_to_rows` + `version_definition` unchanged.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from django.db import transaction

from workflows.definition import walk
from workflows.engine.walk import APPROVAL_KEYS  # an approval step's keys, kept in `config`
from workflows.models import BranchPath, Condition, Step, WorkflowVersion

# Published versions never change, so their JSON form is computed once per process. The key
# includes the publish time: a version cached inside a transaction that rolled back may see
# its id reused (SQLite), and must not answer for the new row.
_PUBLISHED_CACHE: dict[tuple, dict] = {}
_CACHE_LIMIT = 2000
# Workflow-wide settings kept as JSON on the version, written only when set.
SETTINGS_KEYS = ("guardrails", "auto_deactivate")


def version_definition(version: WorkflowVersion) -> dict:
    """The JSON form of `version` (a fresh copy: callers may change it)."""
    if version.is_published:
        return copy.deepcopy(shared_definition(version))
    return rows_to_definition(version)


def shared_definition(version: WorkflowVersion) -> dict:
    """The JSON form of `version`, shared by every caller: read it, never change it.

    A published version never changes, so its JSON is built once per process; the dispatcher
    and the executor read it for every event and run without paying for a copy.
    """
    if not version.is_published:
        return rows_to_definition(version)
    key = (version.pk, version.workflow_id, version.number, version.published_at)
    definition = _PUBLISHED_CACHE.get(key)
    if definition is None:
        if version.get_deferred_fields():  # a partial row (the dispatcher's): read it whole
            version = WorkflowVersion.objects.get(pk=version.pk)
        if len(_PUBLISHED_CACHE) >= _CACHE_LIMIT:
            _PUBLISHED_CACHE.clear()
        definition = _PUBLISHED_CACHE[key] = rows_to_definition(version)
    return definition


# --- rows -> JSON ---------------------------------------------------------------------------


def _condition_tree(node: Condition, children: dict[int | None, list[Condition]]) -> dict:
    if node.group:
        return {node.group: [_condition_tree(c, children) for c in children.get(node.pk, [])]}
    leaf: dict[str, Any] = {"field": node.field, "op": node.op}
    if node.has_value:
        leaf["value"] = node.value
    return leaf


def rows_to_definition(version: WorkflowVersion) -> dict:
    steps = list(Step.objects.filter(version=version).order_by("position", "id"))
    paths = list(BranchPath.objects.filter(step__version=version).order_by("position", "id"))
    conditions = list(Condition.objects.filter(version=version).order_by("position", "id"))

    children: dict[int | None, list[Condition]] = defaultdict(list)
    trigger_root = None
    step_root: dict[int, Condition] = {}
    path_root: dict[int, Condition] = {}
    for node in conditions:
        if node.parent_id is not None:
            children[node.parent_id].append(node)
        elif node.path_id is not None:
            path_root[node.path_id] = node
        elif node.step_id is not None:
            step_root[node.step_id] = node
        else:
            trigger_root = node

    def tree(root: Condition | None) -> dict | None:
        return _condition_tree(root, children) if root is not None else None

    by_path: dict[int, list[Step]] = defaultdict(list)
    by_loop: dict[int, list[Step]] = defaultdict(list)
    top: list[Step] = []
    for step in steps:
        if step.parent_path_id is not None:
            by_path[step.parent_path_id].append(step)
        elif step.parent_loop_id is not None:
            by_loop[step.parent_loop_id].append(step)
        else:
            top.append(step)
    paths_of: dict[int, list[BranchPath]] = defaultdict(list)
    for path in paths:
        paths_of[path.step_id].append(path)

    def step_json(step: Step) -> dict:
        data: dict[str, Any] = {"id": step.step_id, "type": step.type}
        if step.name:
            data["name"] = step.name
        if step.type == Step.Type.ACTION:
            data["action"] = step.action
            data["params"] = step.params
        elif step.type == Step.Type.CONDITION:
            data["condition"] = tree(step_root.get(step.pk))
        elif step.type == Step.Type.BRANCH:
            data["paths"] = [
                {
                    "name": path.name,
                    "when": tree(path_root.get(path.pk)),
                    "steps": [step_json(s) for s in by_path[path.pk]],
                }
                for path in paths_of[step.pk]
            ]
        elif step.type == Step.Type.FOREACH:
            if step.action:
                data["action"] = step.action
                data["params"] = step.params
            else:
                data["items"] = step.config.get("items")
            if step.config.get("max_items") is not None:
                data["max_items"] = step.config["max_items"]
            data["steps"] = [step_json(s) for s in by_loop[step.pk]]
        elif step.type == Step.Type.DELAY:
            data.update(step.config)  # "seconds" or "until"
        elif step.type == Step.Type.APPROVAL:
            data.update(step.config)  # approvers, message, timeout_hours, on_timeout
        return data

    trigger: dict[str, Any] = {"type": version.trigger_type}
    if version.trigger_type == WorkflowVersion.TriggerType.EVENT:
        trigger["event"] = version.trigger_event
        trigger["accounts"] = version.trigger_accounts
        if trigger_root is not None:
            trigger["conditions"] = tree(trigger_root)
        if version.trigger_serialize_by:
            trigger["serialize_by"] = version.trigger_serialize_by
        wait = version.trigger_serialize_max_wait_minutes
        if wait is not None:
            trigger["serialize_max_wait_minutes"] = int(wait) if wait == int(wait) else wait
    elif version.trigger_type == WorkflowVersion.TriggerType.MANUAL:
        trigger["input"] = version.trigger_input
    elif version.trigger_type == WorkflowVersion.TriggerType.SCHEDULE:
        trigger["cron"] = version.trigger_cron

    definition: dict[str, Any] = {"name": version.name}
    if version.description:
        definition["description"] = version.description
    definition["trigger"] = trigger
    definition["steps"] = [step_json(s) for s in top]
    for key in SETTINGS_KEYS:
        if getattr(version, key) is not None:
            definition[key] = getattr(version, key)
    return definition


# --- JSON -> rows ---------------------------------------------------------------------------


def _save_tree(
    tree: dict,
    *,
    version: WorkflowVersion,
    step: Step | None = None,
    path: BranchPath | None = None,
    parent: Condition | None = None,
    position: int = 0,
) -> None:
    group = next((key for key in ("all", "any") if key in tree), "")
    node = Condition.objects.create(
        version=version,
        step=step,
        path=path,
        parent=parent,
        position=position,
        group=group,
        field="" if group else tree.get("field", ""),
        op="" if group else tree.get("op", ""),
        value=None if group else tree.get("value"),
        has_value=not group and "value" in tree,
    )
    if group:
        for index, child in enumerate(tree[group]):
            _save_tree(child, version=version, step=step, path=path, parent=node, position=index)


def _save_steps(
    steps: list[dict],
    *,
    version: WorkflowVersion,
    parent_path: BranchPath | None = None,
    parent_loop: Step | None = None,
    first_position: int = 0,
) -> None:
    """Rows for `steps` (under `parent_path` or `parent_loop`), nested steps included.

    The walk yields a branch or loop before the steps inside it, so their rows exist by then.
    """
    step_rows: dict[int, Step] = {}  # id() of a step's JSON -> its row
    path_rows: dict[tuple[int, int], BranchPath] = {}  # (id() of a branch, path index) -> row
    for place in walk.places(steps):
        data = place.step
        if place.parent is None:
            in_path, in_loop = parent_path, parent_loop
            position = first_position + place.index
        elif place.path_index is not None:
            in_path, in_loop = path_rows[(id(place.parent), place.path_index)], None
            position = place.index
        else:
            in_path, in_loop = None, step_rows[id(place.parent)]
            position = place.index
        kind = data["type"]
        config: dict[str, Any] = {}
        action = ""
        params: Any = {}
        if kind == Step.Type.ACTION:
            action, params = data.get("action", ""), data.get("params", {})
        elif kind == Step.Type.FOREACH:
            if "action" in data:
                action, params = data.get("action", ""), data.get("params", {})
            else:
                config["items"] = data.get("items")
            if data.get("max_items") is not None:
                config["max_items"] = data["max_items"]
        elif kind == Step.Type.DELAY:
            config = {key: data[key] for key in ("seconds", "until") if key in data}
        elif kind == Step.Type.APPROVAL:
            config = {key: data[key] for key in APPROVAL_KEYS if key in data}
        step = Step.objects.create(
            version=version,
            step_id=data["id"],
            type=kind,
            parent_path=in_path,
            parent_loop=in_loop,
            position=position,
            name=data.get("name", ""),
            action=action,
            params=params,
            config=config,
        )
        step_rows[id(data)] = step
        if kind == Step.Type.CONDITION and data.get("condition") is not None:
            _save_tree(data["condition"], version=version, step=step)
        elif kind == Step.Type.BRANCH:
            for index, path_data in enumerate(data.get("paths", [])):
                when = path_data.get("when")
                path = BranchPath.objects.create(
                    step=step, position=index, name=path_data.get("name", ""), is_else=when is None
                )
                path_rows[(id(data), index)] = path
                if when is not None:
                    _save_tree(when, version=version, path=path)


@transaction.atomic
def definition_to_rows(*, version: WorkflowVersion, definition: dict) -> WorkflowVersion:
    """Replace the rows of a draft `version` with `definition` (shape-checked by the caller).

    Published versions are immutable: writing to one is a programming error.
    """
    if version.is_published:
        raise ValueError(f"Version {version.pk} is published and cannot change")
    if version.pk is not None:
        Condition.objects.filter(version=version).delete()
        Step.objects.filter(version=version).delete()

    trigger = definition.get("trigger") or {}
    version.name = definition.get("name", "")
    version.description = definition.get("description", "")
    version.trigger_type = trigger.get("type", "")
    version.trigger_event = trigger.get("event", "") or ""
    version.trigger_accounts = trigger.get("accounts") or WorkflowVersion.AccountScope.PLATFORM
    version.trigger_cron = trigger.get("cron", "") or ""
    version.trigger_input = trigger.get("input") or []
    version.trigger_serialize_by = trigger.get("serialize_by") or ""
    version.trigger_serialize_max_wait_minutes = trigger.get("serialize_max_wait_minutes")
    version.step_count = walk.count(definition)
    for key in SETTINGS_KEYS:
        setattr(version, key, definition.get(key))
    version.save()

    conditions = trigger.get("conditions")
    if version.trigger_type == WorkflowVersion.TriggerType.EVENT and conditions is not None:
        _save_tree(conditions, version=version)
    _save_steps(definition.get("steps") or [], version=version)
    return version


def definition_to_json(definition: dict) -> dict:
    """The canonical form of a shape-valid definition, without touching the database."""
    trigger = dict(definition.get("trigger") or {})
    out_trigger: dict[str, Any] = {"type": trigger.get("type")}
    if trigger.get("type") == "event":
        out_trigger["event"] = trigger.get("event", "")
        out_trigger["accounts"] = trigger.get("accounts") or "platform"
        if trigger.get("conditions") is not None:
            out_trigger["conditions"] = trigger["conditions"]
    elif trigger.get("type") == "manual":
        out_trigger["input"] = trigger.get("input") or []
    elif trigger.get("type") == "schedule":
        out_trigger["cron"] = trigger.get("cron", "")

    def step_json(data: dict) -> dict:
        out: dict[str, Any] = {"id": data["id"], "type": data["type"]}
        if data.get("name"):
            out["name"] = data["name"]
        if data["type"] == "action":
            out["action"] = data.get("action", "")
            out["params"] = data.get("params", {})
        elif data["type"] == "condition":
            out["condition"] = data.get("condition")
        elif data["type"] == "branch":
            out["paths"] = [
                {
                    "name": p.get("name", ""),
                    "when": p.get("when"),
                    "steps": [step_json(s) for s in p.get("steps", [])],
                }
                for p in data.get("paths", [])
            ]
        elif data["type"] == "foreach":
            if "action" in data:
                out["action"] = data.get("action", "")
                out["params"] = data.get("params", {})
            else:
                out["items"] = data.get("items")
            if data.get("max_items") is not None:
                out["max_items"] = data["max_items"]
            out["steps"] = [step_json(s) for s in data.get("steps", [])]
        elif data["type"] == "approval":
            out.update({key: data[key] for key in APPROVAL_KEYS if key in data})
        elif data["type"] == "delay":
            if "until" in data:
                out["until"] = data.get("until")
            else:
                out["seconds"] = data.get("seconds")
        return out

    out: dict[str, Any] = {"name": definition.get("name", "")}
    if definition.get("description"):
        out["description"] = definition["description"]
    out["trigger"] = out_trigger
    out["steps"] = [step_json(s) for s in definition.get("steps") or []]
    for key in SETTINGS_KEYS:
        if definition.get(key) is not None:
            out[key] = definition[key]
    return out
