from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from backoffice.environments import environment_for_session
from billing.models import Environment


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
