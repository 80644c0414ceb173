"""The workflows list and whole-workflow actions: create, import/export, duplicate, publish,
activate (refused with the reason), deactivate, delete; versions; test runs; manual runs."""

from __future__ import annotations

import json
import re

from billing.models import Event
from tests import factories
from workflows import services
from workflows.engine.store.forcing import force_rows
from workflows.models import Run, Workflow, WorkflowVersion
from workflows.services import workflow_definition

HX = {"HTTP_HX_REQUEST": "true"}


def test_it_lists_workflows_with_status_trigger_runs_and_limits(client, mona, live, region_draft):
    active = factories.workflow_active(live, factories.region_workflow_definition("Active one"))
    customer = factories.customer(live, address={"country": "FR"})
    force_rows(Run).create(
        environment=live,
        workflow=active,
        version=active.published_version,
        trigger_kind=Run.TriggerKind.EVENT,
        status=Run.Status.FAILED,
        trigger={"id": customer.pk},
    )
    client.force_login(mona)
    body = client.get("/admin/workflows/").content.decode()
    assert "<strong>1 of 6</strong> active" in body
    assert "<strong>2 of 20</strong> workflows" in body
    assert "<code>customer.created</code>" in body
    assert "wf-badge-failed" in body and "(1 failed)" in body
    assert "v1" in body


def test_it_creates_a_workflow_and_opens_the_builder(client, mona, live):
    client.force_login(mona)
    response = client.post(
        "/admin/workflows/create/", {"name": "Welcome", "event": "customer.created"}
    )
    workflow = Workflow.objects.get(name="Welcome")
    assert response["Location"] == f"/admin/workflows/{workflow.pk}/"
    assert workflow.environment == live and workflow.status == Workflow.Status.DRAFT
    assert workflow_definition(workflow)["trigger"]["event"] == "customer.created"


def test_it_refuses_a_workflow_beyond_the_limit(client, mona, live, region_draft, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_WORKFLOWS": 1}
    client.force_login(mona)
    response = client.post("/admin/workflows/create/", {"name": "One too many"})
    assert response.status_code == 400
    assert "already has 1 workflows; the limit is 1" in response.content.decode()


def test_it_imports_and_exports_json(client, mona, live):
    client.force_login(mona)
    text = json.dumps(factories.region_workflow_definition("Imported"))
    client.post("/admin/workflows/import/", {"text": text})
    workflow = Workflow.objects.get(name="Imported")
    exported = client.get(f"/admin/workflows/{workflow.pk}/export/").json()
    assert exported == factories.region_workflow_definition("Imported")


def test_it_shows_why_an_import_is_refused(client, mona, live):
    client.force_login(mona)
    response = client.post("/admin/workflows/import/", {"text": '{"name": "x"}'})
    assert response.status_code == 400
    assert "A workflow needs a trigger object" in response.content.decode()


def test_it_duplicates_from_the_list(client, mona, region_draft):
    client.force_login(mona)
    response = client.post(f"/admin/workflows/{region_draft.pk}/duplicate/", **HX)
    assert "Tag customer region (copy)" in response.content.decode()
    assert Workflow.objects.filter(name="Tag customer region (copy)").count() == 1


def test_it_publishes_and_activates(client, mona, region_draft):
    client.force_login(mona)
    client.post(f"/admin/workflows/{region_draft.pk}/publish/", {"next": "builder"})
    client.post(f"/admin/workflows/{region_draft.pk}/activate/", {"next": "builder"})
    region_draft.refresh_from_db()
    assert region_draft.status == Workflow.Status.ACTIVE
    assert region_draft.published_version.number == 1
    assert region_draft.published_version.published_by == mona


def test_it_refuses_to_publish_an_invalid_workflow_and_says_why(client, mona, live):
    definition = factories.region_workflow_definition()
    definition["steps"][0]["paths"][1]["steps"][0]["params"]["customer"] = ""
    workflow = services.workflow_create(
        environment=live, definition=definition, created_by=mona, allow_invalid=True
    )
    client.force_login(mona)
    page = client.get(f"/admin/workflows/{workflow.pk}/").content.decode()
    assert "1 problem to fix before this workflow can be published" in page
    assert 'id="wf-publish" disabled' in page
    response = client.post(
        f"/admin/workflows/{workflow.pk}/publish/", {"next": "builder"}, follow=True
    )
    assert "has 1 problem to fix first" in response.content.decode()
    assert "&#x27;customer&#x27; is required for customers.update" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.published_version is None


def test_it_refuses_to_activate_an_unpublished_workflow(client, mona, region_draft):
    client.force_login(mona)
    response = client.post(f"/admin/workflows/{region_draft.pk}/activate/", follow=True)
    assert "Publish the workflow before activating it" in response.content.decode()
    region_draft.refresh_from_db()
    assert region_draft.status == Workflow.Status.DRAFT


def test_it_deactivates(client, mona, live):
    workflow = factories.workflow_active(live, factories.region_workflow_definition())
    client.force_login(mona)
    response = client.post(f"/admin/workflows/{workflow.pk}/deactivate/", **HX)
    assert 'id="wf-list"' in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.INACTIVE


def test_it_confirms_then_deletes(client, mona, region_draft):
    client.force_login(mona)
    page = client.get(f"/admin/workflows/{region_draft.pk}/delete/").content.decode()
    assert "It has no runs; it is removed." in page
    assert Workflow.objects.filter(pk=region_draft.pk).exists()
    response = client.post(f"/admin/workflows/{region_draft.pk}/delete/")
    assert response["Location"] == "/admin/workflows/"
    assert not Workflow.objects.filter(pk=region_draft.pk).exists()


def test_it_lists_versions_diffs_and_restores(client, mona, region_draft):
    services.workflow_publish(workflow=region_draft, published_by=mona)
    changed = factories.region_workflow_definition()
    changed["steps"][0]["paths"][1]["steps"][0]["params"]["metadata"]["Location"] = "EU"
    services.workflow_update(workflow=region_draft, definition=changed, updated_by=mona)
    services.workflow_publish(workflow=Workflow.objects.get(pk=region_draft.pk), published_by=mona)
    client.force_login(mona)
    page = client.get(f"/admin/workflows/{region_draft.pk}/versions/", {"a": "1", "b": "2"})
    body = page.content.decode()
    assert "v1" in body and "v2" in body and ">mona<" in body
    assert re.search(r'wf-diff-del">-\s+&quot;Location&quot;: &quot;Europe&quot;', body)
    assert re.search(r'wf-diff-add">\+\s+&quot;Location&quot;: &quot;EU&quot;', body)
    client.post(f"/admin/workflows/{region_draft.pk}/versions/1/restore/")
    region_draft.refresh_from_db()
    assert workflow_definition(region_draft) == factories.region_workflow_definition()
    assert region_draft.published_version.number == 2  # runs keep using v2 until a publish
    assert WorkflowVersion.objects.filter(workflow=region_draft, number__isnull=False).count() == 2


def test_a_dry_run_shows_the_path_and_changes_nothing(client, mona, live, region_draft):
    customer = factories.customer(live, address={"country": "FR"})
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    events_before = Event.objects.count()
    client.force_login(mona)
    response = client.post(f"/admin/workflows/{region_draft.pk}/test/", {"event": event.id}, **HX)
    body = response.content.decode()
    assert "Dry run: succeeded" in body
    assert "Path: region → Europe" in body
    assert 'wf-node-action wf-status-simulated wf-taken" id="wf-node-tag_eu"' in body
    assert f"&quot;customer&quot;: &quot;{customer.pk}&quot;" in body  # the resolved params
    customer.refresh_from_db()
    assert customer.metadata == {}
    assert Event.objects.count() == events_before
    assert not Run.objects.exists()


def test_a_dry_run_executes_read_only_actions(client, mona, live):
    customer = factories.customer(live, name="Jenny", address={"country": "US"})
    definition = factories.region_workflow_definition()
    definition["steps"].insert(
        0,
        {
            "id": "fetch",
            "type": "action",
            "action": "customers.retrieve",
            "params": {"customer": "{{ trigger.data.object.id }}"},
        },
    )
    workflow = services.workflow_create(environment=live, definition=definition)
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    client.force_login(mona)
    body = client.post(f"/admin/workflows/{workflow.pk}/test/", {"event": event.id}).content
    assert b'wf-node-action wf-status-succeeded wf-taken" id="wf-node-fetch"' in body
    assert b"&quot;name&quot;: &quot;Jenny&quot;" in body  # its real output


def test_a_sandbox_test_run_may_execute_for_real(client, mona, sandbox):
    workflow = services.workflow_create(
        environment=sandbox, definition=factories.region_workflow_definition()
    )
    customer = factories.customer(sandbox, address={"country": "DE"})
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    client.force_login(mona)
    client.post("/environment/switch/", {"environment": "sandbox"})
    client.post(f"/admin/workflows/{workflow.pk}/test/", {"event": event.id, "for_real": "1"})
    customer.refresh_from_db()
    assert customer.metadata == {"Location": "Europe"}


def test_for_real_is_ignored_in_live(client, mona, live, region_draft):
    customer = factories.customer(live, address={"country": "DE"})
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    client.force_login(mona)
    client.post(f"/admin/workflows/{region_draft.pk}/test/", {"event": event.id, "for_real": "1"})
    customer.refresh_from_db()
    assert customer.metadata == {}


def test_it_starts_a_manual_run_from_a_form_of_the_input_fields(client, mona, live):
    definition = factories.flaky_definition(key="customers.retrieve")
    definition["steps"] = definition["steps"][:1]
    workflow = factories.workflow_active(live, definition)
    customer = factories.customer(live)
    client.force_login(mona)
    form = client.get(f"/admin/workflows/{workflow.pk}/run/").content.decode()
    assert 'name="customer"' in form and "required" in form
    client.post(f"/admin/workflows/{workflow.pk}/run/", {"customer": customer.pk})
    run = Run.objects.get(workflow=workflow)
    assert run.trigger == {"input": {"customer": customer.pk}}
    assert run.started_by == mona
