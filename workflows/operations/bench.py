"""What the load benchmarks share: real `qcluster` processes, percentiles, table sizes.

A benchmark cluster runs in its own session (process group), so it can be killed whole with
SIGKILL, like a machine dying, and always stopped on the way out. It connects to the database
this process uses (also the test database when a test calls the command).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]  # the repository: workflows/operations/bench.py

# Run history (what retention bounds) and the events that start runs (kept: the audit trail);
# the django_q_* tables are added to these.
SIZED_TABLES = ("workflows_run", "workflows_steprun", "billing_event")


def database_url() -> str:
    """The URL of the database this process is connected to, for the clusters it starts."""
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


class BenchCluster:
    """One `python manage.py qcluster` of `workers` processes, started at once."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "Q_WORKERS": str(self.workers),
            # team.email goes to django's in-memory backend: no mail server in the figures.
            "EMAIL_URL": "memorymail://",
        }
        env.setdefault("Q_POLL", "0.02")
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL to every process of the cluster: nothing gets to clean up."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.process = self._spawn()

    def terminate(self) -> None:
        """Ask the cluster to stop. Only its parent: django-q stops its own children, and a
        SIGTERM to the whole group leaves the parent waiting for them (measured: 30 s+)."""
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)


def clusters_stop(clusters: list[BenchCluster], grace: float = 10.0) -> None:
    """SIGTERM to all at once, then SIGKILL to whatever is left after `grace` seconds."""
    for cluster in clusters:
        cluster.terminate()
    deadline = time.monotonic() + grace
    for cluster in clusters:
        with suppress(subprocess.TimeoutExpired):
            cluster.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    # Children may outlive the parent: kill whatever is left of each group.
    for cluster in clusters:
        cluster.kill()


def machine_cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds the whole machine has spent busy since boot, and those its host took from
    it (steal: a virtual machine waiting for a real core), from Linux's `/proc/stat`; None
    elsewhere.

    The difference over a phase, divided by its runs, is the CPU one run cost the machine: the
    workers, PostgreSQL, the cluster's own processes and the benchmark together. On a shared
    machine that figure moves much less than the wall-clock rate."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks += [0] * (8 - len(ticks))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    per_second = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / per_second, steal / per_second


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def table_sizes() -> dict[str, int]:
    """Bytes of the whole database, the run and event tables and the django-q tables."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        sizes = {"database": cursor.fetchone()[0]}
        cursor.execute(
            """
            SELECT c.relname, pg_total_relation_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind = 'r'
              AND (c.relname = ANY(%s) OR c.relname LIKE 'django\\_q\\_%%')
            ORDER BY c.relname
            """,
            [list(SIZED_TABLES)],
        )
        sizes.update(dict(cursor.fetchall()))
    return sizes
