"""Webhook endpoints in the back office, under /admin/webhooks/, in the admin's layout.

Developer and Admin (`webhooks.manage`) list, create and delete the current environment's
endpoints, read each one's delivery log and resend a delivery. The signing secret is shown once,
on the page that answers the create. Mutations are POST-only (CSRF-checked) and work without
JavaScript; the delivery log refreshes itself through HTMX while a delivery is under way.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from backoffice.access import guarded
from billing.errors import InvalidRequestError
from webhooks import selectors, services
from webhooks.access import endpoint_for
from webhooks.models import WebhookDelivery
from workflows.definition.event_types import event_choices

CAPABILITY = "webhooks.manage"


def _list_page(
    request: HttpRequest, values: dict | None = None, errors: dict | None = None, status: int = 200
) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Webhook endpoints",
        "endpoints": list(selectors.endpoints_in(request.environment)),
        "event_choices": event_choices(),
        "values": values or {"url": "", "description": "", "enabled_events": []},
        "errors": errors or {},
        "max_endpoints": services.MAX_ENDPOINTS,
    }
    return render(request, "webhooks/list.html", context, status=status)


@require_GET
@guarded(CAPABILITY)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@require_POST
@guarded(CAPABILITY)
def endpoint_create(request: HttpRequest) -> HttpResponse:
    values = {
        "url": request.POST.get("url", ""),
        "description": request.POST.get("description", ""),
        "enabled_events": request.POST.getlist("enabled_events"),
    }
    try:
        endpoint = services.webhook_endpoint_create(environment=request.environment, **values)
    except InvalidRequestError as exc:
        # `enabled_events[3]` is shown beside the event list.
        field = (exc.param or "url").split("[", 1)[0]
        return _list_page(request, values, {field: exc.message}, status=400)
    context = {
        **admin.site.each_context(request),
        "title": "Webhook endpoint created",
        "endpoint": endpoint,
    }
    # The only time the secret is shown: this answer is not cached, and no page shows it again.
    response = render(request, "webhooks/created.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@guarded(CAPABILITY)
def endpoint_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = endpoint_for(request, endpoint_id)
    deliveries = selectors.delivery_log(endpoint)
    context = {
        **admin.site.each_context(request),
        "title": f"Webhook endpoint {endpoint.url}",
        "endpoint": endpoint,
        "deliveries": deliveries,
        "under_way": any(
            d.status in (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.SENDING)
            for d in deliveries
        ),
    }
    template = "webhooks/detail.html#delivery-log" if request.htmx else "webhooks/detail.html"
    return render(request, template, context)


@require_POST
@guarded(CAPABILITY)
def endpoint_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = endpoint_for(request, endpoint_id)
    services.webhook_endpoint_delete(endpoint=endpoint)
    messages.success(
        request, f"Webhook endpoint {endpoint.url} deleted; nothing more is sent to it."
    )
    return redirect("webhooks:list")


@require_POST
@guarded(CAPABILITY)
def delivery_resend(request: HttpRequest, endpoint_id: str, delivery_id: int) -> HttpResponse:
    endpoint = endpoint_for(request, endpoint_id)
    delivery = WebhookDelivery.objects.filter(pk=delivery_id, endpoint=endpoint).first()
    if delivery is None:
        raise Http404("No such delivery for this endpoint.")
    try:
        services.webhook_delivery_resend(delivery=delivery)
    except services.WebhookStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Event {delivery.event_id} will be sent again in a moment.")
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)
