"""`POST /api/v1/workflows/{id}/backtests` and `GET /api/v1/backtests/{id}`: a workflow version
replayed against stored events as a job (docs/api-workflows.md, "Backtests").

The body is checked by `requests.py`, so each error names its field (`since`, `until`,
`version`); the backtest is created in the request's transaction with its `Idempotency-Key`,
answered 202, and the job starts once it commits.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router
from pydantic import BaseModel, ConfigDict

from billing.api_schemas import Out
from billing.api_support.auth import KeyAuth
from billing.api_support.idempotency import Answer, idempotent
from billing.errors import InvalidRequestError, NotFoundError
from billing.snapshots import unix
from workflows.backtests.jobs import backtest_create
from workflows.backtests.requests import BacktestRequestError, check_request
from workflows.models import Backtest, Workflow

# Whoever may test a workflow in the builder may backtest it; whoever may see it, read one.
WORKFLOWS_VIEW = KeyAuth("workflows.view")
WORKFLOWS_MANAGE = KeyAuth("workflows.manage")

router = Router(tags=["backtests"])

FIELDS = ("since", "until", "version")


class BacktestRequestBody(BaseModel):
    """All optional: the last 30 days of the draft (else the published version)."""

    model_config = ConfigDict(title="BacktestRequest")

    since: int | str | None = Field(
        None, description="Unix seconds or ISO 8601; default: 30 days before `until`"
    )
    until: int | str | None = Field(None, description="Unix seconds or ISO 8601; default: now")
    version: Literal["draft", "published"] | int | None = Field(
        None, description="Default: the draft if there is one, else the published version"
    )


class BacktestIn(BaseModel):
    """Takes the JSON object as sent (checked by `workflows.backtests.requests`); the OpenAPI
    document shows `BacktestRequest`."""

    model_config = ConfigDict(extra="allow")
    documented_as: ClassVar[type[BaseModel]] = BacktestRequestBody

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return handler(cls.documented_as.__pydantic_core_schema__)


class BacktestStepOut(BaseModel):
    would_run: int = Field(description="Times it would run, each loop iteration once")
    amounts: dict[str, int] = Field(description="{currency: minor units} it would move")


class BacktestSampleOut(BaseModel):
    event: str
    created: int | None
    route: str = Field(description="The run's path keys in order, or 'straight through'")
    path: list[str]
    steps: list[str] = Field(description="The steps it would run")


class BacktestOut(Out):
    id: int
    object: Literal["backtest"]
    workflow: int
    version: Literal["draft"] | int
    status: Literal["queued", "running", "done", "failed"]
    since: int | None
    until: int | None
    events_total: int | None = Field(description="Events of the trigger's type in the range")
    events_scanned: int
    would_start: int
    paths: dict[str, int] = Field(
        description="{path name: runs}; also 'stopped at <condition>', 'failed at <step>'"
    )
    steps: dict[str, BacktestStepOut]
    samples: list[BacktestSampleOut]
    writes: Literal["none"] = Field(
        description="Nothing is written to billing: actions with side effects are not executed"
    )
    error: str
    created: int | None
    finished_at: int | None


def backtest_json(backtest: Backtest) -> dict:
    return {
        "id": backtest.pk,
        "object": "backtest",
        "workflow": backtest.workflow_id,
        "version": backtest.version_number if backtest.version_number is not None else "draft",
        "status": backtest.status,
        "since": unix(backtest.since),
        "until": unix(backtest.until),
        "events_total": backtest.events_total,
        "events_scanned": backtest.events_scanned,
        "would_start": backtest.would_start,
        "paths": backtest.paths,
        "steps": backtest.steps,
        "samples": backtest.samples,
        "writes": "none",
        "error": backtest.error,
        "created": unix(backtest.created),
        "finished_at": unix(backtest.finished_at),
    }


@router.post(
    "/workflows/{workflow_id}/backtests",
    auth=WORKFLOWS_MANAGE,
    summary="Backtest a workflow version against stored events (a background job)",
    response={202: BacktestOut},
)
def backtest_start(request: HttpRequest, workflow_id: int, payload: BacktestIn) -> HttpResponse:
    workflow = (
        Workflow.objects.filter(
            environment=request.environment, deleted_at__isnull=True, pk=workflow_id
        )
        .select_related("draft_version", "published_version", "environment")
        .first()
    )
    if workflow is None:
        raise NotFoundError(f"No such workflow: '{workflow_id}'", param="id")
    data = dict(payload.model_extra or {})
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidRequestError(f"Unknown field {unknown[0]!r}.", param=unknown[0])
    try:
        asked = check_request(workflow, **{name: data.get(name) for name in FIELDS})
    except BacktestRequestError as exc:
        raise InvalidRequestError(exc.message, param=exc.param) from exc

    def write(key: str | None) -> Answer:
        backtest = backtest_create(
            workflow=workflow,
            definition=asked.definition,
            version_number=asked.version_number,
            since=asked.since,
            until=asked.until,
            api_key=request.auth,
        )
        return Answer(202, backtest_json(backtest))

    return idempotent(request, write)


@router.get(
    "/backtests/{backtest_id}",
    auth=WORKFLOWS_VIEW,
    summary="A backtest's progress and report",
    response={200: BacktestOut},
)
def backtest_retrieve(request: HttpRequest, backtest_id: int) -> dict:
    backtest = Backtest.objects.filter(environment=request.environment, pk=backtest_id).first()
    if backtest is None:
        raise NotFoundError(f"No such backtest: '{backtest_id}'", param="id")
    return backtest_json(backtest)
