"""Small edits of a workflow's draft, made on its rows: add a step, change one step.

The builder saves after every change, so these are its hot path. `workflow_update` rewrites
every row of the draft (a query per step); these touch only the rows of the step concerned, so
a save costs the same number of queries whatever the size of the workflow. Structural edits
(move, delete, duplicate, branch paths, trigger) go through `workflow_update` with the whole
definition: they are rarer, and it keeps one writer for the complicated cases.

Like the services, each is one transaction that locks the workflow row first.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from workflows.definition import walk
from workflows.definition.rows import _save_steps, _save_tree, version_definition
from workflows.engine.walk import APPROVAL_KEYS
from workflows.models import BranchPath, Condition, Step, Workflow, WorkflowVersion
from workflows.services import WorkflowLimitExceeded, WorkflowStateError


def _lock_and_touch(workflow: Workflow) -> None:
    """Lock the workflow's row until the end of the transaction and mark it changed, in one
    statement: the UPDATE's row lock also holds off the services' SELECT … FOR UPDATE."""
    touched = Workflow.objects.filter(pk=workflow.pk, deleted_at__isnull=True).update(
        updated=timezone.now()
    )
    if not touched:
        raise WorkflowStateError(f"Workflow {workflow.pk} is deleted", code="workflow_deleted")


def _current_draft(workflow: Workflow) -> WorkflowVersion | None:
    return WorkflowVersion.objects.filter(
        workflow_id=workflow.pk, pk=F("workflow__draft_version_id")
    ).first()


def _new_draft(workflow: Workflow, user: Any) -> WorkflowVersion:
    """The draft to edit, read the long way (the workflow is locked): its draft, or when it has
    none (or its draft was published) a new draft of the published version."""
    locked = Workflow.objects.get(pk=workflow.pk)
    draft = (
        WorkflowVersion.objects.filter(pk=locked.draft_version_id).first()
        if locked.draft_version_id
        else None
    )
    if draft is not None and not draft.is_published:
        return draft
    if locked.published_version_id is None:
        raise WorkflowStateError("The workflow has no version to edit", code="no_version")
    from workflows.definition.rows import definition_to_rows

    published = WorkflowVersion.objects.get(pk=locked.published_version_id)
    draft = definition_to_rows(
        version=WorkflowVersion(workflow=locked, created_by=user),
        definition=version_definition(published),
    )
    locked.draft_version = draft
    locked.save(update_fields=["draft_version"])
    return draft


def unique_step_id(base: str, taken: set[str]) -> str:
    """`base` made a valid step id, with a number added when it is taken."""
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_").lower() or "step"
    if not slug[0].isalpha():
        slug = f"step_{slug}"
    slug = slug[:56]
    if slug not in taken:
        return slug
    number = 2
    while f"{slug}_{number}" in taken:
        number += 1
    return f"{slug}_{number}"


def _renamed(step: dict, taken: set[str]) -> dict:
    """A copy of `step` (and its nested steps) with ids not in `taken`; `taken` grows."""
    renamed = copy.deepcopy(step)
    for place in walk.places([renamed]):  # the step first, then what is inside it, in order
        place.step["id"] = unique_step_id(str(place.step.get("id", "step")), taken)
        taken.add(place.step["id"])
    return renamed


@transaction.atomic
def draft_step_insert(
    *,
    workflow: Workflow,
    step: dict,
    parent: str = "",
    path_index: int | None = None,
    position: int,
    user: Any = None,
) -> dict:
    """Insert `step` (its id is a hint: it is made unique) into the top-level list, a branch
    path (`parent` + `path_index`) or a loop body (`parent`). Returns the step as stored."""
    _lock_and_touch(workflow)
    # The current draft's steps, each with the draft, read after the lock in one query: they
    # answer everything below (the ids in use, the container, the new step's siblings).
    rows = list(
        Step.objects.select_related("version").filter(
            version__workflow_id=workflow.pk, version_id=F("version__workflow__draft_version_id")
        )
    )
    draft = rows[0].version if rows else _current_draft(workflow)
    if draft is None or draft.is_published:
        draft = _new_draft(workflow, user)
        rows = list(Step.objects.filter(version=draft))
    limit = settings.BILLFLOW["MAX_STEPS_PER_WORKFLOW"]
    added = walk.count([step])
    if draft.step_count + added > limit:
        raise WorkflowLimitExceeded(
            f"This workflow has {draft.step_count} steps; the limit is {limit} (every action, "
            "condition, branch and loop counts, nested ones too). Remove a step first."
        )
    step = _renamed(step, {row.step_id for row in rows})
    parent_path: BranchPath | None = None
    parent_loop: Step | None = None
    if parent:
        container = next((row for row in rows if row.step_id == parent), None)
        if container is None:
            raise WorkflowStateError(f"There is no step '{parent}'", code="no_step")
        if container.type == Step.Type.BRANCH:
            paths = list(BranchPath.objects.filter(step=container).order_by("position", "id"))
            if path_index is None or not 0 <= path_index < len(paths):
                raise WorkflowStateError(f"Branch '{parent}' has no such path", code="no_path")
            parent_path = paths[path_index]
        elif container.type == Step.Type.FOREACH:
            parent_loop = container
        else:
            raise WorkflowStateError(f"Step '{parent}' holds no steps", code="no_body")
    path_id = parent_path.pk if parent_path else None
    loop_id = parent_loop.pk if parent_loop else None
    count = sum(1 for r in rows if r.parent_path_id == path_id and r.parent_loop_id == loop_id)
    position = max(0, min(position, count))
    if position < count:  # not at the end: make room
        Step.objects.filter(
            version=draft, parent_path=parent_path, parent_loop=parent_loop, position__gte=position
        ).update(position=F("position") + 1)
    _save_steps(
        [step],
        version=draft,
        parent_path=parent_path,
        parent_loop=parent_loop,
        first_position=position,
    )
    WorkflowVersion.objects.filter(pk=draft.pk).update(step_count=F("step_count") + added)
    return step


@transaction.atomic
def draft_step_update(*, workflow: Workflow, step: dict, user: Any = None) -> None:
    """Replace the settings of an action, condition, loop or delay step (same id, same type).

    A loop's body and a branch's paths are not touched here: branches change through
    `workflow_update` (their paths are structure)."""
    _lock_and_touch(workflow)
    # The step's row and the workflow's current draft in one query, read after the lock.
    row = (
        Step.objects.select_related("version")
        .filter(
            version__workflow_id=workflow.pk,
            version_id=F("version__workflow__draft_version_id"),
            step_id=step["id"],
        )
        .first()
    )
    if row is not None and not row.version.is_published:
        draft = row.version
    else:  # rare: no draft, a published one, or no such step
        draft = _new_draft(workflow, user)
        row = Step.objects.filter(version=draft, step_id=step["id"]).first()
    if row is None:
        raise WorkflowStateError(f"There is no step '{step['id']}'", code="no_step")
    if row.type != step.get("type") or row.type == Step.Type.BRANCH:
        raise WorkflowStateError("Only the settings of the step can change here", code="type")
    changes: dict[str, Any] = {"name": step.get("name", "")}
    if row.type == Step.Type.ACTION:
        changes.update(action=step.get("action", ""), params=step.get("params", {}))
    elif row.type == Step.Type.FOREACH:
        config: dict[str, Any] = {}
        if "action" in step:
            changes.update(action=step.get("action", ""), params=step.get("params", {}))
        else:
            changes.update(action="", params={})
            config["items"] = step.get("items")
        if step.get("max_items") is not None:
            config["max_items"] = step["max_items"]
        changes["config"] = config
    elif row.type == Step.Type.DELAY:
        changes["config"] = {key: step[key] for key in ("seconds", "until") if key in step}
    elif row.type == Step.Type.APPROVAL:
        changes["config"] = {key: step[key] for key in APPROVAL_KEYS if key in step}
    Step.objects.filter(pk=row.pk).update(**changes)
    if row.type == Step.Type.CONDITION:
        Condition.objects.filter(version=draft, step=row).delete()
        if step.get("condition") is not None:
            _save_tree(step["condition"], version=draft, step=row)


def copy_step(step: dict, definition: dict) -> dict:
    """A copy of `step` with ids unused in `definition` (for duplicate)."""
    taken = walk.step_ids(definition)
    return _renamed(step, {str(t) for t in taken})
