"""The whole API answers with the types its OpenAPI document declares, and every list takes the
same `created` filters.

The document checks look at every operation, so a route added without a response type or a
list without `created[...]` fails here. The answer checks drive the workflow, run and webhook
endpoint resources through the WSGI app, with real objects (the engine executes the runs), and
validate each answer against the declared schema with schemathesis, which
tests/security/test_hostile_api_schema.py uses on generated requests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client, TestCase
from werkzeug.test import Client as WsgiClient

from billing.api_keys import api_key_create
from billing.api_schemas import CustomerOut, StripeList
from billing.snapshots import snapshot
from config.wsgi import application
from tests import factories
from tests.api_client import BASE, api_for, error_of
from tests.engine.test_approval_step import approving
from webhooks.models import WebhookEndpoint
from workflows.backtests.jobs import backtest_apply
from workflows.batches.jobs import batch_apply
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.models import Run, Workflow

CREATED_PARAMS = {"created", "created[gt]", "created[gte]", "created[lt]", "created[lte]"}
HOOK_URL = "https://hooks.example.com/stripe"
TAG = factories.tag_by_hand_definition()


@pytest.fixture(autouse=True)
def _hooks_allowed(settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["hooks.example.com"]}


def _document() -> dict:
    return Client().get(BASE + "/openapi.json").json()


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def _is_list(operation: dict) -> bool:
    return "limit" in {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


def _component(document: dict, schema: dict) -> tuple[str, dict]:
    """The component a `$ref` names, following a `$ref` that only points on."""
    name = ""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return name, schema


# --- the document --------------------------------------------------------------------------------


def test_every_operation_declares_a_typed_answer_and_its_error_envelope(db):
    document = _document()
    operations = _operations(document)
    assert len(operations) > 60  # billing, workflows, runs and webhook endpoints
    for path, method, operation in operations:
        label = f"{method.upper()} {path}"
        responses = operation["responses"]
        [ok] = [code for code in responses if code.startswith("2")]
        schema = responses[ok]["content"]["application/json"]["schema"]
        assert "$ref" in schema, label
        name, resolved = _component(document, schema)
        # A named object with its fields, not an empty "any JSON" answer.
        assert resolved.get("type") == "object" and resolved.get("properties"), (label, name)
        errors = [
            code
            for code, response in responses.items()
            if response.get("content", {}).get("application/json", {}).get("schema")
            == {"$ref": "#/components/schemas/Error"}
        ]
        expected = {"400", "401", "403", "default"} | ({"404"} if "{" in path else set())
        assert expected <= set(errors), (label, errors)


def test_every_list_answers_with_the_one_envelope_and_takes_the_created_filters(db):
    document = _document()
    lists = [(path, op) for path, method, op in _operations(document) if _is_list(op)]
    paths = {path.removeprefix(BASE) for path, _ in lists}
    assert {"/customers", "/events", "/workflows", "/runs", "/webhook_endpoints"} <= paths
    assert len(lists) >= 15
    for path, operation in lists:
        query = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert CREATED_PARAMS <= set(query), path
        for name in CREATED_PARAMS:  # each the range-checked Unix time
            (schema,) = [s for s in query[name]["schema"]["anyOf"] if s.get("type") == "integer"]
            assert (schema["minimum"], schema["maximum"]) == (0, 253_402_300_799), (path, name)
        name, envelope = _component(
            document, operation["responses"]["200"]["content"]["application/json"]["schema"]
        )
        assert name.startswith("StripeList_"), (path, name)
        assert envelope["properties"]["object"]["const"] == "list"
        assert set(envelope["required"]) == {"object", "data", "has_more", "url"}


# --- created filters on the workflow, run and webhook endpoint lists ----------------------------


def _at(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


def _two_workflows(live) -> tuple[type, str, str]:
    api = api_for(live)
    old = api.post("/workflows", {**TAG, "name": "Old"}).json()["id"]
    new = api.post("/workflows", {**TAG, "name": "New"}).json()["id"]
    return Workflow, old, new


def _two_runs(live) -> tuple[type, int, int]:
    workflow = factories.workflow_active(live, TAG)
    customer = factories.customer(live)
    old, new = (run_start_manual(workflow=workflow, input={"customer": customer.pk}) for _ in "ab")
    return Run, old.pk, new.pk


def _two_endpoints(live) -> tuple[type, str, str]:
    api = api_for(live)
    body = {"url": HOOK_URL, "enabled_events": ["customer.created"]}
    old = api.post("/webhook_endpoints", body).json()["id"]
    new = api.post("/webhook_endpoints", body).json()["id"]
    return WebhookEndpoint, old, new


@pytest.mark.parametrize(
    "path, make",
    [("/workflows", _two_workflows), ("/runs", _two_runs), ("/webhook_endpoints", _two_endpoints)],
)
def test_the_workflow_run_and_webhook_lists_filter_on_created(live, path, make):
    model, old_id, new_id = make(live)
    # Made a second apart in real time, they are put years apart so each bound is clear-cut.
    # Runs are written by the engine's store only; forcing a creation time is a test's business.
    force_rows(model.objects.filter(pk=old_id)).update(created=datetime(2020, 6, 1, tzinfo=UTC))
    force_rows(model.objects.filter(pk=new_id)).update(created=datetime(2024, 6, 1, 12, tzinfo=UTC))
    api = api_for(live)

    def ids(**params) -> list:
        response = api.get(path, limit=100, **params)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["data"]]

    assert ids() == [new_id, old_id]
    assert ids(**{"created[gt]": _at(2022)}) == [new_id]
    assert ids(**{"created[gte]": _at(2024), "created[lt]": _at(2025)}) == [new_id]
    assert ids(**{"created[lt]": _at(2022)}) == [old_id]
    assert ids(**{"created[lte]": _at(2020)}) == []
    noon = int(datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp())
    assert ids(created=noon) == [new_id]
    assert ids(created=noon + 1) == []
    for name, value in [("created[gt]", "soon"), ("created[lt]", -1), ("created", 10**12)]:
        response = api.get(path, **{name: value})
        assert response.status_code == 400, (name, value)
        assert error_of(response)["param"] == name


def test_an_expand_on_the_webhook_endpoint_list_is_refused_naming_it(live):
    # An endpoint names no other object: `expand` is a 400, as on billing, not ignored.
    api_for(live).post("/webhook_endpoints", {"url": HOOK_URL, "enabled_events": ["*"]})
    response = api_for(live).get("/webhook_endpoints", **{"expand[]": "data.url"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "expand"


# --- answers against the declared schemas --------------------------------------------------------


@pytest.fixture
def wsgi(db):
    # The WSGI handler would close the test's connection (and so its transaction) around each
    # request, as Django's test client avoids doing.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


class Checked:
    """Calls through the WSGI app; each answer must be a 200 (202 for a job) matching the schema
    the OpenAPI document declares for that operation (schemathesis' own response check)."""

    def __init__(self, app, raw_key: str) -> None:
        self.schema = schemathesis.openapi.from_wsgi(BASE + "/openapi.json", app)
        self.client = WsgiClient(app)
        self.headers = {"Authorization": f"Bearer {raw_key}"}
        self.checked: set[str] = set()

    def __call__(self, method: str, path: str, body: dict | None = None, **query) -> dict:
        response = self.client.open(
            BASE + path, method=method, json=body, query_string=query, headers=self.headers
        )
        assert response.status_code in (200, 202), (method, path, response.get_data(as_text=True))
        operation = self.schema.find_operation_by_path(method, BASE + path)
        assert operation is not None, (method, path)
        operation.validate_response(response)
        self.checked.add(f"{method} {operation.path}")
        return response.get_json()


def _executed(run_id: int) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_execute(run_id=run_id)


def test_every_workflow_run_and_webhook_answer_matches_its_declared_schema(wsgi):
    live = factories.environment("live")
    _, raw = api_key_create(environment=live, name="schemas", role="admin")
    call = Checked(wsgi, raw)
    customer = factories.customer(live)

    call("GET", "/workflows/schema")
    workflow = call("POST", "/workflows", TAG)["id"]
    call("POST", f"/workflows/{workflow}", {**TAG, "name": "Tag a customer, renamed"})
    call("POST", f"/workflows/{workflow}/publish")
    call("POST", f"/workflows/{workflow}/activate")
    assert call("GET", "/workflows")["data"][0]["id"] == workflow
    call("GET", f"/workflows/{workflow}")

    # A run that succeeds, with its step's params, output and changed objects.
    done = call("POST", f"/workflows/{workflow}/invoke", {"input": {"customer": customer.pk}})
    _executed(done["id"])
    succeeded = call("GET", f"/runs/{done['id']}")
    assert succeeded["status"] == "succeeded" and succeeded["steps"][0]["changed_objects"]
    # One that fails (with its errors), is restarted, then canceled.
    broken = call("POST", f"/workflows/{workflow}/invoke", {"input": {"customer": "cus_missing"}})
    _executed(broken["id"])
    assert call("GET", f"/runs/{broken['id']}")["error"]["step"] == "tag"
    assert call("POST", f"/runs/{broken['id']}/restart")["status"] == "pending"
    assert call("POST", f"/runs/{broken['id']}/cancel")["status"] == "canceled"
    # Another failure, noted and resolved without a restart.
    closed = call("POST", f"/workflows/{workflow}/invoke", {"input": {"customer": "cus_gone"}})
    _executed(closed["id"])
    assert call("POST", f"/runs/{closed['id']}/notes", {"body": "Seen."})["kind"] == "note"
    resolved = call("POST", f"/runs/{closed['id']}/resolve", {"note": "Gone on purpose."})
    assert resolved["status"] == "resolved" and len(resolved["notes"]) == 2
    assert len(call("GET", "/runs", workflow=workflow)["data"]) == 3
    # A bulk restart as a run batch, applied as a worker would, then its summary.
    batch = call("POST", "/run_batches", {"action": "restart", "runs": [broken["id"]]})
    batch_apply(batch_id=batch["id"], continue_with=None)
    reasons = call("GET", f"/run_batches/{batch['id']}")["reasons"]
    assert reasons == {"canceled: only failed runs restart": 1}
    # A backtest of an event workflow's draft, run as a worker would, then its report.
    region = call("POST", "/workflows", factories.region_workflow_definition())["id"]
    backtest = call("POST", f"/workflows/{region}/backtests", {})
    backtest_apply(backtest_id=backtest["id"], continue_with=None)
    assert call("GET", f"/backtests/{backtest['id']}")["would_start"] == 1  # the customer

    # Two runs waiting for an approval (the key's role is an approver): one approved, one
    # rejected with a note.
    approval = factories.workflow_active(live, approving(approvers=["Admin"]))
    for decision in ("approve", "reject"):
        started = {"input": {"customer": customer.pk}}
        waiting = call("POST", f"/workflows/{approval.pk}/invoke", started)
        _executed(waiting["id"])
        waiting = call("GET", f"/runs/{waiting['id']}")
        assert waiting["waiting"]["for"] == "approval"
        decided = call("POST", f"/runs/{waiting['id']}/{decision}", {"note": "Checked."})
        assert decided["status"] == "pending"

    call("POST", f"/workflows/{workflow}/deactivate")
    call("DELETE", f"/workflows/{workflow}")

    endpoint = call(
        "POST", "/webhook_endpoints", {"url": HOOK_URL, "enabled_events": ["customer.created"]}
    )
    assert endpoint["secret"].startswith("whsec_")
    assert call("GET", "/webhook_endpoints")["data"][0]["id"] == endpoint["id"]
    assert "secret" not in call("GET", f"/webhook_endpoints/{endpoint['id']}")
    call("DELETE", f"/webhook_endpoints/{endpoint['id']}")

    # The history of the customer the run changed, and of the workflow (recorded by PostgreSQL's
    # triggers; on SQLite the answers are empty lists, checked against the schema all the same).
    changes = call("GET", "/history", object=customer.pk)["data"]
    assert changes or connection.vendor != "postgresql"
    call("GET", "/history", object=f"run:{done['id']}")

    # Every operation outside billing was answered and checked.
    document = _document()
    others = {
        f"{method.upper()} {path}"
        for path, method, operation in _operations(document)
        if "billing" not in operation["tags"]
    }
    assert others == call.checked


def test_an_answer_type_passes_on_the_fields_it_does_not_name(live):
    # The types describe the snapshots; a field a snapshot gains must reach clients, not be
    # dropped on the way out (a ninja `Schema` would read only the fields it names).
    body = {**snapshot(factories.customer(live)), "tax_exempt": "none"}
    listed = StripeList[CustomerOut].model_validate(
        {"object": "list", "data": [body], "has_more": False, "url": "/v1/customers"}
    )
    assert listed.model_dump()["data"][0] == body
