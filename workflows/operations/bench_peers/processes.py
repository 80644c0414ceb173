"""A peer's worker processes (`bench_peers/worker.py`), started by the benchmark, one session each
(so a stop reaches its threads and children), stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress

from workflows.operations.bench import ROOT, database_url


class WorkerProcesses:
    def __init__(self, peer: str, count: int, env: dict[str, str] | None = None) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        environ = {
            **os.environ,
            "DATABASE_URL": database_url(),
            # team.email goes to django's in-memory backend, as in the benchmark's clusters.
            "EMAIL_URL": "memorymail://",
            **(env or {}),
        }
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "workflows.operations.bench_peers.worker", peer],
                cwd=ROOT,
                env=environ,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for _ in range(count)
        ]

    def stop(self, grace: float = 10.0) -> None:
        for process in self.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def exited(self) -> list[int]:
        """Exit codes of workers that are no longer running."""
        return [code for code in (p.poll() for p in self.processes) if code is not None]

    def tail(self, lines: int = 15) -> str:
        self.log.seek(0)
        text = "".join(self.log.readlines()[-lines:])
        return f"\nworker output (last {lines} lines):\n{text}" if text else ""

    def close(self) -> None:
        self.log.close()
