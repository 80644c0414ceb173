"""The back office's request context that needs billing: the session's environment, and the
request id on the billing events a request records."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from billing.events import event_request
from billing.models import Environment
from console.environments import environment_for_session


class CurrentEnvironmentMiddleware:
    """Sets `request.environment` (lazily) from the session; API requests get it from their key."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # All environments in one query (there are a few): the header's switcher lists them,
        # and the session's environment is picked from them.
        environments = SimpleLazyObject(lambda: list(Environment.objects.all()))
        request.environments = environments
        request.environment = SimpleLazyObject(
            lambda: environment_for_session(request.session, environments)
        )
        return self.get_response(request)


class EventRequestMiddleware:
    """Billing events recorded while a request is answered carry its `Request-Id` (made by
    `backoffice.request_ids.RequestIdMiddleware`, which sits just outside this one)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with event_request(request_id=getattr(request, "billflow_request_id", "")):
            return self.get_response(request)
