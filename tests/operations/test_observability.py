"""Request ids, structured logs, /metrics, the production e-mail rule and dev.py's port.

The gunicorn side (static files, the access log, metrics shared by workers) is proved in
tests/operations/test_deploy_production.py; these tests take the in-process path through the same
middleware, views and settings.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY

from backoffice.logs import logging_config
from billing.models import Event
from tests import factories
from tests.api_client import api_for
from workflows.actions import registry
from workflows.actions.registry import Action
from workflows.operations.health import health_report

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-" + "0f1e2d3c4b5a" * 2
REQUEST_ID = re.compile(r"req_[0-9A-Za-z]{24}")


@pytest.fixture
def log_lines():
    """The root logger's records, formatted by the production handler (LOGGING's console)."""
    stream = io.StringIO()
    config = logging_config(log_format="text", level="INFO")
    config["handlers"]["console"]["stream"] = stream
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.dictConfig(config)
    yield lambda: stream.getvalue().splitlines()
    root.handlers[:], root.level = saved


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


# --- Request-Id ---------------------------------------------------------------------------------


def test_it_answers_every_response_with_a_request_id(client, live):
    for path in ("/admin/login/", "/health/?check=web", "/no/such/page/", "/api/v1/customers"):
        response = client.get(path)
        assert REQUEST_ID.fullmatch(response["Request-Id"]), path
    ids = {client.get("/admin/login/")["Request-Id"] for _ in range(3)}
    assert len(ids) == 3  # one per request


def test_the_request_id_header_is_the_id_the_api_request_s_events_carry(live):
    response = api_for(live).post("/customers", {"email": "rid@example.com"})

    assert response.status_code == 200
    event = Event.objects.get(type="customer.created")
    assert event.request_id == response["Request-Id"]


def test_a_back_office_change_records_its_events_with_the_request_id(client, live, alice):
    customer = factories.customer(live, email="before@example.com")
    client.force_login(alice)
    # Working in live, as an operator who picked it in the header would be.
    client.post(reverse("environment_switch"), {"environment": live.slug})

    response = client.post(
        f"/admin/billing/customer/{customer.pk}/change/",
        {"email": "after@example.com", "name": "", "phone": "", "description": ""},
    )

    updated = Event.objects.filter(type="customer.updated").first()
    assert updated is not None, response.content[:2000]
    assert updated.request_id == response["Request-Id"]


# --- structured logs ----------------------------------------------------------------------------


def test_it_logs_time_level_logger_and_the_request_id_on_one_line(client, log_lines):
    response = client.get("/metrics")  # refused: Django logs the 401 as a warning

    line = next(line for line in log_lines() if "logger=django.request" in line)
    assert re.match(
        r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=WARNING logger=django.request "
        rf"request_id={response['Request-Id']} message=",
        line,
    ), line


def test_it_writes_the_same_fields_as_json_lines_when_log_format_is_json(client) -> None:
    stream = io.StringIO()
    config = logging_config(log_format="json", level="INFO")
    config["handlers"]["console"]["stream"] = stream
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.dictConfig(config)
    try:
        response = client.get("/metrics")
    finally:
        root.handlers[:], root.level = saved

    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    record = next(r for r in records if r["logger"] == "django.request")
    assert record["level"] == "WARNING"
    assert record["request_id"] == response["Request-Id"]
    assert record["message"] == "Unauthorized: /metrics"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])


def test_a_worker_s_log_lines_carry_the_run_id(live, alice, log_lines):
    from workflows.engine.runs import run_start_manual
    from workflows.tasks import run_execute

    def note(ctx, params):
        logging.getLogger("partner.ledger").warning("ledger answered slowly")
        return {"noted": True}

    registry.register(Action(key="tests.note", label="Note", execute=note), replace=True)
    try:
        definition = {
            "name": "Notes",
            "trigger": {"type": "manual", "input": []},
            "steps": [{"id": "note", "type": "action", "action": "tests.note", "params": {}}],
        }
        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        run_execute(run.pk)  # the django-q task a worker runs
    finally:
        registry.unregister("tests.note")

    line = next(line for line in log_lines() if "logger=partner.ledger" in line)
    assert f" run_id={run.pk} " in line
    assert 'message="ledger answered slowly"' in line


# --- /metrics -----------------------------------------------------------------------------------


def test_metrics_answer_401_without_the_token_even_to_an_admin(client, alice, metrics_token):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    client.force_login(alice)
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_metrics_are_reachable_over_plain_http_inside_the_network(client, settings, metrics_token):
    settings.SECURE_SSL_REDIRECT = True  # production behind HTTPS

    assert client.get("/admin/login/").status_code == 301  # pages go to HTTPS
    scrape(client)  # a scraper inside the network reaches /metrics directly


def test_metrics_are_closed_when_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_metrics_report_the_health_report_s_figures(client, live, alice, metrics_token, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HEALTH_EXPECTED_CLUSTERS": 2}
    workflow = factories.workflow_active(live, factories.region_workflow_definition(), alice)
    now = timezone.now()
    factories.run_row(workflow, status="pending", created=now - timedelta(seconds=600))
    factories.run_row(workflow, status="pending", created=now - timedelta(seconds=5))
    factories.run_row(workflow, status="running", lease_expires_at=now - timedelta(seconds=30))
    factories.run_row(workflow, status="running", lease_expires_at=now + timedelta(seconds=30))

    text = scrape(client)
    report = health_report()

    assert 'billflow_runs{status="pending"} 2.0' in text
    assert 'billflow_runs{status="running"} 2.0' in text
    assert "billflow_runs_lease_expired 1.0" in text
    oldest = float(re.search(r"^billflow_runs_oldest_pending_seconds (\S+)$", text, re.M)[1])
    assert oldest == pytest.approx(report["runs"]["oldest_pending_seconds"], abs=2)
    assert oldest >= 600
    assert f"billflow_queue_depth {float(report['queue']['backlog'])}" in text
    assert "billflow_clusters_alive 0.0" in text
    assert "billflow_clusters_expected 2.0" in text
    assert "billflow_healthy 0.0" in text  # the old pending run and the missing clusters


def test_metrics_count_requests_by_route_and_status(client, metrics_token):
    labels = {"method": "GET", "route": "/admin/login/", "status": "200"}
    before = REGISTRY.get_sample_value("billflow_http_requests_total", labels) or 0.0

    client.get("/admin/login/")
    client.get("/admin/login/")

    assert REGISTRY.get_sample_value("billflow_http_requests_total", labels) == before + 2
    text = scrape(client)
    sample = 'billflow_http_requests_total{method="GET",route="/admin/login/",status="200"}'
    assert f"{sample} {before + 2}" in text
    assert (
        'billflow_http_request_duration_seconds_count{method="GET",route="/admin/login/"}' in text
    )


# --- production start-up rules and dev.py -------------------------------------------------------


def _python(code: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": "k3y-" + "1a2b3c4d5e6f" * 6,
        **overrides,
    }
    for name in ("EMAIL_URL", "DATABASE_URL", "PORT", "SITE_URL"):
        if name not in overrides:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


SHOW_EMAIL_BACKEND = (
    "import django; django.setup(); from django.conf import settings; print(settings.EMAIL_BACKEND)"
)


def test_it_refuses_to_start_without_debug_when_no_email_url_is_set() -> None:
    result = _python(SHOW_EMAIL_BACKEND)
    assert result.returncode != 0
    assert "Environment variable EMAIL_URL must be set when DEBUG is off" in result.stderr
    assert "EMAIL_URL=console://" in result.stderr


def test_it_prints_e_mails_to_the_console_only_when_chosen_explicitly() -> None:
    result = _python(SHOW_EMAIL_BACKEND, EMAIL_URL="console://")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.core.mail.backends.console.EmailBackend"
    smtp = _python(SHOW_EMAIL_BACKEND, EMAIL_URL="smtp://mail.internal:25")
    assert smtp.stdout.strip() == "django.core.mail.backends.smtp.EmailBackend"


def test_dev_start_takes_its_port_from_port_and_site_url_follows() -> None:
    code = (
        "import dev; port = dev.web_port(); "
        "import django; django.setup(); from django.conf import settings; "
        "print(port, settings.SITE_URL)"
    )
    result = _python(code, DEBUG="true", PORT="8123")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8123", "http://127.0.0.1:8123"]

    chosen = _python(code, DEBUG="true", PORT="8123", SITE_URL="https://billing.example.com")
    assert chosen.stdout.split() == ["8123", "https://billing.example.com"]

    bad = _python(code, DEBUG="true", PORT="eighty")
    assert bad.returncode != 0
    assert "Environment variable PORT must be a port number" in bad.stderr
