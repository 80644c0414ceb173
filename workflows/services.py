"""Workflow definition services: create, update, publish, activate, deactivate, delete, copy.

Each is one transaction. Changes to a workflow lock its row first (`select_for_update`), and
creation locks the environment row, so two operators (or an operator and the API) never
interleave: limits are counted under the lock, and a publish never sees a half-written draft.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from croniter import croniter
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django_q.models import Schedule

from backoffice.actors import records_actor
from billing.models import Environment
from workflows.definition.rows import definition_to_rows, version_definition
from workflows.definition.validation import DefinitionInvalid, validate_definition, validate_shape
from workflows.models import Run, Workflow, WorkflowVersion

SCHEDULE_FUNC = "workflows.tasks.start_scheduled_run"


class WorkflowError(Exception):
    """A request the workflow's state or the limits do not allow. `code` is stable for APIs."""

    code = "workflow_error"

    def __init__(self, message: str, *, code: str | None = None, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class WorkflowLimitExceeded(WorkflowError):
    code = "limit_exceeded"


class WorkflowStateError(WorkflowError):
    code = "invalid_state"


def schedule_name(workflow_id: int) -> str:
    return f"workflow:{workflow_id}"


def _check(definition: Any, *, environment: Environment, allow_invalid: bool) -> None:
    errors = (
        validate_shape(definition)
        if allow_invalid
        else validate_definition(definition, environment=environment)
    )
    if errors:
        raise DefinitionInvalid(errors)


def _lock(workflow: Workflow) -> Workflow:
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if locked.deleted_at is not None:
        raise WorkflowStateError(f"Workflow {workflow.pk} is deleted", code="workflow_deleted")
    return locked


def _refuse_system(workflow: Workflow, verb: str) -> None:
    if workflow.kind == Workflow.Kind.SYSTEM:
        raise WorkflowStateError(
            f"'{workflow.name}' is a system workflow: its steps are fixed and it cannot be "
            f"{verb}. Change its settings (wording, recipients, steps on or off) instead.",
            code="system_workflow",
        )


def _lock_environment(environment: Environment) -> None:
    Environment.objects.select_for_update().filter(pk=environment.pk).first()


def _check_workflow_limit(environment: Environment) -> None:
    limit = settings.BILLFLOW["MAX_WORKFLOWS"]
    # System workflows ship with the product and do not count against the automation limits.
    count = (
        Workflow.objects.filter(environment=environment, deleted_at__isnull=True)
        .exclude(kind=Workflow.Kind.SYSTEM)
        .count()
    )
    if count >= limit:
        raise WorkflowLimitExceeded(
            f"This environment already has {count} workflows; the limit is {limit}. "
            "Delete one before creating another."
        )


def _new_draft(workflow: Workflow, definition: dict, user: Any) -> WorkflowVersion:
    version = WorkflowVersion(workflow=workflow, created_by=user)
    return definition_to_rows(version=version, definition=definition)


@transaction.atomic
def workflow_create(
    *,
    environment: Environment,
    definition: dict,
    created_by: Any = None,
    allow_invalid: bool = False,
    kind: str = Workflow.Kind.AUTOMATION,
    system_key: str = "",
) -> Workflow:
    """A new draft workflow. `allow_invalid` stores a well-shaped but incomplete draft."""
    _check(definition, environment=environment, allow_invalid=allow_invalid)
    _lock_environment(environment)
    if kind != Workflow.Kind.SYSTEM:
        _check_workflow_limit(environment)
    now = timezone.now()
    workflow = Workflow.objects.create(
        environment=environment,
        name=definition["name"],
        description=definition.get("description", ""),
        kind=kind,
        system_key=system_key,
        status=Workflow.Status.DRAFT,
        created_by=created_by,
        created=now,
        updated=now,
    )
    workflow.draft_version = _new_draft(workflow, definition, created_by)
    workflow.save(update_fields=["draft_version"])
    return workflow


@transaction.atomic
def workflow_update(
    *,
    workflow: Workflow,
    definition: dict,
    updated_by: Any = None,
    allow_invalid: bool = False,
) -> Workflow:
    """Write `definition` as the workflow's draft; published versions never change."""
    workflow = _lock(workflow)
    _refuse_system(workflow, "edited")
    _check(definition, environment=workflow.environment, allow_invalid=allow_invalid)
    draft = workflow.draft_version
    if draft is None or draft.is_published:
        draft = WorkflowVersion(workflow=workflow, created_by=updated_by)
    definition_to_rows(version=draft, definition=definition)
    workflow.draft_version = draft
    workflow.name = definition["name"]
    workflow.description = definition.get("description", "")
    workflow.updated = timezone.now()
    workflow.save(update_fields=["draft_version", "name", "description", "updated"])
    return workflow


@transaction.atomic
def workflow_publish(*, workflow: Workflow, published_by: Any = None) -> WorkflowVersion:
    """Turn the draft into the next numbered, immutable version; new runs start on it."""
    workflow = _lock(workflow)
    draft = workflow.draft_version
    if draft is None:
        raise WorkflowStateError("There is no draft to publish", code="no_draft")
    errors = validate_definition(version_definition(draft), environment=workflow.environment)
    if errors:
        raise DefinitionInvalid(errors)
    last = WorkflowVersion.objects.filter(workflow=workflow).aggregate(n=Max("number"))["n"]
    now = timezone.now()
    draft.number = (last or 0) + 1
    draft.published_at = now
    draft.published_by = published_by
    draft.save(update_fields=["number", "published_at", "published_by"])
    workflow.published_version = draft
    workflow.draft_version = None
    workflow.updated = now
    workflow.save(update_fields=["published_version", "draft_version", "updated"])
    if workflow.status == Workflow.Status.ACTIVE:
        _sync_schedule(workflow)
    return draft


@records_actor("activated_by")  # the person or key is the actor in the history
@transaction.atomic
def workflow_activate(*, workflow: Workflow, activated_by: Any = None) -> Workflow:
    """New events (or the schedule) start runs of the published version from now on."""
    workflow = _lock(workflow)
    if workflow.status == Workflow.Status.ACTIVE:
        return workflow
    version = workflow.published_version
    if version is None:
        raise WorkflowStateError(
            "Publish the workflow before activating it: only a published version can run",
            code="not_published",
        )
    errors = validate_definition(version_definition(version), environment=workflow.environment)
    if errors:
        # Published versions were valid when published; an action removed since (a custom
        # action's app uninstalled) or a lowered limit can make them invalid now.
        raise DefinitionInvalid(errors)
    _lock_environment(workflow.environment)
    limit = settings.BILLFLOW["MAX_ACTIVE_WORKFLOWS"]
    active = (
        Workflow.objects.filter(
            environment=workflow.environment,
            status=Workflow.Status.ACTIVE,
            deleted_at__isnull=True,
        )
        .exclude(kind=Workflow.Kind.SYSTEM)
        .count()
    )
    if active >= limit and workflow.kind != Workflow.Kind.SYSTEM:
        raise WorkflowLimitExceeded(
            f"This environment already has {active} active workflows; the limit is {limit}. "
            "Deactivate one first."
        )
    workflow.status = Workflow.Status.ACTIVE
    workflow.updated = timezone.now()
    # Activated again: the circuit breaker's reason goes; its time stays, so runs started
    # before it tripped do not count again (workflows/operations/breaker.py).
    workflow.deactivated_reason = ""
    workflow.save(update_fields=["status", "updated", "deactivated_reason"])
    _sync_schedule(workflow)
    return workflow


@records_actor("deactivated_by")  # the person or key is the actor in the history
@transaction.atomic
def workflow_deactivate(*, workflow: Workflow, deactivated_by: Any = None) -> Workflow:
    """No new runs start; runs already started finish on their version."""
    workflow = _lock(workflow)
    if workflow.status != Workflow.Status.ACTIVE:
        return workflow
    workflow.status = Workflow.Status.INACTIVE
    workflow.updated = timezone.now()
    workflow.save(update_fields=["status", "updated"])
    _sync_schedule(workflow)
    return workflow


@records_actor("deleted_by")  # the person or key is the actor in the history
@transaction.atomic
def workflow_delete(*, workflow: Workflow, deleted_by: Any = None) -> bool:
    """Delete; soft (hidden, kept) while runs reference its versions. True if rows were removed."""
    workflow = _lock(workflow)
    _refuse_system(workflow, "deleted")
    Schedule.objects.filter(name=schedule_name(workflow.pk)).delete()
    if Run.objects.filter(workflow=workflow).exists():
        workflow.status = Workflow.Status.INACTIVE
        workflow.deleted_at = timezone.now()
        workflow.save(update_fields=["status", "deleted_at"])
        return False
    Workflow.objects.filter(pk=workflow.pk).update(published_version=None, draft_version=None)
    Workflow.objects.filter(pk=workflow.pk).delete()
    return True


def workflow_purge_deleted(*, environment: Environment | None = None) -> int:
    """Remove soft-deleted workflows whose runs are gone (after runs are pruned)."""
    removed = 0
    qs = Workflow.objects.filter(deleted_at__isnull=False)
    if environment is not None:
        qs = qs.filter(environment=environment)
    for workflow_id in qs.values_list("pk", flat=True):
        with transaction.atomic():
            locked = Workflow.objects.select_for_update().filter(pk=workflow_id).first()
            if locked is None or Run.objects.filter(workflow_id=workflow_id).exists():
                continue
            Workflow.objects.filter(pk=workflow_id).update(
                published_version=None, draft_version=None
            )
            Workflow.objects.filter(pk=workflow_id).delete()
            removed += 1
    return removed


def workflow_definition(workflow: Workflow, *, draft: bool = True) -> dict:
    """The JSON form the builder edits: the draft if there is one, else the published one."""
    version = (workflow.draft_version if draft else None) or workflow.published_version
    if version is None:
        raise WorkflowStateError(f"Workflow {workflow.pk} has no version", code="no_version")
    return version_definition(version)


def workflow_duplicate(*, workflow: Workflow, created_by: Any = None) -> Workflow:
    """A new draft in the same environment with the same definition, named "… (copy)"."""
    definition = workflow_definition(workflow)
    definition["name"] = f"{definition['name']} (copy)"[:200]
    return workflow_create(
        environment=workflow.environment,
        definition=definition,
        created_by=created_by,
        allow_invalid=True,
    )


def workflow_copy_to_environment(
    *, workflow: Workflow, environment: Environment, created_by: Any = None
) -> Workflow:
    """A new draft in `environment` (a sandbox's workflow going live) of the published version,
    or of the draft when nothing is published. It must be published there to run."""
    definition = workflow_definition(workflow, draft=workflow.published_version is None)
    return workflow_create(
        environment=environment,
        definition=definition,
        created_by=created_by,
        allow_invalid=True,
    )


# --- schedules --------------------------------------------------------------------------------


def _next_fire(cron: str) -> datetime:
    return croniter(cron, timezone.now()).get_next(datetime)


def _sync_schedule(workflow: Workflow) -> None:
    """The django-q schedule of a scheduled workflow exists exactly while it is active."""
    name = schedule_name(workflow.pk)
    version = workflow.published_version
    wanted = (
        workflow.status == Workflow.Status.ACTIVE
        and workflow.deleted_at is None
        and version is not None
        and version.trigger_type == WorkflowVersion.TriggerType.SCHEDULE
    )
    if not wanted:
        Schedule.objects.filter(name=name).delete()
        return
    Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": SCHEDULE_FUNC,
            "args": repr((workflow.pk,)),
            "schedule_type": Schedule.CRON,
            "cron": version.trigger_cron,
            "repeats": -1,
            "next_run": _next_fire(version.trigger_cron),
            # The task gets the slot's time, so a redelivered task cannot start it twice.
            "intended_date_kwarg": "slot",
        },
    )
