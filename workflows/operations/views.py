"""GET /health/: liveness for load balancers and monitoring.

Anyone may ask (a load balancer has no session) and gets only `{"status": "ok"|"unhealthy"}`;
a signed-in user who may view runs gets the full report (run ids, hosts, process ids). No
secrets are in either. 200 when healthy, 503 when not, so a probe needs no JSON parsing.
`?check=web` answers for this web process alone (it reaches the database), for a load
balancer that must not take every web node out because the workers are down.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from backoffice.roles import can
from workflows.operations.health import health_report

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    try:
        if request.GET.get("check") == "web":
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return JsonResponse({"status": "ok"})
        report = health_report()
    except DatabaseError:
        logger.exception("health check: database unreachable")
        return JsonResponse({"status": "unhealthy"}, status=503)
    code = 200 if report["healthy"] else 503
    if can(request.user, "runs.view"):
        return JsonResponse(report, status=code)
    return JsonResponse({"status": report["status"]}, status=code)
