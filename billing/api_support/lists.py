"""Stripe's lists: the `created` filters every list takes, and cursor pagination by object id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from ninja import Field, Schema

from billing.api_support.errors import ApiError

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# The range `datetime` can hold (1970-01-01 .. 9999-12-31 23:59:59 UTC). A `created[gte]` or
# `created[lte]` outside it is a 400 naming the param, checked by the schema, so `from_unix`
# never meets a timestamp `datetime.fromtimestamp` would raise on.
MAX_UNIX_TIME = 253_402_300_799
UnixTime = Annotated[
    int, Field(ge=0, le=MAX_UNIX_TIME, description="Unix time (seconds), 0 to 253402300799")
]


def from_unix(value: int) -> datetime:
    """A `UnixTime` filter value as an aware datetime (every list's `created[...]` filters)."""
    return datetime.fromtimestamp(value, UTC)


class CreatedFilters(Schema):
    """Stripe's `created` filters, which every list takes (billing, workflows, runs, webhook
    endpoints): `created` (that second), `created[gt]`, `[gte]`, `[lt]`, `[lte]`."""

    created: UnixTime | None = Field(None, description="Created at exactly this Unix time")
    created_gt: UnixTime | None = Field(None, alias="created[gt]")
    created_gte: UnixTime | None = Field(None, alias="created[gte]")
    created_lt: UnixTime | None = Field(None, alias="created[lt]")
    created_lte: UnixTime | None = Field(None, alias="created[lte]")


def filter_created(queryset: QuerySet, filters: CreatedFilters, field: str = "created") -> QuerySet:
    """`queryset` narrowed by the `created` filters the request sent, on its `field`."""
    if filters.created is not None:
        second = from_unix(filters.created)
        # Its last microsecond, not the next second: the largest time has no next second.
        queryset = queryset.filter(
            **{
                f"{field}__gte": second,
                f"{field}__lte": second + timedelta(microseconds=999_999),
            }
        )
    for value, lookup in (
        (filters.created_gt, "gt"),
        (filters.created_gte, "gte"),
        (filters.created_lt, "lt"),
        (filters.created_lte, "lte"),
    ):
        if value is not None:
            queryset = queryset.filter(**{f"{field}__{lookup}": from_unix(value)})
    return queryset


def paginate(
    request: HttpRequest,
    queryset: QuerySet,
    render: Callable[[Any], dict],
    *,
    limit: int = DEFAULT_LIMIT,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> dict:
    """A Stripe list of `queryset` (newest first), cursor-paginated by object id.

    `queryset` must already be scoped to `request.environment`; cursors from another
    environment are rejected as unknown.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400,
            "invalid_request_error",
            "parameter_invalid_integer",
            f"limit must be between 1 and {MAX_LIMIT}.",
            "limit",
        )
    if starting_after and ending_before:
        raise ApiError(
            400,
            "invalid_request_error",
            "parameter_invalid",
            "Use starting_after or ending_before, not both.",
            "ending_before",
        )
    ordered = queryset.order_by("-created", "-pk")
    if starting_after:
        cursor = _scoped_cursor(request, queryset, starting_after, "starting_after")
        page = ordered.filter(
            Q(created__lt=cursor.created) | Q(created=cursor.created, pk__lt=cursor.pk)
        )
        rows = list(page[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    elif ending_before:
        cursor = _scoped_cursor(request, queryset, ending_before, "ending_before")
        page = queryset.order_by("created", "pk").filter(
            Q(created__gt=cursor.created) | Q(created=cursor.created, pk__gt=cursor.pk)
        )
        rows = list(page[: limit + 1])
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        rows = list(ordered[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    return {
        "object": "list",
        "data": [render(row) for row in rows],
        "has_more": has_more,
        "url": api_relative_path(request),
    }


# The API is served at `/api/v1/`, and a Stripe client's `api_base` is the origin plus `/api`
# (Stripe's own is `https://api.stripe.com`, its paths `/v1/…`). A list's `url` is the path
# after that base, `/v1/customers` as in Stripe, so the SDK's auto-pagination, which requests
# `api_base + url`, lands on the same list.
API_BASE_PATH = "/api"


def api_relative_path(request: HttpRequest) -> str:
    path = request.path_info
    return path[len(API_BASE_PATH) :] if path.startswith(API_BASE_PATH + "/") else path


def _scoped_cursor(request: HttpRequest, queryset: QuerySet, object_id: str, param: str) -> Model:
    cursor = queryset.model._default_manager.filter(
        pk=object_id, environment=request.environment
    ).first()
    if cursor is None:
        raise ApiError(
            400,
            "invalid_request_error",
            "resource_missing",
            f"No such object: '{object_id}'",
            param,
        )
    return cursor
