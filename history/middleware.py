"""Every request's changes carry its caller and its id (backoffice/actors.py).

The caller is looked up when the request first writes, not when it arrives: an API request
is known by its key only once the view's key authentication ran (`request.auth`), and a
sign-in changes `request.user` during the request.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from backoffice.actors import SYSTEM, Actor, acting_as, api_key_actor, user_actor
from billing.models import ApiKey


def request_actor(request: HttpRequest) -> Actor:
    key = getattr(request, "auth", None)
    if isinstance(key, ApiKey):
        return api_key_actor(key)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user_actor(user)
    return SYSTEM


class HistoryContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = getattr(request, "billflow_request_id", "")
        with acting_as(lambda: request_actor(request), request_id=request_id):
            return self.get_response(request)
