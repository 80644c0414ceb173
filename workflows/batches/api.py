"""`POST /api/v1/run_batches` and `GET /api/v1/run_batches/{id}`: bulk restart and cancel as a
job (docs/api-workflows.md, "Run batches").

The body is checked here, not by ninja, so each error names the field as sent (`runs[3]`,
`filter[status]`); the batch is created in the request's transaction with its
`Idempotency-Key`, and the job starts once it commits.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router
from pydantic import BaseModel, ConfigDict

from billing.api_schemas import Out
from billing.api_support.auth import KeyAuth
from billing.api_support.idempotency import idempotent
from billing.errors import InvalidRequestError, NotFoundError
from billing.snapshots import unix
from workflows.batches.jobs import batch_create
from workflows.batches.selection import check_action, check_api_filter, check_run_ids
from workflows.models import RunBatch

RUNS_VIEW = KeyAuth("runs.view")
RUNS_MANAGE = KeyAuth("runs.manage")

router = Router(tags=["run batches"])


class RunBatchFilter(BaseModel):
    workflow: int | None = None
    status: Literal["pending", "running", "succeeded", "failed", "canceled"] | None = None
    event_type: str | None = Field(None, max_length=80)
    event: str | None = Field(None, max_length=80, description="evt_…")
    object: str | None = Field(None, max_length=80, description="cus_…, in_…, sub_…")
    created: dict[Literal["gte", "lt"], int] | None = Field(None, description="Unix seconds")


class RunBatchRequest(BaseModel):
    """Exactly one of `runs` and `filter`; `mode` only with `restart`."""

    model_config = ConfigDict(title="RunBatchRequest")

    action: Literal["restart", "cancel"]
    runs: list[int] | None = Field(None, description="Run ids of the key's environment")
    filter: RunBatchFilter | None = None
    mode: Literal["from_failed_step", "from_start", "latest_version"] | None = None


class RunBatchIn(BaseModel):
    """Takes the JSON object as sent (checked by `workflows.batches.selection`); the OpenAPI
    document shows `RunBatchRequest`."""

    model_config = ConfigDict(extra="allow")
    documented_as: ClassVar[type[BaseModel]] = RunBatchRequest

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return handler(cls.documented_as.__pydantic_core_schema__)


class RunBatchOut(Out):
    id: int
    object: Literal["run_batch"]
    action: Literal["restart", "cancel"]
    mode: str | None
    status: Literal["pending", "running", "succeeded", "failed"]
    total: int
    done: int
    skipped: int
    failed: int
    reasons: dict[str, int] = Field(description="{reason: runs} for skipped and failed runs")
    selection: dict[str, Any]
    error: str
    created: int | None
    finished_at: int | None


def run_batch_json(batch: RunBatch) -> dict:
    return {
        "id": batch.pk,
        "object": "run_batch",
        "action": batch.action,
        "mode": batch.mode or None,
        "status": batch.status,
        "total": batch.total,
        "done": batch.done,
        "skipped": batch.skipped,
        "failed": batch.failed,
        "reasons": batch.reasons,
        "selection": batch.selection,
        "error": batch.error,
        "created": unix(batch.created),
        "finished_at": unix(batch.finished_at),
    }


@router.post(
    "/run_batches",
    auth=RUNS_MANAGE,
    summary="Restart or cancel many runs as a background job",
    response={200: RunBatchOut},
)
def run_batch_create(request: HttpRequest, payload: RunBatchIn) -> HttpResponse:
    data = dict(payload.model_extra or {})
    unknown = sorted(set(data) - {"action", "runs", "filter", "mode"})
    if unknown:
        raise InvalidRequestError(f"Unknown field {unknown[0]!r}.", param=unknown[0])
    action = data.get("action")
    mode = check_action(action, data.get("mode"))
    if ("runs" in data) == ("filter" in data):
        raise InvalidRequestError("Send exactly one of `runs` and `filter`.", param="runs")
    environment = request.environment
    if "runs" in data:
        runs, selection = check_run_ids(environment=environment, runs=data["runs"]), None
    else:
        runs, selection = None, check_api_filter(environment=environment, data=data["filter"])

    def write(key: str | None) -> dict:
        batch = batch_create(
            environment=environment,
            action=action,
            runs=runs,
            filter=selection,
            mode=mode,
            api_key=request.auth,
        )
        return run_batch_json(batch)

    return idempotent(request, write)


@router.get(
    "/run_batches/{batch_id}",
    auth=RUNS_VIEW,
    summary="A run batch's progress and summary",
    response={200: RunBatchOut},
)
def run_batch_retrieve(request: HttpRequest, batch_id: int) -> dict:
    batch = RunBatch.objects.filter(environment=request.environment, pk=batch_id).first()
    if batch is None:
        raise NotFoundError(f"No such run batch: '{batch_id}'", param="id")
    return run_batch_json(batch)
