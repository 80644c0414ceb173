"""A total time limit for one send (an HTTP call, an SMTP conversation), not per read.

Socket timeouts apply to each operation: a server that answers one byte every few seconds
never trips them, and the send could outlast its run's lease, after which the sweep hands the
run to a second worker (docs/guarantees.md, "No second send while the first is in flight").
`Deadline` is a watchdog: a timer that, once the time is up, shuts down the sockets the send
registered, which wakes a read or write blocked on them in the sending thread (a `close()`
from another thread would not). The sending code then sees a connection error and asks
`expired` whether it was the deadline.

`shutdown` is used rather than `close` on purpose: the socket object stays valid for the
thread that owns it, which closes it as usual.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable


class Deadline:
    """`with Deadline(seconds) as deadline:` … `deadline.watch(lambda: sock)` …"""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._ends = time.monotonic() + self.seconds
        self._expired = threading.Event()
        self._lock = threading.Lock()
        # Callables returning the socket to shut down now (a TLS upgrade replaces the socket
        # object, so the current one is looked up when the time is up).
        self._watched: list[Callable[[], object]] = []
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        self._ends = time.monotonic() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @property
    def expired(self) -> bool:
        return self._expired.is_set() or time.monotonic() >= self._ends

    def remaining(self) -> float:
        """Seconds left, never below a small positive value (a timeout of 0 means "block")."""
        return max(0.001, self._ends - time.monotonic())

    def watch(self, current_socket: Callable[[], object]) -> None:
        """Shut down `current_socket()` when the time is up (at once if it already is)."""
        with self._lock:
            self._watched.append(current_socket)
            late = self._expired.is_set()
        if late:
            _shutdown(current_socket)

    def _expire(self) -> None:
        with self._lock:
            self._expired.set()
            watched = list(self._watched)
        for current_socket in watched:
            _shutdown(current_socket)


def _shutdown(current_socket: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # already closed, detached by a TLS upgrade, …
        sock = current_socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


def httpx_trace(deadline: Deadline) -> Callable[[str, dict], None]:
    """An httpx `trace` extension that puts every connection httpcore opens (and its TLS
    upgrade) under `deadline`."""

    def trace(event: str, info: dict) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            if stream is not None:
                deadline.watch(lambda: stream.get_extra_info("socket"))

    return trace
