"""CSRF: every state-changing view refuses a POST without a token, even from a signed-in Admin.

The walk covers every URL pattern outside the API (admin model URLs with sample objects, the
builder, the inspector, system workflows, the environment switch, login and logout). The API is
CSRF-exempt on purpose: it authenticates with a bearer key, never with the session cookie,
which tests/security/test_permission_matrix.py shows (a signed-in session gets 401 there).
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

from tests.security_urls import concrete, sample_world, url_routes

pytestmark = pytest.mark.django_db


def test_every_non_api_view_refuses_a_post_without_a_csrf_token(alice) -> None:
    world = sample_world()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    accepted = []
    routes = [route for route in url_routes() if not route.is_api]
    assert len(routes) > 100
    for route in routes:
        path = concrete(route, world)
        with transaction.atomic():
            response = client.post(path, {"name": "x", "environment": "live"})
            transaction.set_rollback(True)
        if response.status_code != 403 or b"CSRF" not in response.content:
            accepted.append(f"{route.pattern} -> {response.status_code}")
    assert accepted == []


def test_a_post_with_the_token_gets_past_the_csrf_check(alice, sandbox) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/admin/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/environment/switch/",
        {"environment": "sandbox", "next": "/admin/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert client.session["billflow_environment"] == "sandbox"


def test_the_api_ignores_the_session_cookie(alice, live) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/customers", {}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
