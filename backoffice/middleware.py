from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from backoffice.environments import environment_for_session


class CurrentEnvironmentMiddleware:
    """Sets `request.environment` (lazily) from the session; API requests get it from their key."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.environment = SimpleLazyObject(lambda: environment_for_session(request.session))
        return self.get_response(request)
