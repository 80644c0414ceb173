"""Webhook endpoints in the API: `POST/GET/DELETE /api/v1/webhook_endpoints`, Stripe's shapes.

Developer and Admin keys only (`webhooks.manage`); a key sees its own environment's endpoints.
The signing secret is in the answer to the POST that creates the endpoint, and nowhere else.
"""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router

from billing import selectors as billing_selectors
from billing.api import In, ListParams
from billing.api_schemas import DeletedOut, Obj, StripeList
from billing.api_support.auth import KeyAuth
from billing.api_support.idempotency import idempotent
from billing.api_support.lists import filter_created, paginate
from webhooks import selectors, services

MANAGE = KeyAuth("webhooks.manage")

router = Router(tags=["webhook endpoints"])

EventType = Annotated[str, Field(min_length=1, max_length=100)]


class WebhookEndpointCreate(In):
    """JSON, or a form in Stripe's bracket notation (`enabled_events[0]=…`, as its SDKs send);
    unknown fields are refused."""

    url: Annotated[
        str,
        Field(
            min_length=1,
            max_length=services.MAX_URL,
            description="http(s) URL whose host is in HTTP_ALLOWED_HOSTS",
        ),
    ]
    enabled_events: Annotated[
        list[EventType],
        Field(
            min_length=1,
            max_length=services.MAX_ENABLED_EVENTS,
            description='Event types to send, or ["*"] for all of them',
        ),
    ]
    description: Annotated[str, Field(max_length=services.MAX_DESCRIPTION)] | None = None


class WebhookEndpointOut(Obj):
    """What `selectors.endpoint_json` renders: Stripe's `webhook_endpoint` object."""

    object: Literal["webhook_endpoint"]
    description: str | None
    enabled_events: list[str]
    status: Literal["enabled", "disabled"]
    url: str


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    """The answer to the create, the one place the signing secret is shown."""

    secret: str = Field(description="The signing secret (whsec_…): shown only here")


@router.post(
    "/webhook_endpoints",
    auth=MANAGE,
    summary="Create a webhook endpoint",
    response={200: WebhookEndpointCreatedOut},
)
def webhook_endpoint_create(request: HttpRequest, payload: WebhookEndpointCreate) -> HttpResponse:
    def write(_key: str | None) -> dict:
        endpoint = services.webhook_endpoint_create(
            environment=request.environment,
            url=payload.url,
            enabled_events=payload.enabled_events,
            description=payload.description or "",
        )
        return selectors.endpoint_json(endpoint, with_secret=True)

    return idempotent(request, write)


@router.get(
    "/webhook_endpoints",
    auth=MANAGE,
    summary="List webhook endpoints",
    response={200: StripeList[WebhookEndpointOut]},
)
def webhook_endpoint_list(request: HttpRequest, page: Query[ListParams]) -> dict:
    body = paginate(
        request,
        filter_created(
            selectors.endpoints_in(request.environment).select_related("environment"), page
        ),
        selectors.endpoint_json,
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    # An endpoint names no other object, so any `expand` path is a 400 naming it, as on the
    # billing lists, rather than ignored.
    return billing_selectors.expand(body, page.expand, environment=request.environment)


@router.get(
    "/webhook_endpoints/{endpoint_id}",
    auth=MANAGE,
    summary="Retrieve a webhook endpoint",
    response={200: WebhookEndpointOut},
)
def webhook_endpoint_retrieve(request: HttpRequest, endpoint_id: str) -> dict:
    return selectors.endpoint_json(selectors.get_endpoint(request.environment, endpoint_id))


@router.delete(
    "/webhook_endpoints/{endpoint_id}",
    auth=MANAGE,
    summary="Delete a webhook endpoint",
    response={200: DeletedOut},
)
def webhook_endpoint_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    def write(_key: str | None) -> dict:
        endpoint = selectors.get_endpoint(request.environment, endpoint_id)
        services.webhook_endpoint_delete(endpoint=endpoint)
        return {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}

    return idempotent(request, write)
