#!/usr/bin/env python3
"""The two README commands, with nothing but Python 3.11+ on the machine.

python3 dev.py start   # venv, install, migrate, demo data, web + worker (Ctrl-C stops both)
PORT=8001 python3 dev.py start   # the same on another port (SITE_URL follows it)
python3 dev.py test    # venv, install, run the test suite (on DATABASE_URL when set)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".installed-pyproject"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before any venv exists
        sys.exit("Billflow needs Python 3.11 or newer.")
    if not PYTHON.exists():
        print("Creating the virtual environment in .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = (ROOT / "pyproject.toml").read_text()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("Installing Billflow and its pinned dependencies …", flush=True)
        subprocess.run(
            [
                PYTHON,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                ".[dev]",
            ],
            cwd=ROOT,
            check=True,
        )
        STAMP.write_text(wanted)


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGINT first (both shut down cleanly on it), then SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 10), (signal.SIGTERM, 5)):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_until_serving(port: str, web: subprocess.Popen, timeout: float = 60.0) -> None:
    """Print the URL only once it answers (system checks take a few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.25)


def web_port() -> str:
    """The port from PORT (default 8000); SITE_URL follows it unless it was set on purpose.

    Links in e-mails (failure notifications, stall alerts) are built from SITE_URL by the
    worker, so they must point at the port this server really listens on."""
    raw = os.environ.get("PORT", "8000").strip() or "8000"
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        sys.exit(f"Environment variable PORT must be a port number (1-65535); got {raw!r}.")
    os.environ.setdefault("SITE_URL", f"http://127.0.0.1:{raw}")
    return raw


def start() -> int:
    port = web_port()  # before the children start: they inherit SITE_URL
    ensure_venv()
    (ROOT / "var").mkdir(exist_ok=True)
    manage("migrate", "--no-input", "-v", "0")
    # The sweep, stall-alert and retention schedules (migrate made the heartbeat cache table).
    manage("setup_schedules")
    manage("seed_demo")
    # Set before the children start, so they inherit working handlers even when this script was
    # started with SIGINT ignored (as a background job of a script is); SIGTERM stops both too.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    web = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT
    )
    worker = subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=ROOT)
    code = 0
    try:
        _wait_until_serving(port, web)
        print(
            f"\nBillflow is running at http://127.0.0.1:{port}/admin/  "
            "(Ctrl-C stops web and worker)\n"
            "Demo logins (password = user name + '-demo'):\n"
            "  admin / admin-demo                 Admin\n"
            "  developer / developer-demo         Developer\n"
            "  manager / manager-demo             Account Manager\n"
            "  support / support-demo             Customer Support\n"
            "  viewer / viewer-demo               Viewer\n",
            flush=True,
        )
        while web.poll() is None and worker.poll() is None:
            time.sleep(0.5)
        # One of them ended on its own (a port in use, a crash): stop the other, report failure.
        code = 1
        print("The web server or the worker stopped; stopping the other.", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping web and worker …", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan them
        _stop([web, worker])
    return code


def test(extra: list[str]) -> int:
    ensure_venv()
    return subprocess.run([PYTHON, "-m", "pytest", *extra], cwd=ROOT).returncode


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "start":
        return start()
    if command == "test":
        return test(sys.argv[2:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
