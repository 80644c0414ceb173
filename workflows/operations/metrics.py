"""`GET /metrics`: Prometheus metrics — the health report's figures and request metrics.

Who may read it: whoever sends `Authorization: Bearer <METRICS_TOKEN>`. Without that header
(or with `METRICS_TOKEN` unset) the answer is 401 for everyone, signed-in or not: the figures
are operational detail for monitoring, not a page for people (they have `/health/` and the
run dashboard). The path is exempt from the HTTPS redirect like `/health/`, so a scraper
inside the network can reach a web host directly.

Health figures are read from `workflows.operations.health.health_report()` at each scrape,
the same report as `/health/` and `manage.py health`. Request metrics (`billflow_http_*`) are
counted per process by `backoffice.metrics.RequestMetricsMiddleware`; under gunicorn,
gunicorn.conf.py points `PROMETHEUS_MULTIPROC_DIR` at a directory the workers share, so any
worker answers for all.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from workflows.operations.health import health_report

logger = logging.getLogger(__name__)


class HealthCollector:
    """The health report's figures as gauges, computed when scraped."""

    def collect(self) -> Iterator[Metric]:
        try:
            report = health_report()
        except DatabaseError:
            logger.exception("metrics: database unreachable")
            yield GaugeMetricFamily(
                "billflow_health_report_up", "1 when the health report was read.", value=0
            )
            return
        yield GaugeMetricFamily(
            "billflow_health_report_up", "1 when the health report was read.", value=1
        )
        yield GaugeMetricFamily(
            "billflow_healthy", "1 when /health/ answers 200, 0 when 503.", value=report["healthy"]
        )
        runs = report["runs"]
        by_status = GaugeMetricFamily(
            "billflow_runs",
            "Runs by status: pending (due and waiting for a worker) and running.",
            labels=["status"],
        )
        by_status.add_metric(["pending"], runs["pending"])
        by_status.add_metric(["running"], runs["running"])
        yield by_status
        yield GaugeMetricFamily(
            "billflow_runs_oldest_pending_seconds",
            "How long the oldest due pending run has waited.",
            value=runs["oldest_pending_seconds"],
        )
        yield GaugeMetricFamily(
            "billflow_runs_lease_expired",
            "Running runs whose worker's lease ran out (the sweep hands them over).",
            value=runs["lease_expired"],
        )
        yield GaugeMetricFamily(
            "billflow_runs_stuck",
            "Running runs past their lease by more than the grace and not taken over.",
            value=runs["stuck"],
        )
        events = report["events"]
        yield GaugeMetricFamily(
            "billflow_events_undispatched",
            "Committed billing events not yet turned into runs (older than 5 s).",
            value=events["undispatched"],
        )
        yield GaugeMetricFamily(
            "billflow_events_oldest_undispatched_seconds",
            "How long the oldest undispatched event has waited.",
            value=events["oldest_undispatched_seconds"],
        )
        if report["queue"]["backlog"] is not None:  # None: the broker did not answer
            yield GaugeMetricFamily(
                "billflow_queue_depth",
                "Messages waiting in the queue broker.",
                value=report["queue"]["backlog"],
            )
        backlog = report["retention"]["backlog"]
        yield GaugeMetricFamily(
            "billflow_retention_backlog_runs",
            "Prunable runs past the retention window (counted up to 10,000).",
            value=backlog["runs"],
        )
        yield GaugeMetricFamily(
            "billflow_retention_oldest_past_window_seconds",
            "How far past the retention window the oldest prunable run is.",
            value=backlog["oldest_past_window_seconds"],
        )
        clusters = report["clusters"]
        yield GaugeMetricFamily(
            "billflow_clusters_alive",
            "Worker clusters whose heartbeat is current.",
            value=clusters["alive"],
        )
        yield GaugeMetricFamily(
            "billflow_clusters_expected",
            "Worker clusters expected (BILLFLOW_HEALTH_EXPECTED_CLUSTERS).",
            value=clusters["expected"],
        )


class _ProcessRegistry:
    """This process's own metrics (requests, and Python's process and GC figures)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def metrics_text() -> bytes:
    registry = CollectorRegistry()  # no auto_describe: it would read the health report twice
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every gunicorn worker's request metrics, added up
    else:
        registry.register(_ProcessRegistry())
    registry.register(HealthCollector())
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return False
    supplied = request.headers.get("Authorization", "")
    return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse(
            "Metrics need the header Authorization: Bearer <METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
