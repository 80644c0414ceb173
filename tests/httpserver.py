"""A local HTTP server with scripted responses, in a thread of this process (127.0.0.1 only).

`http_server` yields a `ScriptedServer`:

    http_server.script(503, 503, 200)          # next three answers; then `default`
    http_server.script(Reply(307, headers={"Location": "http://elsewhere.test/"}))
    http_server.script(Reply(200, delay=3))    # answers 3 s late (past a client's timeout)
    http_server.script(Reply(200, "x" * 30, trickle=1))  # headers at once, a byte a second
    http_server.hang = True                    # answers nothing until the test ends
    http_server.url("/hooks/billing")          # http://127.0.0.1:PORT/hooks/billing
    http_server.requests                       # what it received: method, path, headers, body

Worker subprocesses can call it too: it listens on a real port for the whole test.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# A hanging answer never outlives this, so a test that forgets to time out still ends.
HANG_LIMIT_SECONDS = 30.0


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to sleep before answering: a target slower than the caller's timeout.
    delay: float = 0.0
    # Seconds between the body's bytes, sent after the status and headers (which go at once):
    # a target that trickles its answer, never silent long enough for a per-read timeout.
    trickle: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)


class ThreadedServer:
    """A ThreadingHTTPServer on a free port of 127.0.0.1, served by a daemon thread.

    Subclasses give `_handler_class()`. `released` is set on stop, so a handler a test left
    waiting (a hang, a held request) returns and the server can shut down.
    """

    def __init__(self) -> None:
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serving(server: ThreadedServer):
    """The body of a server fixture: started for the test, stopped after it."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ScriptedServer(ThreadedServer):
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply(200, {"ok": True})
        self.requests: list[ReceivedRequest] = []
        self.hang = False
        super().__init__()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def script(self, *replies: Reply | int) -> None:
        """Queue the next answers; a bare int is that status with a small JSON body."""
        with self.lock:
            for reply in replies:
                if isinstance(reply, int):
                    reply = Reply(reply, {"status": reply})
                self.replies.append(reply)

    def _next(self, request: ReceivedRequest) -> Reply | None:
        with self.lock:
            self.requests.append(request)
            if self.hang:
                return None
            return self.replies.popleft() if self.replies else self.default

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                reply = server._next(received)
                if reply is None:
                    server.released.wait(HANG_LIMIT_SECONDS)
                    return
                if reply.delay:
                    server.released.wait(min(reply.delay, HANG_LIMIT_SECONDS))
                body, content_type = reply.encoded()
                # A late answer may find the caller gone (it timed out): nothing to report.
                with contextlib.suppress(ConnectionError):
                    self.send_response(reply.status)
                    headers = {"Content-Type": content_type, **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not reply.trickle:
                        self.wfile.write(body)
                        return
                    self.wfile.flush()
                    for index in range(len(body)):
                        if server.released.wait(reply.trickle):
                            return
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()

            do_GET = do_POST = do_PUT = _answer  # noqa: N815 (http.server's names)

            def log_message(self, format, *args) -> None:  # noqa: A002
                pass

        return Handler


@pytest.fixture
def http_server():
    yield from serving(ScriptedServer())
