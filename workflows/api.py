"""Workflow and run resources of the API (`/api/v1/workflows`, `/api/v1/runs`).

Same keys, errors and idempotency as the billing resources (`billing.api_support`): every lookup
is scoped to the key's environment (another environment's workflow or run is a 404), every write
goes through `workflows.services` or `workflows.engine.runs` (invoke, restart and cancel
through `workflows.inspector.audit`, so the run's history names the API key), and POSTs honour
`Idempotency-Key`.
docs/api-workflows.md shows the requests and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Body, Field, Query, Router, Schema
from pydantic import BaseModel, ConfigDict

from billing.api_schemas import Out, StripeList
from billing.api_support.auth import KeyAuth
from billing.api_support.idempotency import idempotent
from billing.api_support.lists import CreatedFilters, filter_created, paginate
from billing.errors import InvalidRequestError, NotFoundError
from billing.snapshots import unix
from workflows import services
from workflows.definition.model import definition_schema, written_out_models
from workflows.definition.validation import DefinitionInvalid, ValidationError
from workflows.engine import serial
from workflows.engine.approvals import ApprovalError
from workflows.engine.delays import waiting_on
from workflows.inspector.audit import (
    run_cancel_audited,
    run_decide_audited,
    run_note_add,
    run_resolve_audited,
    run_restart_audited,
    run_start_manual_audited,
)
from workflows.models import RestartMode, Run, RunNote, StepRun, Workflow

WORKFLOWS_VIEW = KeyAuth("workflows.view")
WORKFLOWS_MANAGE = KeyAuth("workflows.manage")
RUNS_VIEW = KeyAuth("runs.view")
RUNS_MANAGE = KeyAuth("runs.manage")
RUNS_NOTE = KeyAuth("runs.note")
RUNS_APPROVE = KeyAuth("runs.approve")

router = Router(tags=["workflows"])

READ_ONLY_FIELDS = frozenset(
    {"id", "object", "status", "version", "has_draft", "kind", "created", "updated"}
)


class WorkflowInvalidError(InvalidRequestError):
    """A definition that does not validate: the first error in the envelope, all in `errors`."""

    code = "workflow_invalid"

    def __init__(self, errors: list[ValidationError]) -> None:
        first = errors[0]
        more = f" ({len(errors) - 1} more in `errors`)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}", param=first.field)
        self.errors = errors

    def to_dict(self) -> dict:
        return {**super().to_dict(), "errors": [error.as_dict() for error in self.errors]}


def _service(call: Callable[[], Any]) -> Any:
    """Run a workflow service, turning its errors into the API's error envelope."""
    try:
        return call()
    except DefinitionInvalid as exc:
        raise WorkflowInvalidError(exc.errors) from exc
    except services.WorkflowError as exc:
        raise InvalidRequestError(exc.message, code=exc.code, param=exc.param) from exc


# --- input types -------------------------------------------------------------------------------


class _ReadOnly(BaseModel):
    """What GET adds to the JSON form (docs/api-workflows.md)."""

    id: int
    object: Literal["workflow"]
    status: Literal["draft", "active", "inactive"]
    version: int | None
    has_draft: bool
    kind: Literal["automation", "system"]
    created: int | None
    updated: int | None


# The OpenAPI document shows the definition with its nesting written out level by level: the
# tools that read it (and our schemathesis walk) cannot follow a recursive schema.
# GET /workflows/schema serves the recursive model itself.
DocumentedDefinition = written_out_models()


class WorkflowRequest(DocumentedDefinition):
    """The JSON form; what GET answered may be sent back, its read-only fields are ignored."""

    model_config = ConfigDict(title="WorkflowRequest")

    id: int | None = None
    object: Literal["workflow"] | None = None
    status: str | None = None
    version: int | None = None
    has_draft: bool | None = None
    kind: Literal["automation"] | None = Field(
        None, description="Read-only: the API makes automations"
    )
    created: int | None = None
    updated: int | None = None


class WorkflowResource(DocumentedDefinition, _ReadOnly):
    """A workflow: its JSON form (the draft when there is one) and what GET adds."""

    model_config = ConfigDict(title="WorkflowResource")


class _Passthrough(BaseModel):
    """Takes any JSON object as it is; the OpenAPI document shows `documented_as` instead.

    A definition is checked by the workflow validator, not by ninja, so its errors name the
    step and the field (`workflow_invalid`) and answers are sent exactly as built.
    """

    model_config = ConfigDict(extra="allow")
    documented_as: ClassVar[type[BaseModel]]

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return handler(cls.documented_as.__pydantic_core_schema__)


class WorkflowIn(_Passthrough):
    """A workflow's JSON form, as sent."""

    documented_as = WorkflowRequest

    def definition(self) -> dict:
        data = dict(self.model_extra or {})
        # What GET adds to the JSON form may be sent back and is dropped; every other key goes
        # to the validator, which refuses unknown keys (as the import does).
        kind = data.get("kind")
        if kind not in (None, Workflow.Kind.AUTOMATION):
            raise InvalidRequestError(
                f"'kind' is read-only: the API makes and changes automation workflows, not "
                f"{kind!r}. Leave 'kind' out.",
                param="kind",
            )
        return {key: value for key, value in data.items() if key not in READ_ONLY_FIELDS}


class WorkflowOut(_Passthrough):
    documented_as = WorkflowResource


# --- answer types ------------------------------------------------------------------------------
# What `workflow_json`, `run_json` and `step_json` render, typed for the OpenAPI document; a list
# is the one `StripeList[T]` envelope. Like the billing answers they allow fields they do not
# name, and tests/security/test_hostile_api_schema.py checks the answers against them.

UnixSeconds = Annotated[int, Field(description="Unix time, seconds")]
StepRunStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "canceled"]
RunStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "canceled", "resolved"]


class WorkflowDeletedOut(Out):
    id: int
    object: Literal["workflow"]
    deleted: Literal[True]


class DefinitionSchemaOut(Out):
    """The JSON Schema (draft 2020-12) of a workflow's JSON form, recursion and all."""

    title: str
    type: Literal["object"]
    properties: dict[str, Any]
    required: list[str]
    defs: dict[str, Any] = Field(alias="$defs")


class StepRunOut(Out):
    """One step's execution: one per step and loop iteration ("" outside loops, "3", "3.0")."""

    step_id: str
    iteration: str
    status: StepRunStatus
    attempts: int
    params: dict[str, Any] | None = Field(description="The params as resolved for the call")
    output: dict[str, Any] | None
    error: dict[str, Any] | None = Field(description='{"type", "message", "retryable"}')
    attempt_errors: list[dict[str, Any]] = Field(
        description='One per failed attempt: {"attempt", "type", "message", "retryable", "at"}'
    )
    branch: str | None = Field(description="The path a branch step took")
    changed_objects: list[dict[str, Any]] = Field(
        description='Objects the step changed: {"object", "id", "before", "after"}'
    )
    attempt_log: list[dict[str, Any]] = Field(
        description="Every attempt with its own timing, across restarts: "
        '{"attempt", "restart", "status", "started_at", "finished_at", "error"} '
        '(ISO 8601 times; "key": the idempotency key an attempt used before a restart from '
        "the start gave the step a new one)"
    )
    started_at: UnixSeconds | None
    finished_at: UnixSeconds | None
    next_attempt_at: UnixSeconds | None


class RunNoteOut(Out):
    """A note on a run; `kind` "resolution" is the one written when it was resolved."""

    id: int
    object: Literal["run_note"]
    kind: Literal["note", "resolution"]
    body: str
    author: str = Field(description="The person or API key that wrote it")
    created: UnixSeconds | None


class RunOut(Out):
    """A run as lists show it; retrieving it (and restart, cancel, invoke) adds its `steps`."""

    id: int
    object: Literal["run"]
    status: RunStatus
    workflow: int
    version: int | None
    trigger_kind: Literal["event", "manual", "schedule"]
    event: str | None = Field(description="The event that started it (event runs)")
    input: dict[str, Any] | None = Field(description="The input it was started with (manual runs)")
    error: dict[str, Any] | None = Field(
        description='Why it failed: {"type", "message", "step", "iteration", "retryable"}'
    )
    stop_reason: str
    waiting: dict[str, Any] | None = Field(
        None,
        description='A waiting run: {"for": "delay", "step", "resume_at" (Unix time or null), '
        '"reason"}; null otherwise',
    )
    serialized: dict[str, Any] | None = Field(
        None,
        description="A run of a workflow run one at a time per key (trigger.serialize_by): a "
        'pending run held back {"run": the run it waits for, "key", "proceeds_at" (Unix time, '
        'when that run failed, or null), "reason", "passed": false}, or a run that went ahead '
        'of a failed run after the max wait (same keys, "passed": true); null otherwise',
    )
    path: list[dict[str, Any]] = Field(description="The branch decisions taken, in order")
    dry_run: bool
    restart_count: int
    created: UnixSeconds | None
    started_at: UnixSeconds | None
    finished_at: UnixSeconds | None


class RunWithStepsOut(RunOut):
    steps: list[StepRunOut]
    notes: list[RunNoteOut] = Field(description="Its notes, oldest first")


class RestartIn(Schema):
    model_config = ConfigDict(extra="forbid")

    mode: str | None = Field(
        None,
        description="from_failed_step (the default): resume at the failed step, steps that "
        "succeeded are kept; from_start: a new attempt of every step on the same version, "
        "effects happen again; latest_version: the workflow's published version, at the "
        "failed step when its id still exists there, from the start otherwise",
        json_schema_extra={"enum": list(RestartMode.values)},
    )


class NoteIn(Schema):
    model_config = ConfigDict(extra="forbid")

    body: str | None = Field(None, description="The note's text (required, not blank)")


class ResolveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, description="Why it is resolved (required, not blank)")


class DecisionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        None, description="Why: optional for an approval, required (not blank) for a rejection"
    )


class InvokeIn(Schema):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] | None = None


class Page(CreatedFilters):
    """A list's page and its `created` filters, as on every list of the API."""

    limit: Annotated[int, Field(ge=1, le=100)] = 10
    starting_after: int | None = None
    ending_before: int | None = None


class WorkflowFilters(Schema):
    status: Literal["draft", "active", "inactive"] | None = None


class RunFilters(Schema):
    workflow: int | None = None
    status: RunStatus | None = None
    event: Annotated[str, Field(max_length=40)] | None = None


# --- rendering ---------------------------------------------------------------------------------


def workflow_json(workflow: Workflow) -> dict:
    """The JSON form (the draft when there is one) plus id, status and version."""
    published = workflow.published_version
    return {
        "id": workflow.pk,
        "object": "workflow",
        "status": workflow.status,
        "version": published.number if published is not None else None,
        "has_draft": workflow.draft_version_id is not None,
        "kind": workflow.kind,
        "created": unix(workflow.created),
        "updated": unix(workflow.updated),
        **services.workflow_definition(workflow),
    }


def step_json(rec: StepRun) -> dict:
    return {
        "step_id": rec.step_id,
        "iteration": rec.iteration,
        "status": rec.status,
        "attempts": rec.attempts,
        "params": rec.params,
        "output": rec.output,
        "error": rec.error,
        "attempt_errors": rec.attempt_errors,
        "branch": rec.branch_chosen or None,
        "changed_objects": rec.changed_objects,
        "attempt_log": rec.attempt_log,
        "started_at": unix(rec.started_at),
        "finished_at": unix(rec.finished_at),
        "next_attempt_at": unix(rec.next_attempt_at),
    }


def run_json(run: Run, *, steps: bool = False) -> dict:
    body = {
        "id": run.pk,
        "object": "run",
        "status": run.status,
        "workflow": run.workflow_id,
        "version": run.version.number,
        "trigger_kind": run.trigger_kind,
        "event": run.event_id,
        "input": run.trigger.get("input") if run.trigger_kind == Run.TriggerKind.MANUAL else None,
        "error": run.error,
        "stop_reason": run.stop_reason,
        "waiting": _waiting_json(run),
        "serialized": _serialized_json(run),
        "path": run.path,
        "dry_run": run.dry_run,
        "restart_count": run.restart_count,
        "created": unix(run.created),
        "started_at": unix(run.started_at),
        "finished_at": unix(run.finished_at),
    }
    if steps:
        body["steps"] = [step_json(rec) for rec in run.step_runs.order_by("id")]
        notes = RunNote.objects.filter(run=run).select_related("user", "api_key")
        body["notes"] = [note_json(note) for note in notes]
    return body


def _waiting_json(run: Run) -> dict | None:
    waiting = waiting_on(run)
    if waiting is None:
        return None
    if "approval" in waiting:
        approval = waiting["approval"]
        waiting["approval"] = {**approval, "times_out_at": unix(approval["times_out_at"])}
    return {**waiting, "resume_at": unix(waiting["resume_at"])}


def _serialized_json(run: Run) -> dict | None:
    note = serial.note_of(run)
    if note is None:
        return None
    return {**note, "proceeds_at": unix(note["proceeds_at"])}


def note_json(note: RunNote) -> dict:
    return {
        "id": note.pk,
        "object": "run_note",
        "kind": note.kind,
        "body": note.body,
        "author": note.actor,
        "created": unix(note.created),
    }


# --- lookups: always scoped to the key's environment -------------------------------------------


def _workflows(request: HttpRequest) -> QuerySet[Workflow]:
    return Workflow.objects.filter(
        environment=request.environment, deleted_at__isnull=True
    ).select_related("published_version")


def _workflow(request: HttpRequest, workflow_id: int) -> Workflow:
    workflow = _workflows(request).filter(pk=workflow_id).first()
    if workflow is None:
        raise NotFoundError(f"No such workflow: '{workflow_id}'", param="id")
    return workflow


def _runs(request: HttpRequest) -> QuerySet[Run]:
    return Run.objects.filter(environment=request.environment).select_related("version")


def _run(request: HttpRequest, run_id: int) -> Run:
    run = _runs(request).filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"No such run: '{run_id}'", param="id")
    return run


def _list(request: HttpRequest, queryset: QuerySet, page: Page, render) -> dict:
    return paginate(
        request,
        filter_created(queryset, page),
        render,
        limit=page.limit,
        starting_after=str(page.starting_after) if page.starting_after is not None else None,
        ending_before=str(page.ending_before) if page.ending_before is not None else None,
    )


def _fresh_workflow(workflow_id: int) -> dict:
    return workflow_json(Workflow.objects.select_related("published_version").get(pk=workflow_id))


# --- workflows ---------------------------------------------------------------------------------


@router.get(
    "/workflows/schema",
    auth=WORKFLOWS_VIEW,
    summary="The JSON Schema of a workflow's JSON form",
    response={200: DefinitionSchemaOut},
    by_alias=True,  # `$defs`, not the field's Python name
)
def workflow_schema(request: HttpRequest) -> dict:
    # The shape only: what a definition means (known events and actions, references, limits)
    # is checked when it is saved and published (docs/workflows.md).
    return definition_schema()


@router.post(
    "/workflows",
    auth=WORKFLOWS_MANAGE,
    summary="Create a workflow (a draft)",
    response={200: WorkflowOut},
)
def workflow_create(request: HttpRequest, payload: WorkflowIn) -> HttpResponse:
    def write(key: str | None) -> dict:
        workflow = _service(
            lambda: services.workflow_create(
                environment=request.environment, definition=payload.definition()
            )
        )
        return _fresh_workflow(workflow.pk)

    return idempotent(request, write)


@router.get(
    "/workflows",
    auth=WORKFLOWS_VIEW,
    summary="List workflows",
    response={200: StripeList[WorkflowOut]},
)
def workflow_list(request: HttpRequest, page: Query[Page], filters: Query[WorkflowFilters]) -> dict:
    queryset = _workflows(request)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    return _list(request, queryset, page, workflow_json)


@router.get(
    "/workflows/{workflow_id}",
    auth=WORKFLOWS_VIEW,
    summary="Retrieve a workflow",
    response={200: WorkflowOut},
)
def workflow_retrieve(request: HttpRequest, workflow_id: int) -> dict:
    return workflow_json(_workflow(request, workflow_id))


@router.post(
    "/workflows/{workflow_id}",
    auth=WORKFLOWS_MANAGE,
    summary="Update a workflow (a new draft)",
    response={200: WorkflowOut},
)
def workflow_update(request: HttpRequest, workflow_id: int, payload: WorkflowIn) -> HttpResponse:
    workflow = _workflow(request, workflow_id)

    def write(key: str | None) -> dict:
        _service(
            lambda: services.workflow_update(workflow=workflow, definition=payload.definition())
        )
        return _fresh_workflow(workflow.pk)

    return idempotent(request, write)


def _transition(request: HttpRequest, workflow_id: int, service: Callable) -> HttpResponse:
    workflow = _workflow(request, workflow_id)

    def write(key: str | None) -> dict:
        _service(lambda: service(workflow=workflow))
        return _fresh_workflow(workflow.pk)

    return idempotent(request, write)


@router.post(
    "/workflows/{workflow_id}/publish",
    auth=WORKFLOWS_MANAGE,
    summary="Publish the draft as the next version",
    response={200: WorkflowOut},
)
def workflow_publish(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _transition(request, workflow_id, services.workflow_publish)


@router.post(
    "/workflows/{workflow_id}/activate",
    auth=WORKFLOWS_MANAGE,
    summary="Activate a workflow",
    response={200: WorkflowOut},
)
def workflow_activate(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _transition(request, workflow_id, services.workflow_activate)


@router.post(
    "/workflows/{workflow_id}/deactivate",
    auth=WORKFLOWS_MANAGE,
    summary="Deactivate a workflow",
    response={200: WorkflowOut},
)
def workflow_deactivate(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _transition(request, workflow_id, services.workflow_deactivate)


@router.delete(
    "/workflows/{workflow_id}",
    auth=WORKFLOWS_MANAGE,
    summary="Delete a workflow",
    response={200: WorkflowDeletedOut},
)
def workflow_delete(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = _workflow(request, workflow_id)
    _service(lambda: services.workflow_delete(workflow=workflow))
    return JsonResponse({"id": workflow.pk, "object": "workflow", "deleted": True})


@router.post(
    "/workflows/{workflow_id}/invoke",
    auth=RUNS_MANAGE,
    summary="Start a run of a manual workflow with input",
    response={200: RunWithStepsOut},
)
def workflow_invoke(request: HttpRequest, workflow_id: int, payload: InvokeIn) -> HttpResponse:
    workflow = _workflow(request, workflow_id)

    def write(key: str | None) -> dict:
        run = _service(
            lambda: run_start_manual_audited(
                workflow=workflow, input=payload.input, api_key=request.auth
            )
        )
        return run_json(run, steps=True)

    return idempotent(request, write)


# --- runs --------------------------------------------------------------------------------------


@router.get("/runs", auth=RUNS_VIEW, summary="List runs", response={200: StripeList[RunOut]})
def run_list(request: HttpRequest, page: Query[Page], filters: Query[RunFilters]) -> dict:
    queryset = _runs(request)
    if filters.workflow is not None:
        queryset = queryset.filter(workflow_id=filters.workflow)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.event:
        queryset = queryset.filter(event_id=filters.event)
    return _list(request, queryset, page, run_json)


@router.get(
    "/runs/{run_id}",
    auth=RUNS_VIEW,
    summary="Retrieve a run with its steps",
    response={200: RunWithStepsOut},
)
def run_retrieve(request: HttpRequest, run_id: int) -> dict:
    return run_json(_run(request, run_id), steps=True)


def _restart_mode(value: str | None) -> str:
    if value is None:
        return RestartMode.FROM_FAILED_STEP
    if value not in RestartMode.values:
        raise InvalidRequestError(
            f"Unknown restart mode {value!r}: use one of {', '.join(RestartMode.values)}.",
            param="mode",
        )
    return value


@router.post(
    "/runs/{run_id}/restart",
    auth=RUNS_MANAGE,
    summary="Restart a failed run (at its failed step, from the start, or on the latest version)",
    response={200: RunWithStepsOut},
)
def run_restart(
    request: HttpRequest, run_id: int, payload: Body[RestartIn | None] = None
) -> HttpResponse:
    run = _run(request, run_id)
    # No body at all is the default mode, as before modes existed.
    mode = _restart_mode(payload.mode if payload is not None else None)
    return idempotent(
        request,
        lambda key: run_json(
            _service(lambda: run_restart_audited(run=run, api_key=request.auth, mode=mode)),
            steps=True,
        ),
    )


@router.post(
    "/runs/{run_id}/resolve",
    auth=RUNS_MANAGE,
    summary="Resolve a failed run without restarting it, with a note",
    response={200: RunWithStepsOut},
)
def run_resolve(request: HttpRequest, run_id: int, payload: ResolveIn) -> HttpResponse:
    run = _run(request, run_id)
    return idempotent(
        request,
        lambda key: run_json(
            _service(lambda: run_resolve_audited(run=run, note=payload.note, api_key=request.auth)),
            steps=True,
        ),
    )


@router.post(
    "/runs/{run_id}/notes",
    auth=RUNS_NOTE,
    summary="Add a note to a run (any status)",
    response={200: RunNoteOut},
)
def run_note_create(request: HttpRequest, run_id: int, payload: NoteIn) -> HttpResponse:
    run = _run(request, run_id)
    return idempotent(
        request,
        lambda key: note_json(
            _service(lambda: run_note_add(run=run, body=payload.body, api_key=request.auth))
        ),
    )


@router.post(
    "/runs/{run_id}/cancel",
    auth=RUNS_MANAGE,
    summary="Cancel a pending, running or waiting run",
    response={200: RunWithStepsOut},
)
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(request, run_id)
    return idempotent(
        request,
        lambda key: run_json(
            _service(lambda: run_cancel_audited(run=run, api_key=request.auth)), steps=True
        ),
    )


def _decide(request: HttpRequest, run_id: int, payload: DecisionIn | None, approve: bool):
    run = _run(request, run_id)
    note = payload.note if payload is not None else None

    def decide() -> dict:
        try:
            _service(
                lambda: run_decide_audited(
                    run=run, approve=approve, note=note, api_key=request.auth
                )
            )
        except ApprovalError as exc:
            raise InvalidRequestError(
                exc.message, code=exc.code, param=exc.param, http_status=exc.http_status
            ) from exc
        run.refresh_from_db()
        return run_json(run, steps=True)

    return idempotent(request, lambda key: decide())


@router.post(
    "/runs/{run_id}/approve",
    auth=RUNS_APPROVE,
    summary="Approve the approval step a waiting run waits on (the key's role must be one of "
    "its approvers)",
    response={200: RunWithStepsOut},
)
def run_approve(
    request: HttpRequest, run_id: int, payload: Body[DecisionIn | None] = None
) -> HttpResponse:
    return _decide(request, run_id, payload, approve=True)


@router.post(
    "/runs/{run_id}/reject",
    auth=RUNS_APPROVE,
    summary="Reject the approval step a waiting run waits on, with a note (the run fails)",
    response={200: RunWithStepsOut},
)
def run_reject(request: HttpRequest, run_id: int, payload: DecisionIn) -> HttpResponse:
    return _decide(request, run_id, payload, approve=False)
