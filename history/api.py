"""`GET /api/v1/history?object=<id>`: one object's history, newest first (docs/history.md).

Any key may call it (`billing.view`, the least right); the object's kind then asks its own:
billing objects `billing.view`, workflows `workflows.view`, runs `runs.view`, API keys
`api_keys.manage`, people and roles `users.manage`. Only objects of the key's environment are
found; people and roles belong to no environment.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from backoffice.roles import ROLE_BY_KEY_ROLE, role_has
from billing.api_schemas import StripeList
from billing.api_support.auth import KeyAuth
from billing.api_support.errors import ApiError
from billing.api_support.lists import CreatedFilters, api_relative_path, filter_created
from history import objects
from history.entries import BadCursor, history_page

router = Router(tags=["history"])


class HistoryQuery(CreatedFilters):
    object: str = Field(
        ...,
        description="The object: a billing object's id (`cus_…`) or `<type>:<id>` "
        "(`workflow:12`, `workflow_version:7`, `run:345`, `api_key:3`, `user:5`, `group:2`)",
    )
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    starting_after: str | None = Field(None, description="An entry id: the page after it")
    ending_before: str | None = Field(None, description="An entry id: the page before it")


class ActorOut(Schema):
    type: Literal["user", "api_key", "workflow_run", "system"]
    id: str | None
    name: str


class ObjectRef(Schema):
    type: str
    id: Any


class HistoryEntryOut(Schema):
    id: str
    created: int = Field(..., description="Unix time of the change's transaction")
    actor: ActorOut
    action: str = Field(..., description="created, updated, deleted, role_added, role_removed")
    object: ObjectRef
    changes: dict[str, list[Any]] = Field(..., description="{field: [before, after]}")
    request_id: str


def _invalid(message: str, param: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, "invalid_request_error", code, message, param)


@router.get(
    "/history",
    auth=KeyAuth("billing.view"),
    summary="List an object's history",
    response={200: StripeList[HistoryEntryOut]},
)
def history_list(request: HttpRequest, query: Query[HistoryQuery]) -> dict:
    try:
        kind, pk = objects.parse_reference(query.object)
    except objects.UnknownObject as exc:
        raise _invalid(f"Invalid object: {exc}", "object") from None
    role = ROLE_BY_KEY_ROLE.get(request.auth.role, 0)
    if not role_has(role, kind.capability):
        raise ApiError(
            403,
            "permission_error",
            "insufficient_permissions",
            f"This API key (role {request.auth.role}) may not read the history of "
            f"{kind.name} objects; it needs {kind.capability}.",
        )
    subject = objects.find(kind, pk, request.environment)
    if subject is None:
        raise _invalid(f"No such object: '{query.object}'", "object", "resource_missing")
    if query.starting_after and query.ending_before:
        raise _invalid("Use starting_after or ending_before, not both.", "ending_before")
    try:
        entries, has_more = history_page(
            subject,
            limit=query.limit,
            starting_after=query.starting_after,
            ending_before=query.ending_before,
            # `created` here is when the change was made, not when the object was.
            narrow=lambda rows: filter_created(rows, query, field="pgh_created_at"),
        )
    except BadCursor as exc:
        param = "starting_after" if query.starting_after else "ending_before"
        raise _invalid(str(exc), param, "resource_missing") from None
    return {
        "object": "list",
        "data": [entry.as_dict() for entry in entries],
        "has_more": has_more,
        "url": api_relative_path(request),
    }
