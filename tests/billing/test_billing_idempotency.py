"""Service-level idempotency keys: the first result wins, other params are an error."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing import services
from billing.errors import BillingError, IdempotencyError, ProviderError
from billing.idempotency import billing_service, claim_key, ensure_same_request
from billing.models import Customer, Event, IdempotencyRecord, Invoice
from billing.validation import invalid
from tests import factories


def _counts() -> tuple[int, int, int]:
    return Customer.objects.count(), Event.objects.count(), IdempotencyRecord.objects.count()


def test_it_returns_the_first_object_and_writes_nothing_on_a_repeat(live):
    first = services.customer_create(environment=live, email="a@example.com", idempotency_key="k1")
    before = _counts()
    again = services.customer_create(environment=live, email="a@example.com", idempotency_key="k1")
    assert again.pk == first.pk
    assert _counts() == before
    record = IdempotencyRecord.objects.get(key="k1")
    assert (record.scope, record.object_type, record.object_id) == (
        "customer_create",
        "customer",
        first.pk,
    )


def test_it_returns_the_object_as_it_is_now_on_a_repeat(live):
    customer = factories.customer(live, email="a@example.com")
    services.customer_update(customer=customer, changes={"name": "One"}, idempotency_key="u1")
    services.customer_update(customer=customer, changes={"name": "Two"})
    again = services.customer_update(
        customer=customer, changes={"name": "One"}, idempotency_key="u1"
    )
    assert again.name == "Two"  # re-fetched, not changed back
    assert Event.objects.filter(type="customer.updated").count() == 2


def test_it_refuses_the_same_key_with_other_parameters(live):
    services.customer_create(environment=live, email="a@example.com", idempotency_key="k1")
    before = _counts()
    with pytest.raises(IdempotencyError) as caught:
        services.customer_create(environment=live, email="b@example.com", idempotency_key="k1")
    assert caught.value.http_status == 400
    assert caught.value.to_dict()["type"] == "idempotency_error"
    assert caught.value.param == "idempotency_key"
    assert _counts() == before


def test_it_refuses_the_same_key_for_another_service(live):
    customer = services.customer_create(environment=live, idempotency_key="shared")
    with pytest.raises(IdempotencyError):
        services.customer_update(customer=customer, changes={"name": "x"}, idempotency_key="shared")


def test_it_treats_defaults_and_request_ids_as_the_same_call(live):
    first = services.customer_create(environment=live, idempotency_key="k2", request_id="req_a")
    again = services.customer_create(
        environment=live, email="", name="", idempotency_key="k2", request_id="req_b"
    )
    assert again.pk == first.pk


def test_it_keeps_keys_per_environment(live, sandbox):
    in_live = services.customer_create(environment=live, idempotency_key="same")
    in_sandbox = services.customer_create(environment=sandbox, idempotency_key="same")
    assert in_live.pk != in_sandbox.pk
    assert in_sandbox.environment == sandbox


def test_it_replays_a_declined_payment_without_charging_again(live):
    customer = factories.customer(live)
    invoice = services.invoice_create(customer=customer, lines=[{"amount": 900, "currency": "usd"}])
    first = services.invoice_pay(
        invoice=invoice, payment_method="pm_card_chargeDeclined", idempotency_key="run/1/pay/0"
    )
    charges = first.charges.count()
    again = services.invoice_pay(
        invoice=invoice, payment_method="pm_card_chargeDeclined", idempotency_key="run/1/pay/0"
    )
    assert again.pk == first.pk and again.attempt_count == 1
    assert Invoice.objects.get(pk=invoice.pk).charges.count() == charges == 1


def test_it_forgets_the_key_when_the_call_fails(live):
    customer = factories.customer(live)
    services.provider_fail_next(environment=live, count=1)
    intent = services.payment_intent_create(
        environment=live, amount=500, currency="usd", customer=customer
    )
    with pytest.raises(ProviderError):
        services.payment_intent_confirm(
            payment_intent=intent, payment_method="pm_card_visa", idempotency_key="retry-me"
        )
    assert not IdempotencyRecord.objects.filter(key="retry-me").exists()
    retried = services.payment_intent_confirm(
        payment_intent=intent, payment_method="pm_card_visa", idempotency_key="retry-me"
    )
    assert retried.status == "succeeded"


@billing_service("test_always_invalid")
def _always_invalid(*, environment) -> None:
    raise invalid("Always refused.", "environment")


@billing_service("test_carry_on")
def _carry_on_after_an_error(*, environment) -> Customer:
    """A service that catches another's error and carries on in the same transaction."""
    with pytest.raises(BillingError):
        _always_invalid(environment=environment)
    return services.customer_create(environment=environment, email="after@example.com")


def test_a_service_keeps_its_savepoint_so_its_caller_can_carry_on(live):
    with transaction.atomic():
        customer = _carry_on_after_an_error(environment=live)
        assert not transaction.get_connection().needs_rollback
    assert Customer.objects.filter(pk=customer.pk, email="after@example.com").exists()


def test_a_failed_service_undoes_only_its_own_writes(live):
    customer = factories.customer(live)
    with transaction.atomic():
        services.customer_update(customer=customer, changes={"description": "first write"})
        with pytest.raises(BillingError):
            services.customer_update(customer=customer, changes={"name": 5})
    customer.refresh_from_db()
    assert customer.description == "first write"


def test_claim_key_says_whether_the_key_is_ours(live):
    record, ours = claim_key(environment=live, key="api:k", scope="POST /x", fingerprint="f1")
    again, second = claim_key(environment=live, key="api:k", scope="POST /x", fingerprint="f2")
    assert (ours, second) == (True, False)
    assert again.pk == record.pk
    assert again.fingerprint == "f1"  # the first claim's row, untouched


def test_claim_key_inside_a_transaction_leaves_it_usable(live):
    claim_key(environment=live, key="api:t", scope="s", fingerprint="f")
    with transaction.atomic():
        _, ours = claim_key(environment=live, key="api:t", scope="s", fingerprint="f")
        customer = factories.customer(live)  # the failed INSERT was confined to its savepoint
    assert ours is False
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_ensure_same_request_names_the_param_and_the_key_to_change(live):
    record, _ = claim_key(environment=live, key="api:k", scope="POST /x", fingerprint="f1")
    ensure_same_request(
        record, scope="POST /x", fingerprint="f1", param="Idempotency-Key", shown_key="k"
    )
    for scope, digest in (("POST /y", "f1"), ("POST /x", "f2")):
        with pytest.raises(IdempotencyError) as error:
            ensure_same_request(
                record, scope=scope, fingerprint=digest, param="Idempotency-Key", shown_key="k"
            )
        assert error.value.param == "Idempotency-Key"
        assert "a key other than 'k'" in str(error.value)
