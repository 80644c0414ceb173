"""`billing.locks`: a service reads its object again under a lock, unless its caller already
holds that very instance under a lock in the same transaction (a workflow step's action)."""

from __future__ import annotations

import re

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing import selectors, services
from billing.locks import already_locked
from billing.models import Customer
from tests import factories
from workflows.actions import registry
from workflows.actions.registry import ActionContext

CUSTOMER_READ = re.compile(r'^SELECT .* FROM "billing_customer"', re.IGNORECASE)


def _customer_reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if CUSTOMER_READ.match(q["sql"])]


def _update(customer: Customer, key: str) -> Customer:
    return services.customer_update(customer=customer, changes={"metadata": {key: "yes"}})


def test_a_service_reads_its_object_again_under_a_lock(live):
    customer = factories.customer(live)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        updated = _update(customer, "plain")
    assert len(_customer_reads(queries)) == 1
    assert updated is not customer
    assert updated.metadata == {"plain": "yes"}


def test_it_uses_the_instance_its_caller_holds_under_a_lock(live):
    customer = factories.customer(live)
    with transaction.atomic():
        held = selectors.get_object(Customer, live, customer.pk, for_update=True)
        with CaptureQueriesContext(connection) as queries, already_locked(held):
            updated = _update(held, "held")
            # Another instance of the same row was not named: it is read again.
            other = _update(Customer.objects.get(pk=customer.pk), "other")
    assert updated is held
    assert len(_customer_reads(queries)) == 2  # `other`'s own read and its locked re-read
    assert other.metadata == {"held": "yes", "other": "yes"}
    customer.refresh_from_db()
    assert customer.metadata == {"held": "yes", "other": "yes"}


def test_a_step_s_update_action_reads_its_object_once_under_a_lock(live):
    customer = factories.customer(live)
    action = registry.get("customers.update")
    ctx = ActionContext(environment=live, idempotency_key="7/tag/", step_transaction=True)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        output = action.execute(ctx, {"customer": customer.pk, "metadata": {"tag": "on"}})
    reads = _customer_reads(queries)
    assert len(reads) == 1
    if connection.features.has_select_for_update:
        assert reads[0].rstrip().endswith("FOR UPDATE")
    assert output["metadata"] == {"tag": "on"}
    assert ctx.changed == [
        {
            "object": "customer",
            "id": customer.pk,
            "before": {"metadata": {"tag": None}},
            "after": {"metadata": {"tag": "on"}},
        }
    ]
