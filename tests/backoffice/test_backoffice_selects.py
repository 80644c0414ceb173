"""`select_row`, `save_fields` and `insert_row`: the ORM's single-row work, built once."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from backoffice.inserts import insert_row
from backoffice.selects import select_row
from backoffice.updates import save_fields
from billing.models import Customer, Event, new_id
from tests import factories


def _values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_it_reads_the_instance_the_orm_reads(live):
    customer = factories.customer(
        live, name="Jenny Rosen", address={"country": "FR"}, metadata={"plan": "gold"}
    )

    found = select_row(Customer, pk=customer.pk, environment=live.pk)

    assert _values(found) == _values(Customer.objects.get(pk=customer.pk))
    assert found.metadata == {"plan": "gold"} and found.address["country"] == "FR"
    assert (found._state.adding, found._state.db) == (False, "default")


def test_it_finds_nothing_in_another_environment_or_under_another_id(live, sandbox):
    customer = factories.customer(live)

    assert select_row(Customer, pk=customer.pk, environment=sandbox.pk) is None
    assert select_row(Customer, pk="cus_missing", environment=live.pk) is None


def test_it_locks_the_row_where_the_database_has_row_locks(live):
    customer = factories.customer(live)
    with CaptureQueriesContext(connection) as queries:
        select_row(Customer, for_update=True, pk=customer.pk)
    [statement] = [q["sql"] for q in queries.captured_queries]
    assert statement.endswith("FOR UPDATE") == connection.features.has_select_for_update


def test_save_fields_writes_only_the_fields_named(live):
    customer = factories.customer(live, name="Old name")
    customer.metadata = {"tag": "done"}
    customer.name = "Not saved"

    save_fields(customer, ["metadata"])

    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.metadata, stored.name) == ({"tag": "done"}, "Old name")


def test_save_fields_refuses_a_row_that_is_gone(live):
    customer = factories.customer(live)
    Customer.objects.filter(pk=customer.pk).delete()

    with pytest.raises(DatabaseError, match="did not affect any rows"):
        save_fields(customer, ["metadata"])


def test_insert_row_stores_what_save_would(live):
    customer = factories.customer(live)
    event = Event(
        id=new_id("evt"),
        environment=live,
        type="customer.updated",
        data={"object": {"id": customer.pk}, "previous_attributes": {"metadata": {}}},
        object_id=customer.pk,
        cause_chain=[[1, 2]],
    )

    insert_row(event)

    assert event._state.adding is False
    assert _values(Event.objects.get(pk=event.pk)) == _values(event)
