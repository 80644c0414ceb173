"""`/api/v1/webhook_endpoints`: create (secret shown once), list, retrieve, delete; roles,
environments, and bad input refused naming the field."""

from __future__ import annotations

import pytest

from tests.api_client import api_for, error_of
from webhooks.models import WebhookEndpoint

URL = "https://hooks.example.com/stripe"


@pytest.fixture(autouse=True)
def _allowed(settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["hooks.example.com"]}


def _create(api, **fields):
    body = {"url": URL, "enabled_events": ["customer.created"], **fields}
    return api.post("/webhook_endpoints", body)


def test_it_creates_an_endpoint_and_shows_its_secret_only_in_the_answer(live):
    api = api_for(live)
    created = _create(api, description="Ledger", enabled_events=["invoice.paid", "*"])

    assert created.status_code == 200, created.content
    body = created.json()
    assert body["object"] == "webhook_endpoint"
    assert body["id"].startswith("we_")
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert (body["url"], body["description"], body["status"]) == (URL, "Ledger", "enabled")
    assert body["enabled_events"] == ["*"]
    assert body["livemode"] is True
    assert WebhookEndpoint.objects.get(pk=body["id"]).secret == body["secret"]

    retrieved = api.get(f"/webhook_endpoints/{body['id']}").json()
    listed = api.get("/webhook_endpoints").json()
    assert "secret" not in retrieved
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    assert "secret" not in listed["data"][0]
    assert body["secret"] not in str(retrieved) + str(listed)


def test_it_deletes_an_endpoint(live):
    api = api_for(live)
    endpoint_id = _create(api).json()["id"]

    deleted = api.delete(f"/webhook_endpoints/{endpoint_id}")

    assert deleted.status_code == 200
    assert deleted.json() == {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
    assert api.get(f"/webhook_endpoints/{endpoint_id}").status_code == 404
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"url": "https://evil.example.net/x"}, "url", "not in the allowed hosts"),
        ({"url": "ftp://hooks.example.com/x"}, "url", "is not an http(s) URL"),
        ({"url": "https://hooks.example.com:99999/x"}, "url", "not a valid URL"),
        ({"url": "https://hooks.example.com/a b"}, "url", "spaces or control characters"),
        (
            {"enabled_events": ["customer.created", "customer.exploded"]},
            "enabled_events[1]",
            "Unknown event type 'customer.exploded'",
        ),
        ({"enabled_events": []}, "enabled_events", "List should have at least 1 item"),
        ({"enabled_events": "customer.created"}, "enabled_events", "valid list"),
        ({"description": "x" * 5001}, "description", "at most 5000 characters"),
        ({"secret": "whsec_mine"}, "secret", "unknown parameter"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(live, fields, param, says):
    response = _create(api_for(live), **fields)

    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]
    assert not WebhookEndpoint.objects.exists()


def test_a_missing_url_is_named(live):
    response = api_for(live).post("/webhook_endpoints", {"enabled_events": ["*"]})
    error = error_of(response)
    assert (response.status_code, error["code"], error["param"]) == (
        400,
        "parameter_missing",
        "url",
    )


def test_an_environment_holds_at_most_sixteen_endpoints(live):
    api = api_for(live)
    for _ in range(16):
        assert _create(api).status_code == 200
    response = _create(api)
    assert response.status_code == 400
    assert "already has 16 webhook endpoints" in error_of(response)["message"]


@pytest.mark.parametrize("role", ["viewer", "support", "account_manager"])
def test_roles_below_developer_may_not_see_or_change_endpoints(live, role):
    endpoint_id = _create(api_for(live)).json()["id"]
    api = api_for(live, role)

    for response in (
        api.get("/webhook_endpoints"),
        api.get(f"/webhook_endpoints/{endpoint_id}"),
        _create(api),
        api.delete(f"/webhook_endpoints/{endpoint_id}"),
    ):
        assert response.status_code == 403, response.content
        assert error_of(response)["type"] == "permission_error"
    assert WebhookEndpoint.objects.count() == 1


@pytest.mark.parametrize("role", ["developer", "admin"])
def test_developers_and_admins_manage_endpoints(live, role):
    api = api_for(live, role)
    endpoint_id = _create(api).json()["id"]
    assert api.get("/webhook_endpoints").status_code == 200
    assert api.delete(f"/webhook_endpoints/{endpoint_id}").status_code == 200


def test_a_key_sees_only_its_own_environment_s_endpoints(live, sandbox):
    live_id = _create(api_for(live)).json()["id"]
    sandbox_api = api_for(sandbox)
    sandbox_id = _create(sandbox_api).json()["id"]

    assert [e["id"] for e in sandbox_api.get("/webhook_endpoints").json()["data"]] == [sandbox_id]
    assert sandbox_api.get(f"/webhook_endpoints/{live_id}").status_code == 404
    response = sandbox_api.delete(f"/webhook_endpoints/{live_id}")
    assert response.status_code == 404
    assert error_of(response)["param"] == "id"
    assert WebhookEndpoint.objects.filter(pk=live_id).exists()
    created = sandbox_api.get(f"/webhook_endpoints/{sandbox_id}").json()
    assert created["livemode"] is False


def test_a_create_replayed_with_its_idempotency_key_makes_one_endpoint(live):
    api = api_for(live)
    body = {"url": URL, "enabled_events": ["*"]}
    first = api.post("/webhook_endpoints", body, idempotency_key="we-1")
    again = api.post("/webhook_endpoints", body, idempotency_key="we-1")
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert WebhookEndpoint.objects.count() == 1


def test_the_list_is_paginated_like_every_stripe_list(live):
    api = api_for(live)
    ids = [_create(api).json()["id"] for _ in range(3)]
    page = api.get("/webhook_endpoints", limit=2).json()
    assert page["has_more"] is True and len(page["data"]) == 2
    rest = api.get("/webhook_endpoints", limit=2, starting_after=page["data"][-1]["id"]).json()
    assert {e["id"] for e in page["data"] + rest["data"]} == set(ids)


def test_stripe_s_own_sdk_creates_lists_retrieves_and_deletes_endpoints(live_server, live):
    import stripe

    from billing.api_keys import api_key_create

    _, raw = api_key_create(environment=live, name="sdk", role="developer")
    client = stripe.StripeClient(
        raw, base_addresses={"api": live_server.url + "/api"}, max_network_retries=0
    )

    created = client.v1.webhook_endpoints.create(
        params={"url": URL, "enabled_events": ["customer.created", "invoice.paid"]}
    )
    listed = client.v1.webhook_endpoints.list()
    retrieved = client.v1.webhook_endpoints.retrieve(created.id)
    deleted = client.v1.webhook_endpoints.delete(created.id)

    assert created.secret.startswith("whsec_")
    assert created.enabled_events == ["customer.created", "invoice.paid"]
    assert [e.id for e in listed.data] == [created.id]
    assert retrieved.url == URL and "secret" not in retrieved
    assert deleted.deleted is True
    assert not WebhookEndpoint.objects.exists()
