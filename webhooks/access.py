"""How a back-office view reaches the webhook endpoint its URL names: the role first
(`backoffice.access.require`, 403), then the endpoint in the session's environment, else 404."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from backoffice.access import require
from billing.errors import NotFoundError
from webhooks import selectors as webhook_selectors
from webhooks.models import WebhookEndpoint


def endpoint_for(
    request: HttpRequest, endpoint_id: str, *, capability: str = "webhooks.manage"
) -> WebhookEndpoint:
    """A webhook endpoint of the session's environment."""
    require(request, capability)
    try:
        return webhook_selectors.get_endpoint(request.environment, endpoint_id)
    except NotFoundError:
        raise Http404("No such webhook endpoint in this environment.") from None
