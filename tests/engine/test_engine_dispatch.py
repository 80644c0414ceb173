"""The dispatcher: events become runs of matching active workflows, once, with the event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from django_q.models import OrmQ

from billing import services as billing
from billing.models import Event
from tests import factories
from workflows import services as workflow_services
from workflows.definition.rows import _PUBLISHED_CACHE, version_definition
from workflows.engine.dispatch import event_dispatch
from workflows.engine.store.forcing import force_rows
from workflows.engine.sweep import sweep
from workflows.models import Run

TAG = {
    "name": "Tag new customers",
    "trigger": {
        "type": "event",
        "event": "customer.created",
        "accounts": "platform",
        "conditions": {"all": [{"field": "trigger.data.object.email", "op": "exists"}]},
    },
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {"seen": "yes"}},
        }
    ],
}


def committed():
    return TestCase.captureOnCommitCallbacks(execute=True)


def with_accounts(scope: str) -> dict:
    return {**TAG, "name": f"Tag {scope}", "trigger": {**TAG["trigger"], "accounts": scope}}


def test_it_creates_one_pending_queued_run_per_matching_workflow(live, alice):
    workflow = factories.workflow_active(live, TAG, alice)
    with committed():
        customer = factories.customer(live)

    run = Run.objects.get()
    event = Event.objects.get(type="customer.created", object_id=customer.pk)
    assert run.workflow == workflow
    assert run.version == workflow.published_version
    assert run.status == Run.Status.PENDING
    assert run.trigger_kind == Run.TriggerKind.EVENT
    assert run.event == event
    assert run.trigger["id"] == event.pk
    assert run.trigger["data"]["object"]["id"] == customer.pk
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert OrmQ.objects.count() == 1


def test_it_makes_nothing_from_a_second_delivery_of_the_same_event(live, alice):
    factories.workflow_active(live, TAG, alice)
    with committed():
        customer = factories.customer(live)
    event = Event.objects.get(type="customer.created", object_id=customer.pk)

    assert event_dispatch(event_id=event.pk) == []
    # Even a delivery that finds the event undispatched again is stopped by the constraint.
    Event.objects.filter(pk=event.pk).update(dispatched_at=None)
    assert event_dispatch(event_id=event.pk) == []
    assert Run.objects.count() == 1


def test_it_skips_events_whose_trigger_conditions_fail(live, alice):
    factories.workflow_active(live, TAG, alice)
    with committed():
        factories.customer(live, email="")
    assert Run.objects.count() == 0
    assert Event.objects.filter(dispatched_at__isnull=True).count() == 0


def test_it_ignores_other_events_environments_and_inactive_workflows(live, sandbox, alice):
    active = factories.workflow_active(live, TAG, alice)
    paused = factories.workflow_active(live, {**TAG, "name": "Paused"}, alice)
    workflow_services.workflow_deactivate(workflow=paused)
    with committed():
        customer = factories.customer(live)
        billing.customer_update(customer=customer, changes={"name": "Other event"})
        factories.customer(sandbox)
    assert list(Run.objects.values_list("workflow", flat=True)) == [active.pk]


def test_it_honours_the_account_scope(live, alice):
    platform = factories.workflow_active(live, with_accounts("platform"), alice)
    connected = factories.workflow_active(live, with_accounts("connected"), alice)
    everyone = factories.workflow_active(live, with_accounts("all"), alice)
    account = billing.account_create(environment=live, name="Shop")
    with committed():
        on_platform = factories.customer(live)
        on_account = factories.customer(live, account=account)

    def workflows_for(customer) -> set[int]:
        return set(
            Run.objects.filter(event__object_id=customer.pk).values_list("workflow", flat=True)
        )

    assert workflows_for(on_platform) == {platform.pk, everyone.pk}
    assert workflows_for(on_account) == {connected.pk, everyone.pk}


def test_it_creates_the_runs_in_the_transaction_that_records_the_event(live, alice):
    factories.workflow_active(live, TAG, alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        customer = factories.customer(live)
        assert Run.objects.filter(event__object_id=customer.pk).count() == 1
        assert OrmQ.objects.count() == 1  # the queue message is in the same transaction
        raise RuntimeError("the change is rolled back")
    assert not Event.objects.exists()
    assert not Run.objects.exists()
    assert not OrmQ.objects.exists()


def test_the_sweep_dispatches_lost_events_and_requeues_stuck_runs(live, alice, settings):
    factories.workflow_active(live, TAG, alice)
    settings.BILLING_EVENT_DISPATCHER = ""  # recorded without a dispatcher: left for the sweep
    customer = factories.customer(live)
    event = Event.objects.get(type="customer.created", object_id=customer.pk)
    assert event.dispatched_at is None

    assert sweep()["events"] == 0  # too young: its hand-off may still be on the way
    Event.objects.filter(pk=event.pk).update(created=timezone.now() - timedelta(seconds=10))
    assert sweep()["events"] == 1
    run = Run.objects.get()
    assert OrmQ.objects.count() == 1

    force_rows(Run.objects.filter(pk=run.pk)).update(
        status=Run.Status.RUNNING,
        lease_owner="dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert sweep()["runs"] == 1
    assert OrmQ.objects.count() == 2


def test_a_process_that_never_saw_the_version_reads_its_whole_definition(live, alice):
    """The dispatcher reads partial workflow rows; the first event a process sees for a
    version must still judge it by the whole published definition, and cache that."""
    workflow = factories.workflow_active(live, TAG, alice)
    _PUBLISHED_CACHE.clear()  # as in a worker started after the publish
    with committed():
        with_email = factories.customer(live, email="a@example.com")
        factories.customer(live, email="")  # the trigger condition is false for this one
    assert list(Run.objects.values_list("event__object_id", flat=True)) == [with_email.pk]
    (cached,) = _PUBLISHED_CACHE.values()
    assert cached == version_definition(workflow.published_version)
    assert cached["name"] == TAG["name"]
