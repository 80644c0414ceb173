"""Production as documented works: the deploy steps of docs/operations.md on a fresh database,
then gunicorn with gunicorn.conf.py and DEBUG=false serving pages, their CSS and htmx itself.

The deploy steps are read from docs/operations.md ("Deploying a release"), so the test runs
exactly what the document tells an operator to run. Each test gets a database of its own: a new
PostgreSQL database beside the test database when DATABASE_URL is PostgreSQL, a new SQLite file
otherwise; the commands run as subprocesses with production's environment variables.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_TOKEN = "metrics-" + "5a4b3c2d1e0f" * 3
PASSWORD = "deploy-" + "7f6e5d4c3b2a"


def documented_deploy_steps() -> list[list[str]]:
    """The commands of the first code block under "Deploying a release", in order."""
    section = OPERATIONS.read_text().split("## Deploying a release", 1)[1]
    steps: list[list[str]] = []
    for line in section.splitlines():
        if not line.startswith("    "):
            if steps and line.strip():
                break  # the block ended
            continue
        command = line.split("#", 1)[0].strip()
        assert command.startswith("python manage.py "), line
        steps.append(command.removeprefix("python manage.py ").split())
    return steps


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL for an empty database of the same kind as the test database."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
        return
    import psycopg

    cfg = connection.settings_dict
    name = f"bf_deploy_{secrets.token_hex(4)}"
    params = {
        "host": cfg["HOST"] or "127.0.0.1",
        "port": cfg["PORT"] or 5432,
        "user": cfg["USER"],
        "password": cfg["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{quote(cfg['PASSWORD'], safe='')}" if cfg["PASSWORD"] else ""
    try:
        yield f"postgres://{cfg['USER']}{password}@{params['host']}:{params['port']}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def production_env(fresh_database: str, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": fresh_database,
        "DEBUG": "false",
        "SECRET_KEY": "k3y-" + "0a1b2c3d4e5f" * 6,
        "ALLOWED_HOSTS": "127.0.0.1",
        "HTTPS": "false",  # no TLS proxy in front of the test's gunicorn
        "EMAIL_URL": "console://",
        "STATIC_ROOT": str(tmp_path / "static"),
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # test-only
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


def deploy(env: dict[str, str]) -> None:
    steps = documented_deploy_steps()
    assert [step[0] for step in steps] == [
        "migrate",
        "setup_schedules",
        "system_workflows_install",
        "collectstatic",
    ]
    for step in steps:
        manage(env, *step)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_documented_deploy_steps_leave_a_live_environment_for_create_api_key(
    production_env: dict[str, str],
) -> None:
    deploy(production_env)

    result = manage(production_env, "create_api_key", "live")

    assert result.stdout.strip().startswith("sk_live_")
    listed = manage(
        production_env,
        "shell",
        "-c",
        "from workflows.models import Workflow; "
        "print(Workflow.objects.filter(environment__slug='live', system_key__gt='').count())",
    )
    assert int(listed.stdout.strip().splitlines()[-1]) == 7  # its system workflows, installed


def _assets(page: str, pattern: str) -> list[str]:
    return re.findall(pattern, page)


def test_gunicorn_with_debug_off_serves_the_pages_css_and_htmx(
    production_env: dict[str, str], tmp_path: Path
) -> None:
    deploy(production_env)
    manage(
        {**production_env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        "createsuperuser",
        "--no-input",
        "--username",
        "ops",
        "--email",
        "ops@example.com",
    )
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--no-control-socket",  # other gunicorns on this machine use the default one
                "config.wsgi",
            ],
            cwd=ROOT,
            env=production_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=20) as client:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    if client.get("/health/?check=web").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)

            login = client.get("/admin/login/")
            assert login.status_code == 200
            assert re.fullmatch(r"req_[0-9A-Za-z]{24}", login.headers["Request-Id"])
            stylesheets = _assets(login.text, r'<link rel="stylesheet" href="([^"]+)"')
            assert "/static/admin/css/base." in " ".join(stylesheets)
            assert any("/static/backoffice/admin." in href for href in stylesheets)
            for href in stylesheets:
                # Hashed names (cached for good by browsers), served by the app itself.
                assert re.search(r"\.[0-9a-f]{12}\.css$", href), href
                css = client.get(href, headers={"Accept-Encoding": "gzip"})
                assert css.status_code == 200, href
                assert css.headers["Content-Type"].startswith("text/css")
                assert css.headers["Content-Encoding"] == "gzip"  # the compressed copy
                assert css.headers["Request-Id"].startswith("req_")

            signed_in = client.post(
                "/admin/login/?next=/admin/runs/",
                data={
                    "username": "ops",
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                },
            )
            assert signed_in.status_code == 302, signed_in.text[:500]
            runs = client.get("/admin/runs/")
            assert runs.status_code == 200
            scripts = _assets(runs.text, r'<script src="([^"]+)"')
            htmx = [src for src in scripts if re.search(r"/htmx[^/]*\.js$", src)]
            assert htmx, scripts
            for src in htmx + scripts:
                script = client.get(src)
                assert script.status_code == 200, src
                assert "javascript" in script.headers["Content-Type"]
            assert "htmx" in client.get(htmx[0]).text

            assert client.get("/metrics").status_code == 401
            metrics = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert metrics.status_code == 200
            assert 'billflow_runs{status="pending"} 0.0' in metrics.text
            assert "billflow_clusters_alive 0.0" in metrics.text
            # Counted by whichever worker answered, reported by the one asked.
            assert re.search(
                r'billflow_http_requests_total\{method="GET",route="/admin/login/",'
                r'status="200"\} [1-9]',
                metrics.text,
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    access = [line for line in log_path.read_text().splitlines() if "gunicorn.access" in line]
    login_line = next(
        line for line in access if f"request_id={login.headers['Request-Id']}" in line
    )
    assert re.match(r"time=\d{4}-\d\d-\d\dT[\d:.]+Z level=INFO logger=gunicorn.access ", login_line)
    assert "method=GET path=/admin/login/ " in login_line and " status=200 " in login_line
