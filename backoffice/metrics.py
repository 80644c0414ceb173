"""Request metrics (`billflow_http_*`), counted per process by `RequestMetricsMiddleware`.

Under gunicorn, gunicorn.conf.py points `PROMETHEUS_MULTIPROC_DIR` at a directory the workers
share, so whichever worker answers `GET /metrics` (workflows/operations/metrics.py) reports
them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "billflow_http_requests",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "billflow_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by method and route pattern.",
    ["method", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def _route(request: HttpRequest) -> str:
    """The URL pattern, not the path: one series per view, whatever ids the paths carry."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return "/" + match.route
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        route = _route(request)
        DURATION.labels(method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response
