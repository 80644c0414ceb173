"""What a batch applies to: a list of run ids, or the runs list's filter.

A filter is stored as `RunFilters.as_query()` (the list's query parameters), so the job, the
runs list, the commands and the API read it with the same `RunFilters`. The API's filter
(`{"workflow", "status", "event_type", "event", "object", "created": {"gte", "lt"}}`) and
its run ids are checked here, each error naming the field as the API spells it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing.api_support.lists import MAX_UNIX_TIME
from billing.errors import InvalidRequestError
from billing.models import Environment
from workflows.inspector.selectors import RunFilters
from workflows.models import RestartMode, Run, RunBatch, Workflow

# Ids sent in one request; more runs than this are selected with a filter.
MAX_LISTED_RUNS = 10_000
# API filter field -> RunFilters query parameter.
API_FILTER_FIELDS = {
    "workflow": "workflow",
    "status": "status",
    "event_type": "event_type",
    "event": "event_id",
    "object": "object_id",
}
CREATED_BOUNDS = {"gte": "since", "lt": "until"}
# The largest id a database column holds: a larger number is no id (and no query).
MAX_ID = 2**63 - 1


def batch_filters(batch: RunBatch) -> RunFilters:
    return RunFilters.from_query((batch.selection or {}).get("filter") or {})


def check_action(action: Any, mode: Any) -> str:
    """The action, and the restart mode checked against `RestartMode` ("" for a cancel)."""
    if action not in RunBatch.Action.values:
        raise InvalidRequestError("`action` must be 'restart' or 'cancel'.", param="action")
    if mode is None or mode == "":
        return ""
    if action != RunBatch.Action.RESTART:
        raise InvalidRequestError("`mode` is only for action 'restart'.", param="mode")
    if mode not in RestartMode.values:
        choices = ", ".join(RestartMode.values)
        raise InvalidRequestError(f"`mode` must be one of {choices}.", param="mode")
    return mode


def check_run_ids(*, environment: Environment, runs: Any) -> list[int]:
    """`runs`: a non-empty list of ids of `environment`'s runs, or a 400 naming `runs[i]`."""
    if not isinstance(runs, list) or not runs:
        raise InvalidRequestError("`runs` must be a non-empty list of run ids.", param="runs")
    if len(runs) > MAX_LISTED_RUNS:
        raise InvalidRequestError(
            f"`runs` lists at most {MAX_LISTED_RUNS:,} runs; select more with `filter`.",
            param="runs",
        )
    for i, value in enumerate(runs):
        if type(value) is not int or not 0 < value <= MAX_ID:
            raise InvalidRequestError(
                f"`runs[{i}]` must be a run id (an integer).", param=f"runs[{i}]"
            )
    known = set(
        Run.objects.filter(environment=environment, dry_run=False, pk__in=runs).values_list(
            "pk", flat=True
        )
    )
    for i, value in enumerate(runs):
        if value not in known:
            raise InvalidRequestError(f"No such run: {value}.", param=f"runs[{i}]")
    return runs


def check_api_filter(*, environment: Environment, data: Any) -> dict[str, str]:
    """The API's filter as the runs list's query parameters, or a 400 naming `filter[field]`."""
    if not isinstance(data, dict):
        raise InvalidRequestError("`filter` must be an object.", param="filter")
    query: dict[str, str] = {}
    for name, value in data.items():
        param = f"filter[{name}]"
        if name == "created":
            query.update(_created(value))
        elif name not in API_FILTER_FIELDS:
            known = ", ".join([*API_FILTER_FIELDS, "created"])
            raise InvalidRequestError(f"Unknown filter field (known: {known}).", param=param)
        elif name == "workflow":
            if type(value) is not int or not 0 < value <= MAX_ID:
                raise InvalidRequestError("Must be a workflow id (an integer).", param=param)
            if not _workflow_exists(environment, value):
                raise InvalidRequestError("No such workflow.", param=param)
            query["workflow"] = str(value)
        elif name == "status":
            if value not in Run.Status.values:
                raise InvalidRequestError(
                    f"Must be one of {', '.join(Run.Status.values)}.", param=param
                )
            query["status"] = value
        else:
            if not isinstance(value, str) or len(value) > 80:
                raise InvalidRequestError("Must be a string of at most 80 characters.", param=param)
            query[API_FILTER_FIELDS[name]] = value.strip()
    return RunFilters.from_query(query).as_query()


def _created(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidRequestError(
            'Must be an object such as {"gte": 1767225600, "lt": 1769904000}.',
            param="filter[created]",
        )
    out = {}
    for bound, unix in value.items():
        param = f"filter[created][{bound}]"
        if bound not in CREATED_BOUNDS:
            raise InvalidRequestError("Use `gte` and `lt` (Unix seconds).", param=param)
        if type(unix) is not int or not 0 <= unix <= MAX_UNIX_TIME:
            raise InvalidRequestError(f"Must be Unix seconds, 0 to {MAX_UNIX_TIME}.", param=param)
        out[CREATED_BOUNDS[bound]] = datetime.fromtimestamp(unix, UTC).isoformat()
    return out


def _workflow_exists(environment: Environment, workflow_id: int) -> bool:
    return Workflow.objects.filter(environment=environment, pk=workflow_id).exists()
