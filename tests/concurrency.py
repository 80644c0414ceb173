"""Concurrent callers in one test: threads released together, each with its own database
connection, like separate workers or requests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def race(count: int, call: Callable[[], object]) -> list[object]:
    """Run `call` in `count` threads released together; results or exceptions, in any order."""
    barrier = threading.Barrier(count, timeout=20)
    results: list[object] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(call())
        except Exception as exc:  # collected for the assertions
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results
