"""The database records who changed what, whichever way the change was made: a raw SQL
statement, an admin action, an API call, a workflow step, a service given its actor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backoffice.actors import Actor, acting_as
from billing import services
from billing.models import Refund
from history.models import (
    ChargeEvent,
    CustomerEvent,
    RefundEvent,
    RoleMembershipEvent,
    RunEvent,
    UserEvent,
    WorkflowEvent,
)
from tests import factories
from tests.api_client import api_for
from workflows import services as workflow_services
from workflows.engine.store.forcing import force_rows
from workflows.models import Run
from workflows.operations.retention import retention_days, runs_prune_detailed

pytestmark = pytest.mark.postgres


def last_event(model, pk):
    return model.objects.filter(pgh_obj_id=pk).order_by("-pgh_id").first()


def actor_of(event) -> dict:
    return (event.pgh_context or {}).get("actor")


def request_id_of(event) -> str:
    return (event.pgh_context or {}).get("request_id", "")


def test_a_raw_sql_update_is_recorded_as_the_systems(live):
    customer = factories.customer(live, name="Ada")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_customer SET name = 'Grace' WHERE id = %s", [customer.pk])
    event = last_event(CustomerEvent, customer.pk)
    assert event.pgh_label == "update"
    assert event.pgh_changes == {"name": ["Ada", "Grace"]}
    assert event.pgh_context is None  # no actor handed over: the system


def test_a_raw_sql_update_inside_a_context_is_recorded_as_its_actor(live):
    customer = factories.customer(live, name="Ada")
    with acting_as(Actor("user", "7", "ops"), request_id="req_raw"):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE billing_customer SET email = 'a@x.test' WHERE id = %s", [customer.pk]
            )
    event = last_event(CustomerEvent, customer.pk)
    assert actor_of(event) == {"type": "user", "id": "7", "name": "ops"}
    assert request_id_of(event) == "req_raw"
    # Once the block is left, the connection's next write is the system's again.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_customer SET email = 'b@x.test' WHERE id = %s", [customer.pk]
        )
    assert last_event(CustomerEvent, customer.pk).pgh_context is None


def test_the_actor_survives_a_rolled_back_savepoint(live):
    """PostgreSQL undoes a setting made inside a savepoint that rolls back; the next write
    inside the same block sets it again."""
    customer = factories.customer(live, name="Ada")
    with transaction.atomic(), acting_as(Actor("user", "9", "bob")):
        try:
            with transaction.atomic():
                services.customer_update(customer=customer, changes={"name": "Lost"})
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        services.customer_update(customer=customer, changes={"name": "Kept"})
    event = last_event(CustomerEvent, customer.pk)
    assert event.pgh_changes == {"name": ["Ada", "Kept"]}
    assert actor_of(event) == {"type": "user", "id": "9", "name": "bob"}


def test_an_admin_action_is_recorded_as_the_person_with_the_request_id(client, alice, live):
    charge = factories.paid_charge(live, amount=4200)
    client.force_login(alice)
    response = client.post(
        reverse("admin:billing_charge_changelist"),
        {"action": "refund_charges", "_selected_action": [charge.pk]},
    )
    assert response.status_code == 302
    refund = Refund.objects.get(charge=charge)
    alice_actor = {"type": "user", "id": str(alice.pk), "name": "alice"}
    created = last_event(RefundEvent, refund.pk)
    assert created.pgh_label == "create"
    assert actor_of(created) == alice_actor
    assert request_id_of(created) == response["Request-Id"]
    charge_update = last_event(ChargeEvent, charge.pk)
    assert charge_update.pgh_changes["amount_refunded"] == [0, 4200]
    assert actor_of(charge_update) == alice_actor


def test_an_admin_action_writes_djangos_admin_log(client, alice, live):
    """Admin actions log each object they changed (backoffice.admin_base.log_admin_action)."""
    charge = factories.paid_charge(live, amount=4200)
    client.force_login(alice)
    client.post(
        reverse("admin:billing_charge_changelist"),
        {"action": "refund_charges", "_selected_action": [charge.pk]},
    )
    entry = LogEntry.objects.filter(object_id=charge.pk).get()
    assert entry.user == alice
    assert "refund" in entry.get_change_message().lower()


def test_an_api_call_is_recorded_as_its_api_key(live):
    customer = factories.customer(live, name="Ada")
    api = api_for(live, "support")
    response = api.post(f"/customers/{customer.pk}", {"name": "Grace"})
    assert response.status_code == 200, response.content
    event = last_event(CustomerEvent, customer.pk)
    actor = actor_of(event)
    assert actor["type"] == "api_key" and actor["name"].startswith("support key")
    assert request_id_of(event) == response["Request-Id"]
    assert event.pgh_changes == {"name": ["Ada", "Grace"]}


def test_a_workflow_step_is_recorded_as_its_run(live, alice):
    """The executor runs a run's steps inside backoffice.actors.acting_as_run."""
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    customer = factories.customer(live, name="Ada")
    run = factories.run_executed(workflow, customer=customer)
    assert run.status == "succeeded"
    event = last_event(CustomerEvent, customer.pk)
    assert event.pgh_changes["metadata"][1] == {"Source": "api"}
    assert actor_of(event)["type"] == "workflow_run"
    assert actor_of(event)["id"] == str(run.pk)


def test_a_runs_status_transitions_are_its_only_history(live, alice):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    run = factories.run_executed(workflow, customer=factories.customer(live))
    changes = [e.pgh_changes for e in RunEvent.objects.filter(pgh_obj_id=run.pk).order_by("pgh_id")]
    assert changes == [{"status": ["pending", "running"]}, {"status": ["running", "succeeded"]}]


def test_a_pruned_runs_status_changes_go_with_it_and_others_stay(live, alice):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    old = factories.run_executed(workflow, customer=factories.customer(live))
    recent = factories.run_executed(workflow, customer=factories.customer(live))
    force_rows(Run.objects.filter(pk=old.pk)).update(
        finished_at=timezone.now() - timedelta(days=retention_days() + 1)
    )

    pruned = runs_prune_detailed()

    assert pruned.runs == 1 and pruned.rows[RunEvent._meta.label] == 2
    assert not RunEvent.objects.filter(pgh_obj_id=old.pk).exists()
    assert RunEvent.objects.filter(pgh_obj_id=recent.pk).count() == 2


def test_workflow_services_record_who_activated_and_deactivated(live, alice, mona):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    workflow_services.workflow_deactivate(workflow=workflow, deactivated_by=mona)
    event = last_event(WorkflowEvent, workflow.pk)
    assert event.pgh_changes["status"] == ["active", "inactive"]
    assert actor_of(event)["name"] == "mona"
    workflow_services.workflow_activate(workflow=workflow, activated_by=alice)
    event = last_event(WorkflowEvent, workflow.pk)
    assert event.pgh_changes["status"] == ["inactive", "active"]
    assert actor_of(event)["name"] == "alice"


def test_the_builders_deactivate_button_records_the_person(live, alice, mona):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    client = Client()
    client.force_login(mona)
    response = client.post(reverse("workflows:deactivate", args=[workflow.pk]))
    assert response.status_code in (200, 302)
    event = last_event(WorkflowEvent, workflow.pk)
    assert event.pgh_changes["status"] == ["active", "inactive"]
    assert actor_of(event) == {"type": "user", "id": str(mona.pk), "name": "mona"}


def test_roles_given_and_passwords_never_copied(live, alice, olga):
    with acting_as(Actor("user", str(alice.pk), "alice")):
        olga.groups.add(Group.objects.get(name="Viewer"))
        olga.set_password("another-secret-123")
        olga.save()
    membership = RoleMembershipEvent.objects.filter(user_id=olga.pk).order_by("-pgh_id").first()
    assert membership.pgh_label == "create"
    assert actor_of(membership)["name"] == "alice"
    for event in UserEvent.objects.filter(pgh_obj_id=olga.pk):
        assert "password" not in event.pgh_changes
        assert not hasattr(event, "password")
