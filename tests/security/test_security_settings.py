"""Production settings pass `check --deploy`; every response carries the security headers;
API keys are stored hashed and compared in constant time; sessions and keys stay in their
environment."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.api_keys import api_key_authenticate, api_key_create
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k3y-" + "9f8e7d6c5b4a" * 6,
    "ALLOWED_HOSTS": "billflow.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://billflow.example.com",
    "TRUST_X_FORWARDED_PROTO": "true",
    "EMAIL_URL": "smtp+tls://billflow@mail.example.com:587",  # required when DEBUG is off
    "DJANGO_SETTINGS_MODULE": "config.settings.base",
}


def _manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **PRODUCTION_ENV, **overrides}
    for name in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"):  # test-only variables
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_with_production_environment_values() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_turns_on_https_protections_when_debug_is_off() -> None:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'ssl': s.SECURE_SSL_REDIRECT, 'proxy': s.SECURE_PROXY_SSL_HEADER, "
        "'hsts': s.SECURE_HSTS_SECONDS, 'session': s.SESSION_COOKIE_SECURE, "
        "'csrf': s.CSRF_COOKIE_SECURE, 'httponly': s.SESSION_COOKIE_HTTPONLY, 'debug': s.DEBUG}))"
    )
    result = _manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "ssl": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "hsts": 31_536_000,
        "session": True,
        "csrf": True,
        "httponly": True,
        "debug": False,
    }


def test_it_fails_check_deploy_when_debug_is_left_on() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="true")
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/customers"])
def test_it_sends_security_headers_on_pages_and_the_api(client, live, path) -> None:
    response = client.get(path)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_it_keeps_the_session_cookie_away_from_scripts(client, alice, live) -> None:
    response = client.post("/admin/login/", {"username": "alice", "password": "password"})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


# --- API keys ---------------------------------------------------------------------------------


def test_it_looks_keys_up_by_hash_and_never_sends_the_raw_key_to_the_database(live) -> None:
    _, raw = api_key_create(environment=live, name="CI")
    with CaptureQueriesContext(connection) as queries:
        assert api_key_authenticate(raw) is not None
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert raw not in sql
    assert raw[len("sk_live_") :] not in sql
    assert hashlib.sha256(raw.encode()).hexdigest() in sql


def test_it_compares_the_key_hash_in_constant_time(live, monkeypatch) -> None:
    _, raw = api_key_create(environment=live, name="CI")
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert api_key_authenticate(raw) is not None
    digest = hashlib.sha256(raw.encode()).hexdigest()
    assert calls == [(digest, digest)]


# --- environments -----------------------------------------------------------------------------


def test_a_sandbox_session_cannot_open_live_objects(client, vic, live, sandbox) -> None:
    customer = factories.customer(live, email="live-only@example.com")
    workflow = factories.workflow_active(live, factories.region_workflow_definition())
    client.force_login(vic)
    client.post("/environment/switch/", {"environment": "sandbox", "next": "/admin/"})
    assert client.get(f"/admin/billing/customer/{quote(customer.pk)}/change/").status_code == 404
    assert client.get(f"/admin/workflows/{workflow.pk}/").status_code == 404
    listing = client.get("/admin/billing/customer/")
    assert b"live-only@example.com" not in listing.content


def test_a_sandbox_key_cannot_read_a_live_object(client, live, sandbox) -> None:
    customer = factories.customer(live, email="live-only@example.com")
    _, raw = api_key_create(environment=sandbox, name="Sandbox CI", role="admin")
    response = client.get(
        f"/api/v1/customers/{customer.pk}", headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
