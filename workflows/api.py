"""Workflow and run resources of the API (`/api/v1/workflows`, `/api/v1/runs`).

Same keys, errors and idempotency as the billing resources (`config.api_support`): every lookup
is scoped to the key's environment (another environment's workflow or run is a 404), every write
goes through `workflows.services` or `workflows.runs` (invoke, restart and cancel through
`workflows.audit`, so the run's history names the API key), and POSTs honour `Idempotency-Key`.
docs/api-workflows.md shows the requests and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Field, Query, Router, Schema
from pydantic import ConfigDict

from billing.errors import InvalidRequestError, NotFoundError
from config.api_support import KeyAuth, idempotent, paginate
from workflows import services
from workflows.audit import run_cancel_audited, run_restart_audited, run_start_manual_audited
from workflows.models import Run, StepRun, Workflow
from workflows.validation import DefinitionInvalid, ValidationError

WORKFLOWS_VIEW = KeyAuth("workflows.view")
WORKFLOWS_MANAGE = KeyAuth("workflows.manage")
RUNS_VIEW = KeyAuth("runs.view")
RUNS_MANAGE = KeyAuth("runs.manage")

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


class WorkflowDefinition(Schema):
    """A workflow's JSON form (docs/workflows.md). Checked by the workflow validator, whose
    errors name the step and the field, rather than here."""

    model_config = ConfigDict(extra="allow")

    name: Any = None
    description: Any = None
    trigger: Any = None
    steps: Any = None

    def definition(self) -> dict:
        # What GET adds to the JSON form is dropped, so a retrieved workflow can be sent back.
        data = self.model_dump(exclude_unset=True)
        return {key: value for key, value in data.items() if key not in READ_ONLY_FIELDS}


class InvokeIn(Schema):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] | None = None


class Page(Schema):
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    starting_after: int | None = None
    ending_before: int | None = None


class WorkflowFilters(Schema):
    status: Literal["draft", "active", "inactive"] | None = None


class RunFilters(Schema):
    workflow: int | None = None
    status: Literal["pending", "running", "succeeded", "failed", "canceled"] | None = None
    event: Annotated[str, Field(max_length=40)] | None = None
    created_gte: int | None = Field(None, alias="created[gte]", description="Unix time")
    created_lte: int | None = Field(None, alias="created[lte]", description="Unix time")


# --- rendering ---------------------------------------------------------------------------------


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


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
        "created": _unix(workflow.created),
        "updated": _unix(workflow.updated),
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
        "started_at": _unix(rec.started_at),
        "finished_at": _unix(rec.finished_at),
        "next_attempt_at": _unix(rec.next_attempt_at),
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
        "path": run.path,
        "dry_run": run.dry_run,
        "restart_count": run.restart_count,
        "created": _unix(run.created),
        "started_at": _unix(run.started_at),
        "finished_at": _unix(run.finished_at),
    }
    if steps:
        body["steps"] = [step_json(rec) for rec in run.step_runs.order_by("id")]
    return body


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
        queryset,
        render,
        limit=page.limit,
        starting_after=str(page.starting_after) if page.starting_after is not None else None,
        ending_before=str(page.ending_before) if page.ending_before is not None else None,
    )


def _fresh_workflow(workflow_id: int) -> dict:
    return workflow_json(Workflow.objects.select_related("published_version").get(pk=workflow_id))


# --- workflows ---------------------------------------------------------------------------------


@router.post("/workflows", auth=WORKFLOWS_MANAGE, summary="Create a workflow (a draft)")
def workflow_create(request: HttpRequest, payload: WorkflowDefinition) -> HttpResponse:
    def write(key: str | None) -> dict:
        workflow = _service(
            lambda: services.workflow_create(
                environment=request.environment, definition=payload.definition()
            )
        )
        return _fresh_workflow(workflow.pk)

    return idempotent(request, write)


@router.get("/workflows", auth=WORKFLOWS_VIEW, summary="List workflows")
def workflow_list(request: HttpRequest, page: Query[Page], filters: Query[WorkflowFilters]) -> dict:
    queryset = _workflows(request)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    return _list(request, queryset, page, workflow_json)


@router.get("/workflows/{workflow_id}", auth=WORKFLOWS_VIEW, summary="Retrieve a workflow")
def workflow_retrieve(request: HttpRequest, workflow_id: int) -> dict:
    return workflow_json(_workflow(request, workflow_id))


@router.post(
    "/workflows/{workflow_id}", auth=WORKFLOWS_MANAGE, summary="Update a workflow (a new draft)"
)
def workflow_update(
    request: HttpRequest, workflow_id: int, payload: WorkflowDefinition
) -> HttpResponse:
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
)
def workflow_publish(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _transition(request, workflow_id, services.workflow_publish)


@router.post(
    "/workflows/{workflow_id}/activate", auth=WORKFLOWS_MANAGE, summary="Activate a workflow"
)
def workflow_activate(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _transition(request, workflow_id, services.workflow_activate)


@router.post(
    "/workflows/{workflow_id}/deactivate", auth=WORKFLOWS_MANAGE, summary="Deactivate a workflow"
)
def workflow_deactivate(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _transition(request, workflow_id, services.workflow_deactivate)


@router.delete("/workflows/{workflow_id}", auth=WORKFLOWS_MANAGE, summary="Delete a workflow")
def workflow_delete(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = _workflow(request, workflow_id)
    _service(lambda: services.workflow_delete(workflow=workflow))
    return JsonResponse({"id": workflow.pk, "object": "workflow", "deleted": True})


@router.post(
    "/workflows/{workflow_id}/invoke",
    auth=RUNS_MANAGE,
    summary="Start a run of a manual workflow with input",
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


@router.get("/runs", auth=RUNS_VIEW, summary="List runs")
def run_list(request: HttpRequest, page: Query[Page], filters: Query[RunFilters]) -> dict:
    queryset = _runs(request)
    if filters.workflow is not None:
        queryset = queryset.filter(workflow_id=filters.workflow)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.event:
        queryset = queryset.filter(event_id=filters.event)
    if filters.created_gte is not None:
        queryset = queryset.filter(created__gte=datetime.fromtimestamp(filters.created_gte, UTC))
    if filters.created_lte is not None:
        queryset = queryset.filter(created__lte=datetime.fromtimestamp(filters.created_lte, UTC))
    return _list(request, queryset, page, run_json)


@router.get("/runs/{run_id}", auth=RUNS_VIEW, summary="Retrieve a run with its steps")
def run_retrieve(request: HttpRequest, run_id: int) -> dict:
    return run_json(_run(request, run_id), steps=True)


@router.post(
    "/runs/{run_id}/restart", auth=RUNS_MANAGE, summary="Restart a failed run at its failed step"
)
def run_restart(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(request, run_id)
    return idempotent(
        request,
        lambda key: run_json(
            _service(lambda: run_restart_audited(run=run, api_key=request.auth)), steps=True
        ),
    )


@router.post("/runs/{run_id}/cancel", auth=RUNS_MANAGE, summary="Cancel a pending or running run")
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(request, run_id)
    return idempotent(
        request,
        lambda key: run_json(
            _service(lambda: run_cancel_audited(run=run, api_key=request.auth)), steps=True
        ),
    )
