"""`deferred_writes`: writes nobody waits for travel with the next statement (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from backoffice.inserts import insert_row
from backoffice.selects import select_row
from backoffice.updates import save_fields
from backoffice.writebehind import deferred_writes
from billing.models import Customer, Event
from tests import factories


def _statements(queries) -> list[str]:
    return [q["sql"].split(" ", 2)[0] + " " + q["sql"].split(" ", 2)[1] for q in queries]


@pytest.mark.postgres
def test_a_deferred_write_goes_first_with_the_next_statement(live):
    customer = factories.customer(live)
    customer.metadata = {"tag": "done"}

    with transaction.atomic(), deferred_writes(), CaptureQueriesContext(connection) as queries:
        save_fields(customer, ["metadata"])
        assert queries.captured_queries == []  # nothing sent yet
        found = select_row(Customer, pk=customer.pk)

    assert found.metadata == {"tag": "done"}  # the UPDATE ran before the read
    assert _statements(queries.captured_queries) == ['UPDATE "billing_customer"', 'SELECT "id",']


@pytest.mark.postgres
def test_what_is_left_is_sent_when_the_block_ends(live):
    customer = factories.customer(live)
    customer.metadata = {"tag": "done"}

    with transaction.atomic():
        with deferred_writes():
            save_fields(customer, ["metadata"])
        assert Customer.objects.get(pk=customer.pk).metadata == {"tag": "done"}


@pytest.mark.postgres
def test_an_update_that_changed_no_row_fails_the_statement_that_carried_it(live):
    customer = factories.customer(live)
    Customer.objects.filter(pk=customer.pk).delete()

    with pytest.raises(DatabaseError, match="did not affect any rows"):
        with transaction.atomic(), deferred_writes():
            save_fields(customer, ["metadata"])
            select_row(Customer, pk=customer.pk)


@pytest.mark.postgres
def test_a_failing_write_raises_django_s_error_at_the_statement_that_carried_it(live):
    factories.customer(live)
    taken = Event.objects.get(type="customer.created")
    twin = Event(id=taken.pk, environment=live, type="customer.created", data={}, object_id="x")

    with pytest.raises(IntegrityError):
        with transaction.atomic(), deferred_writes():
            insert_row(twin)
            select_row(Customer, pk="cus_anything")


def test_outside_a_transaction_a_write_is_sent_at_once(transactional_db, live):
    customer = factories.customer(live)
    customer.metadata = {"tag": "done"}

    with deferred_writes(), CaptureQueriesContext(connection) as queries:
        save_fields(customer, ["metadata"])
        assert len(queries.captured_queries) == 1
