"""One at a time per customer (`trigger.serialize_by`), in-process on SQLite and PostgreSQL:
the definition's checks, the key a run gets, the claim holding a run back while its key is
held (a failed run for at most its max wait), and what the inspector and the API say.
Real workers: tests/engine/test_serial_workers.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import services as billing
from tests import factories
from tests.api_client import api_for
from tests.concurrency import race
from tests.httpserver import Reply
from workflows.definition.validation import validate_definition
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_cancel, run_restart
from workflows.engine.serial import note_of
from workflows.engine.store.forcing import force_rows
from workflows.engine.store.runs import run_claim, run_reopen_failed
from workflows.engine.sweep import sweep
from workflows.models import Run


def serialized(url: str, by: str = "customer", **trigger) -> dict:
    return {
        "name": "Tell the partner, one at a time",
        "trigger": {"type": "event", "event": "customer.updated", "serialize_by": by, **trigger},
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": url, "body": {"event": "{{ trigger.id }}"}},
            }
        ],
    }


def errors_of(definition: dict) -> list[tuple[str, str]]:
    errors = validate_definition(definition)
    return [(e.field, e.message) for e in errors if e.field.startswith("trigger")]


def test_validation_names_the_field_and_the_rule():
    good = serialized("https://partner.example/hook")
    assert errors_of(good) == []
    assert errors_of(serialized("https://x.example/", serialize_max_wait_minutes=0.5)) == []

    bad = serialized("https://partner.example/hook", by="invoice")
    assert errors_of(bad) == [
        ("trigger.serialize_by", "Unknown serialize_by 'invoice': use customer, object")
    ]
    for wait in (0, -5):
        zero = serialized("https://x.example/", serialize_max_wait_minutes=wait)
        assert errors_of(zero) == [
            (
                "trigger.serialize_max_wait_minutes",
                "serialize_max_wait_minutes must be a positive number of minutes",
            )
        ]
    manual = {**good, "trigger": {"type": "manual", "serialize_by": "customer"}}
    [(field, message)] = errors_of(manual)
    assert field == "trigger.serialize_by"
    assert message.startswith("Unknown key 'serialize_by' for a manual trigger")
    alone = serialized("https://x.example/", serialize_max_wait_minutes=5)
    del alone["trigger"]["serialize_by"]
    assert errors_of(alone) == [
        (
            "trigger.serialize_max_wait_minutes",
            "serialize_max_wait_minutes needs serialize_by (customer or object)",
        )
    ]


@pytest.fixture
def partner(http_server, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    return http_server


def update(customer, n: int) -> Run:
    billing.customer_update(customer=customer, changes={"metadata": {"n": str(n)}})
    return Run.objects.filter(event__object_id=customer.pk).order_by("-pk").first()


def test_a_run_gets_its_customer_as_key_and_waits_for_the_earlier_run_of_it(live, alice, partner):
    ana, ben = factories.customer(live), factories.customer(live)
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    first, second, other = update(ana, 1), update(ana, 2), update(ben, 1)
    assert (first.serial_key, second.serial_key, other.serial_key) == (ana.pk, ana.pk, ben.pk)
    assert second.serial_max_wait == 3600  # the setting's 60 minutes

    # The later run of the same customer is not started; another customer's is.
    assert run_execute(run_id=second.pk) == "not_claimed"
    second.refresh_from_db()
    assert note_of(second)["reason"] == (
        f"waiting for run #{first.pk} (same customer {ana.pk}) to finish"
    )
    assert run_execute(run_id=other.pk) == Run.Status.SUCCEEDED
    assert run_execute(run_id=first.pk) == Run.Status.SUCCEEDED
    second.refresh_from_db()
    assert note_of(second) is None
    assert run_execute(run_id=second.pk) == Run.Status.SUCCEEDED


def test_the_object_is_the_key_when_serialize_by_is_object(live, alice, partner):
    ana = factories.customer(live)
    factories.workflow_active(live, serialized(partner.url("/hook"), by="object"), alice)
    assert update(ana, 1).serial_key == ana.pk


def test_an_invoice_event_is_keyed_by_its_customer(live, alice, partner):
    ana = factories.customer(live)
    definition = serialized(partner.url("/hook"))
    definition["trigger"]["event"] = "invoice.created"
    factories.workflow_active(live, definition, alice)
    invoice = billing.invoice_create(customer=ana, lines=[{"amount": 900, "currency": "usd"}])
    run = Run.objects.get(event__object_id=invoice.pk)
    assert run.serial_key == ana.pk


def test_a_failed_run_holds_its_key_until_restarted_then_the_next_proceeds(live, alice, partner):
    ana = factories.customer(live)
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    partner.script(400)  # the first send is refused: not retryable
    first, second = update(ana, 1), update(ana, 2)
    assert run_execute(run_id=first.pk) == Run.Status.FAILED
    first.refresh_from_db()

    assert run_execute(run_id=second.pk) == "not_claimed"
    sweep()  # the sweep does not start it either while the failure holds the key
    assert run_execute(run_id=second.pk) == "not_claimed"
    second.refresh_from_db()
    proceeds = first.finished_at + timedelta(minutes=60)
    assert note_of(second)["reason"] == (
        f"waiting for run #{first.pk} (same customer {ana.pk}) to finish: it failed at "
        f"{first.finished_at.isoformat()}; proceeds at {proceeds.isoformat()} unless it is "
        "restarted"
    )
    assert note_of(second)["proceeds_at"] == proceeds

    run_restart(run=first, user=alice)  # the partner is fixed: it answers 200 again
    assert run_execute(run_id=second.pk) == "not_claimed"  # the restarted run goes first
    assert run_execute(run_id=first.pk) == Run.Status.SUCCEEDED
    assert run_execute(run_id=second.pk) == Run.Status.SUCCEEDED
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.started_at >= first.finished_at


def test_after_the_max_wait_the_next_run_proceeds_and_says_so(live, alice, partner):
    ana = factories.customer(live)
    definition = serialized(partner.url("/hook"), serialize_max_wait_minutes=1)
    factories.workflow_active(live, definition, alice)
    partner.script(400)
    first, second = update(ana, 1), update(ana, 2)
    assert run_execute(run_id=first.pk) == Run.Status.FAILED
    assert run_execute(run_id=second.pk) == "not_claimed"
    # The failure is older than the max wait (a minute; the worker test waits for real).
    force_rows(Run.objects.filter(pk=first.pk)).update(
        finished_at=timezone.now() - timedelta(minutes=1, seconds=1)
    )
    assert run_execute(run_id=second.pk) == Run.Status.SUCCEEDED
    second.refresh_from_db()
    note = note_of(second)
    assert note["reason"] == (
        f"started after run #{first.pk} had failed for 1 min (serialize_by customer)"
    )
    assert note["passed"] is True


def test_canceling_the_running_run_lets_the_next_one_start(live, alice, partner):
    ana = factories.customer(live)
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    first, second = update(ana, 1), update(ana, 2)
    run_cancel(run=first, user=alice)
    assert run_execute(run_id=second.pk) == Run.Status.SUCCEEDED


def test_the_sweep_enqueues_only_the_first_waiting_run_of_a_key(live, alice, partner):
    ana = factories.customer(live)
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    runs = [update(ana, n) for n in range(4)]
    assert sweep()["runs"] == 1  # however recent
    assert run_execute(run_id=runs[0].pk) == Run.Status.SUCCEEDED
    assert sweep()["runs"] == 1  # now the second
    del runs


def claim_both(first_id: int, second_id: int, tag: str) -> list:
    """Together: restart the failed first run and claim it; claim the second run."""
    expires = timezone.now() + timedelta(minutes=5)

    def restart_and_claim_first():
        run_reopen_failed(run_id=first_id, restart_count=1)
        return run_claim(run_id=first_id, owner=f"a{tag}", expires=expires)

    def claim_second():
        return run_claim(run_id=second_id, owner=f"b{tag}", expires=expires)

    calls = iter([restart_and_claim_first, claim_second])
    return race(2, lambda: next(calls)())


@pytest.mark.postgres
def test_two_claims_never_start_two_runs_of_one_key(transactional_db, live, alice, partner):
    """A failed run long past its max wait is restarted and claimed while the next run of its
    key is claimed: without the key's lock each claim could see the other run not running."""
    partner.default = Reply(400, {"no": True})
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    for round_ in range(15):
        ana = factories.customer(live)
        first, second = update(ana, 1), update(ana, 2)
        assert run_execute(run_id=first.pk) == Run.Status.FAILED
        force_rows(Run.objects.filter(pk=first.pk)).update(
            finished_at=timezone.now() - timedelta(hours=2)
        )

        results = claim_both(first.pk, second.pk, tag=str(round_))
        assert not any(isinstance(r, Exception) for r in results), results
        claimed = [r for r in results if r is not None]
        assert len(claimed) <= 1, f"round {round_}: both runs of {ana.pk} started"
        running = Run.objects.filter(serial_key=ana.pk, status=Run.Status.RUNNING).count()
        assert running <= 1


def test_the_run_page_and_the_api_say_what_a_held_run_waits_for(client, live, alice, partner):
    ana = factories.customer(live)
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    partner.script(400)
    first, second = update(ana, 1), update(ana, 2)
    assert run_execute(run_id=first.pk) == Run.Status.FAILED
    first.refresh_from_db()

    client.force_login(alice)
    page = client.get(f"/admin/runs/{second.pk}/").content.decode()
    assert f"waiting for run #{first.pk} (same customer {ana.pk}) to finish: it failed at" in page
    assert f'href="/admin/runs/{first.pk}/"' in page

    body = api_for(live, "viewer").get(f"/runs/{second.pk}").json()
    proceeds = first.finished_at + timedelta(minutes=60)
    assert body["serialized"]["run"] == first.pk
    assert body["serialized"]["key"] == ana.pk
    assert body["serialized"]["proceeds_at"] == int(proceeds.timestamp())
    assert body["serialized"]["passed"] is False
    assert api_for(live, "viewer").get(f"/runs/{first.pk}").json()["serialized"] is None
