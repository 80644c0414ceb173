"""Strings no database can store get a 400 naming the field, never a 500."""

from __future__ import annotations

import json

import pytest

from billing.api_keys import api_key_create
from billing.models import Customer, Event


@pytest.fixture
def admin_key(live):
    return api_key_create(environment=live, name="test", role="admin")[1]


def _post(client, admin_key, path, body: str):
    return client.post(
        path, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {admin_key}"
    )


def test_it_refuses_a_nul_character_in_a_body_field(client, admin_key):
    response = _post(client, admin_key, "/api/v1/customers", json.dumps({"name": "Ann\u0000"}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "name"
    assert "NUL" in error["message"]
    assert Customer.objects.count() == 0
    assert Event.objects.count() == 0


def test_it_refuses_a_lone_surrogate_in_metadata(client, admin_key):
    response = _post(client, admin_key, "/api/v1/customers", '{"metadata": {"note": "\\udbdb"}}')
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "metadata[note]"
    assert Customer.objects.count() == 0


def test_it_refuses_a_nul_character_in_a_query_parameter(client, admin_key):
    response = client.get("/api/v1/customers?email=a%00b", HTTP_AUTHORIZATION=f"Bearer {admin_key}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "email"


def test_an_id_with_a_nul_character_is_missing_not_an_error(client, admin_key):
    response = client.get("/api/v1/customers/cus_%00x", HTTP_AUTHORIZATION=f"Bearer {admin_key}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
