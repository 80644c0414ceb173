#!/usr/bin/env python3
"""The two README commands, with nothing but Python 3.11+ on the machine.

python3 dev.py start   # venv, install, migrate, demo data, web + worker (Ctrl-C stops both)
python3 dev.py test    # venv, install, run the test suite (on DATABASE_URL when set)
"""

from __future__ import annotations

import os
import signal
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


def start() -> int:
    ensure_venv()
    (ROOT / "var").mkdir(exist_ok=True)
    manage("migrate", "--no-input", "-v", "0")
    manage("seed_demo")
    port = os.environ.get("PORT", "8000")
    web = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT
    )
    worker = subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=ROOT)
    time.sleep(1.5)
    print(
        f"\nBillflow is running at http://127.0.0.1:{port}/admin/  (Ctrl-C stops web and worker)\n"
        "Demo logins (password = user name + '-demo'):\n"
        "  admin / admin-demo                 Admin\n"
        "  developer / developer-demo         Developer\n"
        "  manager / manager-demo             Account Manager\n"
        "  support / support-demo             Customer Support\n"
        "  viewer / viewer-demo               Viewer\n",
        flush=True,
    )
    try:
        while web.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (web, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (web, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


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
