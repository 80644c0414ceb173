"""The runs list's export (CSV and JSON) and a run's JSON download: filters, streaming, roles.

Runs are executed through the engine in this process (`factories.run_executed`); the
few-thousand-run test uses `manage.py generate_runs`, the inspector benchmark's generator.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests import factories
from workflows.engine.executor import run_execute
from workflows.inspector.export import CHUNK_SIZE, COLUMNS
from workflows.models import Run, StepRun

READERS = ["vic", "sam"]
MANAGERS = ["mona", "dave", "alice"]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body_of(response) -> str:
    return b"".join(response.streaming_content).decode()


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def runs(live, flaky_workflow, flaky, alice):
    """Two failed runs and one succeeded run of "Ledger sync", each for its own customer."""
    made = {}
    for name in ("ana", "ben"):
        customer = factories.customer(live, email=f"{name}@example.com")
        made[name] = factories.run_executed(flaky_workflow, customer=customer, user=alice)
    flaky["fail"] = False
    customer = factories.customer(live, email="cy@example.com")
    made["cy"] = factories.run_executed(flaky_workflow, customer=customer, user=alice)
    flaky["fail"] = True
    assert [made[n].status for n in ("ana", "ben", "cy")] == ["failed", "failed", "succeeded"]
    return made


# --- what is in the file ----------------------------------------------------------------------


def test_the_csv_holds_the_runs_the_filtered_list_shows(cast, runs):
    response = client_for(cast["vic"]).get(reverse("runs:export_csv"), {"status": "failed"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="runs-live-\d{8}-\d{6}\.csv"', response["Content-Disposition"]
    )
    text = body_of(response)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    rows = csv_rows(text)
    assert [int(r["run_id"]) for r in rows] == [runs["ben"].pk, runs["ana"].pk]
    ben = rows[0]
    assert ben["workflow_name"] == "Ledger sync"
    assert ben["workflow_id"] == str(runs["ben"].workflow_id)
    assert ben["version"] == str(runs["ben"].version.number)
    assert ben["status"] == "failed"
    assert ben["failed_step"] == "sync"
    assert "Ledger said no: account frozen." in ben["error"]
    assert ben["created"] == runs["ben"].created.isoformat()
    assert float(ben["duration_seconds"]) >= 0


def test_the_json_export_is_one_array_of_the_same_rows(cast, runs):
    response = client_for(cast["vic"]).get(reverse("runs:export_json"), {"status": "succeeded"})

    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].endswith('.json"')
    rows = json.loads(body_of(response))
    assert [r["run_id"] for r in rows] == [runs["cy"].pk]
    assert set(rows[0]) == set(COLUMNS)
    assert rows[0]["failed_step"] == "" and rows[0]["error"] == ""


def test_an_export_matching_nothing_is_a_header_or_an_empty_array(cast, runs):
    client = client_for(cast["vic"])
    query = {"event_type": "invoice.paid"}
    assert body_of(client.get(reverse("runs:export_csv"), query)).splitlines() == [
        ",".join(COLUMNS)
    ]
    assert json.loads(body_of(client.get(reverse("runs:export_json"), query))) == []


def test_the_object_filter_exports_the_runs_that_touched_the_object(cast, runs):
    customer_id = runs["ben"].trigger["input"]["customer"]
    response = client_for(cast["vic"]).get(reverse("runs:export_csv"), {"object_id": customer_id})
    assert [int(r["run_id"]) for r in csv_rows(body_of(response))] == [runs["ben"].pk]


def test_an_event_triggered_run_carries_its_event_and_object(cast, live, region_workflow):
    # The dispatcher runs on commit: run the callbacks as a real commit would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        customer = factories.customer(live, address={"country": "FR"})
    run = Run.objects.get(workflow=region_workflow)
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_execute(run_id=run.pk)
    response = client_for(cast["vic"]).get(
        reverse("runs:export_csv"), {"event_type": "customer.created"}
    )
    (row,) = csv_rows(body_of(response))
    assert row["run_id"] == str(run.pk)
    assert row["status"] == "succeeded"
    assert row["event_id"] == run.event_id
    assert row["event_type"] == "customer.created"
    assert row["object_id"] == customer.pk


def test_the_export_never_holds_another_environments_runs(cast, runs, sandbox, flaky, alice):
    workflow = factories.workflow_active(sandbox, factories.flaky_definition("Sandbox"), alice)
    other = factories.run_executed(workflow, customer=factories.customer(sandbox), user=alice)
    rows = csv_rows(body_of(client_for(cast["alice"]).get(reverse("runs:export_csv"))))
    ids = {int(r["run_id"]) for r in rows}
    assert {r.pk for r in runs.values()} <= ids
    assert other.pk not in ids


def test_a_bad_filter_gets_the_lists_own_error_and_no_file(cast, runs):
    response = client_for(cast["vic"]).get(
        reverse("runs:export_csv"), {"status": "broken", "since": "last tuesday"}
    )
    assert response.status_code == 400
    assert "Content-Disposition" not in response
    body = response.content.decode()
    assert 'class="errorlist"' in body
    assert "status: Unknown status &#x27;broken&#x27;." in body
    assert "since: Use a date (2026-01-31) or a date and time (2026-01-31T09:00)." in body


def test_the_list_links_its_export_to_the_current_filters(cast, runs):
    body = client_for(cast["vic"]).get(reverse("runs:list"), {"status": "failed"}).content
    body = body.decode()
    assert f'href="{reverse("runs:export_csv")}?status=failed"' in body
    assert f'href="{reverse("runs:export_json")}?status=failed"' in body


# --- who may export ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", READERS + MANAGERS)
@pytest.mark.parametrize("route", ["runs:export_csv", "runs:export_json"])
def test_every_role_that_sees_the_list_may_export_it(cast, runs, name, route):
    response = client_for(cast[name]).get(reverse(route))
    assert response.status_code == 200
    assert str(runs["ana"].pk) in body_of(response)


@pytest.mark.parametrize("route", ["runs:export_csv", "runs:export_json"])
def test_a_user_without_a_role_may_not_export(cast, runs, route):
    assert client_for(cast["olga"]).get(reverse(route)).status_code == 403


def test_anonymous_visitors_go_to_the_login_page(runs):
    response = Client().get(reverse("runs:export_csv"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


# --- streamed in chunks -----------------------------------------------------------------------


@pytest.mark.postgres
def test_thousands_of_runs_stream_in_chunks_by_id(cast, live):
    call_command("generate_runs", runs=3000, steps=3000, environment="live", stdout=io.StringIO())
    client = client_for(cast["vic"])

    with CaptureQueriesContext(connection) as during_view:
        response = client.get(reverse("runs:export_csv"))
    # The view answers before reading a single run: rows are read while the body is sent.
    assert not [q for q in during_view.captured_queries if "workflows_run" in q["sql"]]

    with CaptureQueriesContext(connection) as while_sending:
        rows = csv_rows(body_of(response))
    all_ids = list(
        Run.objects.filter(environment=live, dry_run=False)
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert [int(r["run_id"]) for r in rows] == all_ids
    reads = [q["sql"] for q in while_sending.captured_queries if "workflows_run" in q["sql"]]
    assert len(reads) == len(all_ids) // CHUNK_SIZE + 1
    assert all(f"LIMIT {CHUNK_SIZE}" in sql for sql in reads)


# --- one run as JSON --------------------------------------------------------------------------


def test_a_run_downloads_as_json_with_steps_attempts_and_errors(cast, runs):
    run = runs["ana"]
    page = client_for(cast["vic"]).get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert f'href="{reverse("runs:export_run", args=[run.pk])}"' in page

    response = client_for(cast["vic"]).get(reverse("runs:export_run", args=[run.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-live.json"'
    document = json.loads(response.content)
    assert document["id"] == run.pk
    assert document["status"] == "failed"
    assert document["workflow"] == {"id": run.workflow_id, "name": "Ledger sync"}
    assert document["error"]["step"] == "sync"
    assert document["trigger"] == run.trigger
    assert document["event"] is None  # a manual run
    steps = {s["step_id"]: s for s in document["steps"]}
    assert set(steps) == {"tag", "sync"}
    assert steps["tag"]["status"] == "succeeded"
    assert steps["tag"]["params"] == StepRun.objects.get(run=run, step_id="tag").params
    assert steps["tag"]["changed_objects"][0]["id"] == run.trigger["input"]["customer"]
    sync = steps["sync"]
    assert sync["status"] == "failed"
    assert sync["attempts"] >= 1
    assert len(sync["attempt_errors"]) == sync["attempts"]
    assert sync["error"]["message"] == "Ledger said no: account frozen."


PAYER_TAG = {
    "name": "Tag payers",
    "trigger": {"type": "event", "event": "payment_intent.succeeded", "accounts": "platform"},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.customer }}",
                "metadata": {"paid": "yes"},
            },
        }
    ],
}


def test_an_event_runs_json_holds_its_event_and_its_page_shows_money(cast, live, alice):
    factories.workflow_active(live, PAYER_TAG, alice)
    customer = factories.customer(live)
    with TestCase.captureOnCommitCallbacks(execute=True):
        charge = factories.paid_charge(live, amount=123456, currency="usd", customer=customer)
    run = Run.objects.get(workflow__name="Tag payers")
    run_execute(run_id=run.pk)
    client = client_for(cast["vic"])

    document = client.get(reverse("runs:export_run", args=[run.pk])).json()
    assert document["event"]["id"] == run.event_id
    assert document["event"]["type"] == "payment_intent.succeeded"
    assert document["event"]["data"]["object"]["id"] == charge.payment_intent_id
    assert document["event"]["data"]["object"]["amount"] == 123456  # as stored: minor units

    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    amounts = page.split('id="trigger-amounts">')[1].split("</dd>")[0]
    assert "amount 1,234.56 USD (123456)" in amounts


def test_a_runs_json_follows_the_run_pages_permissions(cast, runs, sandbox, flaky, alice):
    url = reverse("runs:export_run", args=[runs["ana"].pk])
    assert client_for(cast["sam"]).get(url).status_code == 200
    assert client_for(cast["olga"]).get(url).status_code == 403
    assert Client().get(url).status_code == 302
    workflow = factories.workflow_active(sandbox, factories.flaky_definition("Sandbox"), alice)
    other = factories.run_executed(workflow, customer=factories.customer(sandbox), user=alice)
    other_url = reverse("runs:export_run", args=[other.pk])
    assert client_for(cast["alice"]).get(other_url).status_code == 404


REFUND_BY_HAND = {
    "name": "Refund by hand",
    "trigger": {"type": "manual", "input": [{"name": "charge", "type": "string"}]},
    "steps": [
        {
            "id": "refund",
            "type": "action",
            "action": "refunds.create",
            "params": {"charge": "{{ trigger.input.charge }}", "amount": 1000},
        }
    ],
}


def test_the_run_page_shows_changed_amounts_as_money_with_minor_units(cast, live, alice):
    from workflows.engine.runs import run_start_manual

    workflow = factories.workflow_active(live, REFUND_BY_HAND, alice)
    charge = factories.paid_charge(live, amount=5000, currency="eur")
    run = run_start_manual(workflow=workflow, input={"charge": charge.pk}, user=alice)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded"

    page = client_for(cast["vic"]).get(reverse("runs:detail", args=[run.pk])).content.decode()
    diff = page.split('id="run-steps"')[1].split("</section>")[0]
    # The refund the step made: its amount in its currency, the stored minor units beside it.
    amount_row = re.search(r"<tr><td><code>amount</code></td>(.*?)</tr>", diff)
    assert amount_row, "the refund's amount is in the diff"
    assert (
        amount_row.group(1)
        == '<td class="bf-before">—</td><td class="bf-after">10.00 EUR (1000)</td>'
    )
