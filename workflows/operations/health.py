"""Liveness: are runs moving, and is anyone there to move them?

`health_report()` answers from the database (the source of truth) and from django-q's cluster
heartbeats. Every `qcluster` saves a `Stat` every 0.5 s with a 3 s time-to-live: with Redis in
Redis itself, with the ORM broker in the `shared` database cache (settings.Q_CLUSTER["cache"]),
so a web process on another host sees every cluster that shares the queue's name and
SECRET_KEY. A cluster that died simply stops appearing within 3 seconds.

A problem makes the report unhealthy (HTTP 503: runs are not moving). A warning makes it
"degraded" and leaves it healthy (HTTP 200): something needs an operator, but taking the
node out of a load balancer would not help. A retention backlog older than
`BILLFLOW["HEALTH_RETENTION_LAG_SECONDS"]` is such a warning: the prune is not keeping up.

`stall_check()` is the scheduled "runs stopped moving" alert: it notifies once when a stall
starts and stays quiet until runs have moved again (docs/operations.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import caches
from django.db.models import Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Event
from workflows.models import Run
from workflows.operations.retention import BACKLOG_COUNT_LIMIT, retention_backlog, retention_days

logger = logging.getLogger(__name__)

# Events younger than this are normally being dispatched right now (the sweep's grace too).
EVENT_GRACE = timedelta(seconds=5)
# The cache key that says "this stall was already notified"; present while the stall lasts.
STALL_KEY = "billflow:health:stall-notified"
# Problems that mean runs are not moving (a missing cluster alone may be a rolling restart).
STALL_CHECKS = ("pending_runs", "stuck_runs", "undispatched_events")


def _limits() -> dict:
    cfg = settings.BILLFLOW
    return {
        "max_pending_seconds": int(cfg.get("HEALTH_MAX_PENDING_SECONDS", 300)),
        "stuck_grace_seconds": int(cfg.get("HEALTH_STUCK_GRACE_SECONDS", 120)),
        "expected_clusters": int(cfg.get("HEALTH_EXPECTED_CLUSTERS", 1)),
        "retention_lag_seconds": int(cfg.get("HEALTH_RETENTION_LAG_SECONDS", 3 * 3600)),
    }


def clusters_status() -> list[dict]:
    """One entry per cluster whose heartbeat is current (same cluster name and SECRET_KEY)."""
    from django_q.brokers import Broker, get_broker
    from django_q.conf import Conf
    from django_q.signing import BadSignature, SignedPackage

    broker = get_broker()
    if type(broker).get_stats is not Broker.get_stats:
        # Redis keeps the heartbeats itself; its listing only reads.
        packs = broker.get_stats(f"{Conf.Q_STAT}:*") or []
    else:
        # Read the cache directly: Broker.get_stats writes the key list back, which races
        # with the clusters' own writes when a load balancer polls often.
        cache = broker.cache
        packs = list(cache.get_many(cache.get(Conf.Q_STAT) or []).values()) if cache else []
    alive_states = {str(Conf.STARTING), str(Conf.WORKING), str(Conf.IDLE)}
    clusters = []
    for pack in packs:
        try:
            stat = SignedPackage.loads(pack)
        except BadSignature:
            continue  # another deployment's cluster (other SECRET_KEY): not ours to count
        status = str(stat.status)
        clusters.append(
            {
                "id": str(stat.cluster_id),
                "host": stat.host,
                "pid": stat.pid,
                "status": status,
                "alive": status in alive_states,
                "workers": len(stat.workers),
                "reincarnations": stat.reincarnations,
                "heartbeat": stat.timestamp.isoformat(),
            }
        )
    return sorted(clusters, key=lambda c: (c["host"], c["id"]))


def _queue_backlog() -> int | None:
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size())
    except Exception:  # a broker outage is reported, not raised
        logger.warning("queue size unavailable", exc_info=True)
        return None


def health_report(*, now: datetime | None = None) -> dict:
    """The liveness figures and a verdict; `healthy` is False when any problem is listed."""
    now = now or timezone.now()
    limits = _limits()
    problems: list[dict] = []

    # A pending run is waiting from when it became due: its creation, a retry's due time, or
    # its restart (run_restart stamps next_attempt_at). Retries due later are not waiting.
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    waiting = Run.objects.filter(due, status=Run.Status.PENDING)
    oldest = waiting.aggregate(since=Min(Coalesce("next_attempt_at", "created")))["since"]
    oldest_pending_seconds = round((now - oldest).total_seconds(), 1) if oldest else 0.0
    pending_runs = waiting.count()
    if oldest_pending_seconds > limits["max_pending_seconds"]:
        problems.append(
            {
                "check": "pending_runs",
                "message": f"The oldest pending run has waited {oldest_pending_seconds:.0f} s "
                f"(limit {limits['max_pending_seconds']} s).",
            }
        )

    lease_expired = Run.objects.filter(status=Run.Status.RUNNING, lease_expires_at__lt=now)
    stuck_cutoff = now - timedelta(seconds=limits["stuck_grace_seconds"])
    stuck_ids = list(
        lease_expired.filter(lease_expires_at__lt=stuck_cutoff)
        .order_by("lease_expires_at")
        .values_list("pk", flat=True)[:20]
    )
    stuck_runs = lease_expired.filter(lease_expires_at__lt=stuck_cutoff).count()
    if stuck_runs:
        problems.append(
            {
                "check": "stuck_runs",
                "message": f"{stuck_runs} running run(s) past their lease by more than "
                f"{limits['stuck_grace_seconds']} s and not taken over.",
            }
        )

    undispatched = Event.objects.filter(dispatched_at__isnull=True, created__lt=now - EVENT_GRACE)
    oldest_event = undispatched.aggregate(since=Min("created"))["since"]
    oldest_event_seconds = round((now - oldest_event).total_seconds(), 1) if oldest_event else 0.0
    if oldest_event_seconds > limits["max_pending_seconds"]:
        problems.append(
            {
                "check": "undispatched_events",
                "message": f"An event has waited {oldest_event_seconds:.0f} s for dispatch.",
            }
        )

    try:
        clusters = clusters_status()
        cluster_error = ""
    except Exception as exc:  # reported as a problem: the probe must answer
        # Typically the cache table was never made (manage.py createcachetable), or Redis is down.
        logger.warning("cluster heartbeats unreadable", exc_info=True)
        clusters, cluster_error = [], f"cluster heartbeats unreadable: {exc.__class__.__name__}"
    alive = sum(1 for c in clusters if c["alive"])
    if alive < limits["expected_clusters"]:
        problems.append(
            {
                "check": "clusters",
                "message": cluster_error
                or f"{alive} worker cluster(s) alive, {limits['expected_clusters']} expected.",
            }
        )

    warnings: list[dict] = []
    backlog = retention_backlog(now)
    lag = backlog["oldest_past_window_seconds"]
    if lag > limits["retention_lag_seconds"]:
        size = f"more than {BACKLOG_COUNT_LIMIT:,}" if backlog["more"] else f"{backlog['runs']:,}"
        warnings.append(
            {
                "check": "retention_backlog",
                "message": f"Retention is behind: {size} run(s) past the window, the oldest "
                f"by {lag / 3600:.1f} h (limit {limits['retention_lag_seconds'] / 3600:g} h).",
            }
        )

    return {
        "status": "unhealthy" if problems else "degraded" if warnings else "ok",
        "healthy": not problems,
        "checked_at": now.isoformat(),
        "runs": {
            "pending": pending_runs,
            "oldest_pending_seconds": oldest_pending_seconds,
            "running": Run.objects.filter(status=Run.Status.RUNNING).count(),
            "lease_expired": lease_expired.count(),
            "stuck": stuck_runs,
            "stuck_run_ids": stuck_ids,
        },
        "events": {
            "undispatched": undispatched.count(),
            "oldest_undispatched_seconds": oldest_event_seconds,
        },
        "queue": {"backlog": _queue_backlog()},
        "clusters": {
            "alive": alive,
            "expected": limits["expected_clusters"],
            "list": clusters,
        },
        "retention": {"window_days": retention_days(), "backlog": backlog},
        "limits": limits,
        "problems": problems,
        "warnings": warnings,
    }


def report_text(report: dict) -> str:
    """A few lines for people (the management command and the stall e-mail)."""
    runs, events = report["runs"], report["events"]
    lines = [
        f"Status: {report['status']} (checked {report['checked_at']})",
        f"Pending runs: {runs['pending']}, oldest waiting {runs['oldest_pending_seconds']} s",
        f"Running runs: {runs['running']}, past their lease: {runs['lease_expired']}, "
        f"stuck: {runs['stuck']} {runs['stuck_run_ids'] or ''}".rstrip(),
        f"Undispatched events: {events['undispatched']}, "
        f"oldest {events['oldest_undispatched_seconds']} s",
        f"Queue backlog: {report['queue']['backlog']}",
        f"Clusters alive: {report['clusters']['alive']} of {report['clusters']['expected']}",
        _retention_line(report["retention"]),
    ]
    for c in report["clusters"]["list"]:
        lines.append(
            f"  {c['host']} pid {c['pid']}: {c['status']}, {c['workers']} workers, "
            f"heartbeat {c['heartbeat']}"
        )
    lines += [f"Problem: {p['message']}" for p in report["problems"]]
    lines += [f"Warning: {w['message']}" for w in report["warnings"]]
    return "\n".join(lines)


def _retention_line(retention: dict) -> str:
    backlog = retention["backlog"]
    size = f"more than {BACKLOG_COUNT_LIMIT:,}" if backlog["more"] else f"{backlog['runs']:,}"
    return (
        f"Retention ({retention['window_days']} days): {size} run(s) past the window, "
        f"oldest by {backlog['oldest_past_window_seconds']} s"
    )


def stall_check(now: datetime | None = None) -> bool:
    """Scheduled every minute: notify operators once per stall; True when it notified.

    A stall is a problem that means runs are not moving (pending too long, stuck past their
    lease, events not dispatched). The marker in the shared cache is added atomically, so of
    two checks racing only one sends; it is removed when runs move again, so the next stall is
    a new notification. Missing clusters alone do not count: with no cluster at all nobody runs
    this schedule, which is why the health endpoint and command exist for outside monitoring.
    """
    from workflows.operations.notifications import operators_notify

    now = now or timezone.now()
    report = health_report(now=now)
    stalled = [p for p in report["problems"] if p["check"] in STALL_CHECKS]
    cache = caches["shared"]
    if not stalled:
        cache.delete(STALL_KEY)
        return False
    if not cache.add(STALL_KEY, now.isoformat(), timeout=None):
        return False
    body = "\n".join(
        [
            "Workflow runs have stopped moving.",
            "",
            report_text(report),
            "",
            f"Health: {settings.SITE_URL}/health/",
            "You get this once per stall; the next one comes after runs have moved again.",
        ]
    )
    try:
        operators_notify(subject="Workflow runs have stopped moving", body=body)
    except Exception:
        cache.delete(STALL_KEY)  # not sent: the next check tries again
        raise
    return True
