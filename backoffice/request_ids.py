"""Every request gets a Stripe-style `req_…` id, answered in the `Request-Id` header.

The same id is on every log line written for the request (`backoffice.logs`) and, set by the
layer above that knows billing (`console.middleware.EventRequestMiddleware`), on every billing
event the request records; the API's `request_id()` reads it from `request.billflow_request_id`.
A support question that quotes the header finds both. The id is always made here: an id sent by
the client is not trusted, since it would let a caller make its requests look like someone
else's in the logs and events.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from backoffice.ids import new_id
from backoffice.logs import log_context

HEADER = "Request-Id"


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_id("req")
        request.billflow_request_id = request_id
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response
