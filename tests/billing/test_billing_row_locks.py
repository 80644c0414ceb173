"""A service reads the object it changes again under its row lock (`select_for_update()`), so
concurrent changes queue behind each other and each acts on the latest state."""

from __future__ import annotations

import re

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing import services
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
    reads = _customer_reads(queries)
    assert len(reads) == 1
    if connection.features.has_select_for_update:
        assert reads[0].rstrip().endswith("FOR UPDATE")
    assert updated is not customer
    assert updated.metadata == {"plain": "yes"}


def test_a_step_s_update_action_changes_its_object_under_a_lock(live):
    customer = factories.customer(live)
    action = registry.get("customers.update")
    ctx = ActionContext(environment=live, idempotency_key="7/tag/")
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        output = action.execute(ctx, {"customer": customer.pk, "metadata": {"tag": "on"}})
    reads = _customer_reads(queries)
    if connection.features.has_select_for_update:
        assert reads[-1].rstrip().endswith("FOR UPDATE")  # the service's own locked read
    assert output["metadata"] == {"tag": "on"}
    assert ctx.changed == [
        {
            "object": "customer",
            "id": customer.pk,
            "before": {"metadata": {"tag": None}},
            "after": {"metadata": {"tag": "on"}},
        }
    ]
