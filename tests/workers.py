"""Real `python manage.py qcluster` processes against the test database.

Each cluster runs in its own session (process group), so a test can kill one whole cluster
with SIGKILL (a machine dying) and teardown stops every process it started by its group id.
Used with pytest-django's `transactional_db`: the workers connect to the test database, so they
only see what the test committed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.db import connection

from workflows.operations.bench import database_url

ROOT = Path(__file__).resolve().parent.parent
# libpq's PGAPPNAME names the workers' database connections, so tests can single them out.
WORKER_APPLICATION_NAME = "billflow-test-worker"


def _database_url() -> str:
    if connection.vendor != "postgresql":
        raise RuntimeError("qcluster workers need PostgreSQL (mark the test `postgres`)")
    return database_url()


class Cluster:
    def __init__(self, process: subprocess.Popen, log_path: str) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float = 5.0) -> None:
        # SIGTERM to the parent only: it stops its own workers in order. Sent to the whole
        # group, the workers die first and the parent waits out its grace for them.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # Children may outlive the parent: kill whatever is left of the group.
        self.kill(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def qclusters(count: int = 1, workers: int = 1, env: dict | None = None) -> Iterator[list[Cluster]]:
    """Start `count` clusters of `workers` processes each; always stop them on exit."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "Q_WORKERS": str(workers),
        "Q_POLL": "0.02",
        "PGAPPNAME": WORKER_APPLICATION_NAME,
        "Q_LOG_LEVEL": "INFO",  # each task in the log: what a failing test shows
        **(env or {}),
    }
    # Settings refuse send timeouts over half the lease: a short test lease shortens them too.
    if env and "BILLFLOW_LEASE_SECONDS" in env:
        half = str(int(env["BILLFLOW_LEASE_SECONDS"]) / 2)
        for timeout in ("BILLFLOW_HTTP_TIMEOUT_SECONDS", "EMAIL_TIMEOUT_SECONDS"):
            if timeout not in env:
                environment[timeout] = half
    clusters: list[Cluster] = []
    try:
        for _ in range(count):
            log = tempfile.NamedTemporaryFile(prefix="qcluster-", suffix=".log", delete=False)
            process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            clusters.append(Cluster(process, log.name))
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, every: float = 0.1) -> object:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {predicate}")
        time.sleep(every)
