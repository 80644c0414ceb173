"""Requests the way Stripe's docs and SDKs send them: form bodies in bracket notation, the key
as the Basic-auth user name, `expand`, `created[...]` filters, unknown query parameters refused,
a declined confirm as a 402 `card_error`, and `DELETE /customers/{id}`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from django.test import Client

from billing import services
from billing.models import Customer, Event, Subscription
from tests import factories
from tests.api_client import BASE, api_for, error_of

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def developer_key(live) -> str:
    return api_for(live).raw_key


def _form(developer_key: str, path: str, body: str, **headers):
    return Client().post(
        BASE + path,
        body,
        content_type=FORM,
        headers={"Authorization": f"Bearer {developer_key}", **headers},
    )


# --- form bodies -------------------------------------------------------------------------------


def test_it_reads_a_form_body_in_bracket_notation_like_json(developer_key):
    response = _form(
        developer_key,
        "/customers",
        "email=ada%40example.com&metadata[plan]=pro&metadata[seats]=3"
        "&address[city]=Paris&invoice_settings[default_payment_method]=pm_card_visa",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == "ada@example.com"
    # Metadata values stay strings even when they look like numbers.
    assert body["metadata"] == {"plan": "pro", "seats": "3"}
    assert body["address"]["city"] == "Paris"
    assert body["invoice_settings"]["default_payment_method"] == "pm_card_visa"


def test_it_turns_form_strings_into_the_integers_and_booleans_the_fields_take(developer_key, live):
    price = factories.price(live)
    customer = factories.customer(live)
    subscription = _form(
        developer_key,
        "/subscriptions",
        f"customer={customer.pk}&items[0][price]={price.pk}&items[0][quantity]=3"
        "&default_payment_method=pm_card_visa",
    )
    assert subscription.status_code == 200, subscription.content
    assert subscription.json()["items"]["data"][0]["quantity"] == 3

    intent = _form(
        developer_key,
        "/payment_intents",
        "amount=2500&currency=usd&payment_method=pm_card_visa&confirm=true",
    )
    assert intent.status_code == 200, intent.content
    assert (intent.json()["amount"], intent.json()["status"]) == (2500, "succeeded")


def test_a_form_field_that_is_not_a_number_is_refused_naming_it(developer_key):
    response = _form(developer_key, "/payment_intents", "amount=lots&currency=usd")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"]) == ("parameter_invalid_integer", "amount")


def test_a_malformed_form_field_name_is_refused_naming_it(developer_key):
    response = _form(developer_key, "/customers", "metadata[plan=pro")
    assert response.status_code == 400
    assert error_of(response)["param"] == "metadata[plan"


def test_an_unknown_form_field_is_refused_like_an_unknown_json_field(developer_key):
    response = _form(developer_key, "/customers", "emial=a%40example.com")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"]) == ("parameter_unknown", "emial")


def test_a_json_body_labelled_as_a_form_is_still_read_as_json(developer_key):
    # `curl -d '{…}'` without a Content-Type sends JSON labelled as a form.
    response = _form(developer_key, "/customers", '{"email": "json@example.com"}')
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "json@example.com"


# --- Basic auth --------------------------------------------------------------------------------


def _basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


def test_the_key_works_as_the_basic_auth_user_name(developer_key):
    response = Client().get(BASE + "/customers", headers={"Authorization": _basic(developer_key)})
    assert response.status_code == 200, response.content
    assert response.json()["object"] == "list"


def test_a_wrong_basic_auth_key_is_a_401(developer_key):
    for header in (_basic("sk_live_nope"), "Basic !!not-base64!!"):
        response = Client().get(BASE + "/customers", headers={"Authorization": header})
        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_api_key"


# --- unknown query parameters ------------------------------------------------------------------


def test_an_unknown_query_parameter_is_refused_naming_it(developer_key, live):
    customer = factories.customer(live)
    api = api_for(live)
    for path in ("/customers", f"/customers/{customer.pk}", "/workflows", "/events"):
        response = api.get(path, limti="5")
        assert response.status_code == 400, (path, response.content)
        error = error_of(response)
        assert (error["code"], error["param"]) == ("parameter_unknown", "limti")
    assert api.get("/customers", limit="5", email="x@example.com").status_code == 200


def test_a_wrong_key_is_a_401_whatever_the_query_says(db):
    response = Client().get(
        BASE + "/customers?nonsense=1", headers={"Authorization": "Bearer sk_live_nope"}
    )
    assert response.status_code == 401


# --- expand ------------------------------------------------------------------------------------


def test_it_expands_relations_in_curl_and_sdk_notation(live):
    api = api_for(live)
    customer = api.post("/customers", {"email": "payer@example.com"}).json()
    intent = api.post(
        "/payment_intents",
        {
            "amount": 900,
            "currency": "usd",
            "customer": customer["id"],
            "payment_method": "pm_card_visa",
            "confirm": True,
        },
    ).json()
    url = f"{BASE}/payment_intents/{intent['id']}"
    headers = {"Authorization": f"Bearer {api.raw_key}"}
    curl = Client().get(url + "?expand[]=customer&expand[]=latest_charge", headers=headers)
    sdk = Client().get(url + "?expand[0]=customer&expand[1]=latest_charge", headers=headers)
    for response in (curl, sdk):
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["customer"]["email"] == "payer@example.com"
        assert (body["latest_charge"]["object"], body["latest_charge"]["paid"]) == ("charge", True)

    listed = Client().get(BASE + "/charges?expand[]=data.payment_intent", headers=headers).json()
    assert listed["data"][0]["payment_intent"]["id"] == intent["id"]
    expanded = api.post(
        f"/customers/{customer['id']}",
        {"invoice_settings": {"default_payment_method": "pm_card_visa"}},
    )
    assert expanded.status_code == 200
    with_method = (
        Client()
        .get(
            f"{BASE}/customers/{customer['id']}?expand[]=invoice_settings.default_payment_method",
            headers=headers,
        )
        .json()
    )
    assert with_method["invoice_settings"]["default_payment_method"]["object"] == "payment_method"


def test_an_unknown_expand_path_is_a_400_naming_it(live):
    api = api_for(live)
    customer = api.post("/customers", {}).json()
    response = Client().get(
        f"{BASE}/customers/{customer['id']}?expand[]=nonsense",
        headers={"Authorization": f"Bearer {api.raw_key}"},
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "expand" and "nonsense" in error["message"]


# --- created filters ---------------------------------------------------------------------------


def _at(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("path", ["/customers", "/charges", "/events", "/payment_intents"])
def test_every_list_filters_on_created(live, path):
    old = factories.paid_charge(live, customer=factories.customer(live))
    new = factories.paid_charge(live, customer=factories.customer(live))
    model = {
        "/customers": (Customer, lambda c: c.customer_id),
        "/charges": (type(old), lambda c: c.pk),
        "/payment_intents": (type(old.payment_intent), lambda c: c.payment_intent_id),
        "/events": (Event, None),
    }[path]
    api = api_for(live)
    if path == "/events":
        Event.objects.filter(environment=live).update(created=datetime(2020, 6, 1, tzinfo=UTC))
        newest = Event.objects.filter(environment=live).order_by("-created", "-pk").first()
        Event.objects.filter(pk=newest.pk).update(created=datetime(2024, 6, 1, tzinfo=UTC))
        old_id, new_id = None, newest.pk
    else:
        cls, id_of = model
        cls.objects.filter(pk=id_of(old)).update(created=datetime(2020, 6, 1, tzinfo=UTC))
        cls.objects.filter(pk=id_of(new)).update(created=datetime(2024, 6, 1, tzinfo=UTC))
        old_id, new_id = id_of(old), id_of(new)

    def ids(**params) -> list[str]:
        response = api.get(path, limit=100, **params)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["data"]]

    assert ids(**{"created[gt]": _at(2022)}) == [new_id]
    assert ids(**{"created[gte]": _at(2024), "created[lt]": _at(2025)}) == [new_id]
    assert new_id not in ids(**{"created[lte]": _at(2022)})
    if old_id is not None:
        assert ids(**{"created[lt]": _at(2022)}) == [old_id]
    response = api.get(path, **{"created[gt]": "soon"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "created[gt]"


# --- a declined confirm ------------------------------------------------------------------------


def test_a_declined_confirm_replayed_with_its_key_answers_the_same_402(live):
    api = api_for(live)
    intent = api.post("/payment_intents", {"amount": 700, "currency": "usd"}).json()
    path = f"/payment_intents/{intent['id']}/confirm"
    body = {"payment_method": "pm_card_chargeDeclinedLostCard"}
    first = api.post(path, body, idempotency_key="confirm-1")
    again = api.post(path, body, idempotency_key="confirm-1")
    assert (first.status_code, again.status_code) == (402, 402)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert first.json()["error"]["decline_code"] == "lost_card"
    # One attempt, recorded once.
    assert Event.objects.filter(type="charge.failed").count() == 1


def test_a_declined_confirm_on_create_is_a_402_too(live):
    response = api_for(live).post(
        "/payment_intents",
        {
            "amount": 700,
            "currency": "usd",
            "payment_method": "pm_card_chargeDeclinedExpiredCard",
            "confirm": True,
        },
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "expired_card",
        "expired_card",
    )
    assert error["payment_intent"]["status"] == "requires_payment_method"


# --- deleting a customer -----------------------------------------------------------------------


def test_deleting_a_customer_cancels_its_subscriptions_and_records_the_event(live):
    customer = factories.customer(live)
    subscription = services.subscription_create(
        customer=customer,
        items=[{"price": factories.price(live), "quantity": 1}],
        default_payment_method="pm_card_visa",
    )
    api = api_for(live)
    response = api.delete(f"/customers/{customer.pk}")
    assert response.status_code == 200, response.content
    assert response.json() == {"id": customer.pk, "object": "customer", "deleted": True}
    assert Subscription.objects.get(pk=subscription.pk).status == "canceled"
    assert Event.objects.filter(type="customer.deleted", object_id=customer.pk).count() == 1
    assert customer.pk not in [c["id"] for c in api.get("/customers").json()["data"]]

    again = api.delete(f"/customers/{customer.pk}")
    assert again.status_code == 404
    assert error_of(again)["code"] == "resource_missing"


def test_a_support_key_may_not_delete_a_customer(live):
    customer = factories.customer(live)
    response = api_for(live, role="support").delete(f"/customers/{customer.pk}")
    assert response.status_code == 403
    assert Customer.objects.get(pk=customer.pk).deleted is False


def test_created_on_its_own_is_that_second_even_the_last_one(live):
    customer = factories.customer(live)
    Customer.objects.filter(pk=customer.pk).update(created=datetime(2024, 6, 1, 12, tzinfo=UTC))
    api = api_for(live)
    second = int(datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp())
    assert [c["id"] for c in api.get("/customers", created=second).json()["data"]] == [customer.pk]
    assert api.get("/customers", created=second + 1).json()["data"] == []
    last = api.get("/customers", created=253_402_300_799)
    assert (last.status_code, last.json()["data"]) == (200, [])


# --- the OpenAPI document ----------------------------------------------------------------------


def test_every_billing_operation_declares_its_response_schema(db):
    document = Client().get(BASE + "/openapi.json").json()
    schemas = document["components"]["schemas"]
    billing = [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "billing" in operation.get("tags", [])
    ]
    assert len(billing) > 40
    for path, method, operation in billing:
        ok = operation["responses"].get("200", {})
        ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        assert ref.startswith("#/components/schemas/"), (method, path)
        name = ref.rsplit("/", 1)[1]
        if method == "get" and "{" not in path:
            # One envelope, declared once: every list is `StripeList` of its object.
            assert name.startswith("StripeList_"), (path, name)
            assert schemas[name]["properties"]["object"]["const"] == "list"
    confirm = document["paths"][BASE + "/payment_intents/{intent_id}/confirm"]["post"]
    assert confirm["responses"]["402"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CardErrorOut"
    )
