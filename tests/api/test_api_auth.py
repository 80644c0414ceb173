"""Who may call the API: a valid key, its environment, its role."""

from __future__ import annotations

import pytest

from billing.api_keys import api_key_revoke
from billing.models import ApiKey, Customer, Event, Refund
from tests.api_client import Api, api_for, error_of


def _customer(live) -> dict:
    return api_for(live).post("/customers", {"email": "ada@example.com"}).json()


def _assert_401(response) -> None:
    assert response.status_code == 401
    error = error_of(response)
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")


def test_it_refuses_a_request_without_a_key(live):
    _assert_401(Api(None).get("/customers"))


def test_it_refuses_a_wrong_key(live):
    _assert_401(Api(api_for(live).raw_key + "x").get("/customers"))
    _assert_401(Api("sk_live_nottherightkeyatall").get("/customers"))


def test_it_refuses_a_revoked_key(live):
    api = api_for(live)
    assert api.get("/customers").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get())
    _assert_401(api.get("/customers"))


def test_it_refuses_a_wrong_key_on_a_write_and_writes_nothing(live):
    response = Api("sk_live_wrong").post("/customers", {"email": "x@example.com"})
    _assert_401(response)
    assert Customer.objects.count() == 0


def test_a_sandbox_key_gets_404_for_a_live_object(live, sandbox):
    customer = _customer(live)
    api = api_for(sandbox)
    response = api.get(f"/customers/{customer['id']}")
    assert response.status_code == 404
    error = error_of(response)
    assert (error["code"], error["param"]) == ("resource_missing", "id")
    update = api.post(f"/customers/{customer['id']}", {"name": "Hijacked"})
    assert update.status_code == 404
    assert Customer.objects.get(pk=customer["id"]).name == ""


def test_a_sandbox_key_lists_only_sandbox_objects(live, sandbox):
    _customer(live)
    mine = api_for(sandbox).post("/customers", {"email": "s@example.com"}).json()
    listed = api_for(sandbox).get("/customers").json()
    assert [c["id"] for c in listed["data"]] == [mine["id"]]
    events = api_for(sandbox).get("/events").json()
    assert {e["data"]["object"]["id"] for e in events["data"]} == {mine["id"]}


ROLES = ["viewer", "support", "account_manager", "developer", "admin"]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_read(live, role):
    customer = _customer(live)
    api = api_for(live, role)
    assert api.get("/customers").status_code == 200
    assert api.get(f"/customers/{customer['id']}").status_code == 200
    assert api.get("/events").status_code == 200


def _assert_403(response) -> None:
    assert response.status_code == 403, response.content
    assert error_of(response)["type"] == "permission_error"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", False),
        ("support", True),
        ("account_manager", True),
        ("developer", True),
        ("admin", True),
    ],
)
def test_support_and_above_may_update_a_customer(live, role, allowed):
    customer = _customer(live)
    response = api_for(live, role).post(f"/customers/{customer['id']}", {"name": "Changed"})
    if allowed:
        assert response.status_code == 200
        assert Customer.objects.get(pk=customer["id"]).name == "Changed"
    else:
        _assert_403(response)
        assert Customer.objects.get(pk=customer["id"]).name == ""


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", False),
        ("support", True),
        ("account_manager", True),
        ("developer", True),
        ("admin", True),
    ],
)
def test_support_and_above_may_refund(live, role, allowed):
    intent = (
        api_for(live)
        .post(
            "/payment_intents",
            {"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
        )
        .json()
    )
    response = api_for(live, role).post("/refunds", {"payment_intent": intent["id"]})
    if allowed:
        assert response.status_code == 200, response.content
        assert Refund.objects.count() == 1
    else:
        _assert_403(response)
        assert Refund.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", False),
        ("support", False),
        ("account_manager", True),
        ("developer", True),
        ("admin", True),
    ],
)
def test_account_manager_and_above_may_create_billing_objects(live, role, allowed):
    events_before = Event.objects.count()
    response = api_for(live, role).post("/customers", {"email": "new@example.com"})
    if allowed:
        assert response.status_code == 200
        assert Customer.objects.count() == 1
    else:
        _assert_403(response)
        assert Customer.objects.count() == 0
        assert Event.objects.count() == events_before


def test_a_forbidden_key_gets_403_even_with_a_bad_body(live):
    _assert_403(api_for(live, "viewer").post("/customers", raw="{not json"))


def test_a_sandbox_key_cannot_act_on_live_objects_through_verbs_or_references(live, sandbox):
    live_api = api_for(live)
    customer = _customer(live)
    intent = live_api.post("/payment_intents", {"amount": 700, "currency": "usd"}).json()
    sandbox_api = api_for(sandbox)
    events_before = Event.objects.count()
    confirm = sandbox_api.post(
        f"/payment_intents/{intent['id']}/confirm", {"payment_method": "pm_card_visa"}
    )
    assert (confirm.status_code, error_of(confirm)["param"]) == (404, "id")
    borrowed = sandbox_api.post(
        "/payment_intents", {"amount": 700, "currency": "usd", "customer": customer["id"]}
    )
    assert (borrowed.status_code, error_of(borrowed)["param"]) == (404, "customer")
    assert Event.objects.count() == events_before
    assert (
        live_api.get(f"/payment_intents/{intent['id']}").json()["status"]
        == "requires_payment_method"
    )
