"""Connected accounts over the API, and Stripe's `Stripe-Account` header."""

from __future__ import annotations

from billing.models import Customer, Event
from tests.api_client import api_for, error_of


def _as(api, account_id: str) -> dict:
    return {"Stripe-Account": account_id, "Authorization": f"Bearer {api.raw_key}"}


def _post(api, path, body, account_id, **headers):
    return api.client.post(
        "/api/v1" + path,
        body,
        content_type="application/json",
        headers={**_as(api, account_id), **headers},
    )


def test_it_creates_lists_and_retrieves_connected_accounts(live):
    api = api_for(live)
    account = api.post("/accounts", {"name": "Shop", "country": "de"}).json()
    assert (account["object"], account["id"][:5], account["country"]) == ("account", "acct_", "DE")
    assert api.get(f"/accounts/{account['id']}").json() == account
    assert [a["id"] for a in api.get("/accounts").json()["data"]] == [account["id"]]


def test_the_header_creates_on_and_sees_only_the_connected_account(live):
    api = api_for(live)
    account = api.post("/accounts", {"name": "Shop"}).json()
    platform_customer = api.post("/customers", {"email": "p@example.com"}).json()
    response = _post(api, "/customers", {"email": "c@example.com"}, account["id"])
    assert response.status_code == 200, response.content
    connected = response.json()
    assert Customer.objects.get(pk=connected["id"]).account_id == account["id"]
    event = Event.objects.get(type="customer.created", object_id=connected["id"])
    assert event.account_id == account["id"]

    as_account = _as(api, account["id"])
    listed = api.client.get("/api/v1/customers", headers=as_account).json()
    assert [c["id"] for c in listed["data"]] == [connected["id"]]
    hidden = api.client.get(f"/api/v1/customers/{platform_customer['id']}", headers=as_account)
    assert hidden.status_code == 404
    events = api.client.get("/api/v1/events", headers=as_account).json()["data"]
    assert [e["account"] for e in events] == [account["id"]]
    # Without the header the operator's key sees the whole environment.
    assert len(api.get("/customers").json()["data"]) == 2


def test_an_unknown_or_foreign_account_header_is_a_404(live, sandbox):
    api = api_for(live)
    sandbox_account = api_for(sandbox).post("/accounts", {"name": "Elsewhere"}).json()
    for account_id in ("acct_nope", sandbox_account["id"]):
        response = _post(api, "/customers", {}, account_id)
        assert (response.status_code, error_of(response)["param"]) == (404, "Stripe-Account")
    assert Customer.objects.count() == 0


def test_the_account_header_is_part_of_an_idempotent_request(live):
    api = api_for(live)
    one = api.post("/accounts", {"name": "One"}).json()
    two = api.post("/accounts", {"name": "Two"}).json()
    assert _post(api, "/customers", {}, one["id"], **{"Idempotency-Key": "k"}).status_code == 200
    other = _post(api, "/customers", {}, two["id"], **{"Idempotency-Key": "k"})
    assert (other.status_code, error_of(other)["type"]) == (400, "idempotency_error")
    assert Customer.objects.count() == 1


def test_a_support_key_cannot_create_accounts(live):
    response = api_for(live, "support").post("/accounts", {"name": "Shop"})
    assert response.status_code == 403
