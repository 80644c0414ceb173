"""`/api/v1/workflows`: the JSON form over the API, roles, environments, idempotency."""

from __future__ import annotations

import copy

import pytest
from django.test import Client

from tests import factories
from tests.api_client import api_for, error_of
from workflows.models import Run, Workflow

MANUAL = factories.tag_by_hand_definition()


def _created(api, definition=MANUAL) -> dict:
    response = api.post("/workflows", definition)
    assert response.status_code == 200, response.json()
    return response.json()


def _active(api, definition=MANUAL) -> dict:
    workflow = _created(api, definition)
    assert api.post(f"/workflows/{workflow['id']}/publish").status_code == 200
    response = api.post(f"/workflows/{workflow['id']}/activate")
    assert response.status_code == 200, response.json()
    return response.json()


def test_it_creates_a_draft_from_the_json_form(live):
    body = _created(api_for(live, "account_manager"))

    assert body["object"] == "workflow"
    assert (body["status"], body["version"], body["has_draft"]) == ("draft", None, True)
    assert {k: body[k] for k in ("name", "trigger", "steps")} == MANUAL
    workflow = Workflow.objects.get(pk=body["id"])
    assert workflow.environment == live


def test_it_names_the_step_and_field_of_an_invalid_definition(live):
    definition = copy.deepcopy(MANUAL)
    definition["steps"][0]["action"] = "customers.explode"

    response = api_for(live).post("/workflows", definition)

    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "workflow_invalid")
    assert error["param"] == "steps[0].action"
    assert "'tag'" in error["message"]
    assert "customers.explode" in error["message"]
    assert response.json()["error"]["errors"][0]["step_id"] == "tag"
    assert not Workflow.objects.exists()


def test_it_refuses_a_definition_over_the_workflow_limit(live, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_WORKFLOWS": 1}
    api = api_for(live)
    _created(api)

    response = api.post("/workflows", MANUAL)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "limit_exceeded"
    assert "limit is 1" in error["message"]


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_viewers_and_support_may_read_but_not_write(live, role):
    workflow = _created(api_for(live, "account_manager"))
    api = api_for(live, role)

    assert api.get("/workflows").status_code == 200
    assert api.get(f"/workflows/{workflow['id']}").status_code == 200
    for path in ("/workflows", f"/workflows/{workflow['id']}"):
        response = api.post(path, MANUAL)
        assert response.status_code == 403
        assert error_of(response)["type"] == "permission_error"
    for verb in ("publish", "activate", "deactivate", "invoke"):
        assert api.post(f"/workflows/{workflow['id']}/{verb}").status_code == 403
    assert api.delete(f"/workflows/{workflow['id']}").status_code == 403
    assert Workflow.objects.count() == 1
    assert Workflow.objects.get().status == "draft"


def test_it_lists_the_environments_workflows_only(live, sandbox):
    live_api, sandbox_api = api_for(live), api_for(sandbox)
    first = _created(live_api)
    second = _created(live_api, {**MANUAL, "name": "Second"})
    _created(sandbox_api, {**MANUAL, "name": "Sandbox one"})

    body = live_api.get("/workflows").json()

    assert body["object"] == "list"
    assert [w["id"] for w in body["data"]] == [second["id"], first["id"]]
    page = live_api.get("/workflows", limit=1).json()
    assert (len(page["data"]), page["has_more"]) == (1, True)
    rest = live_api.get("/workflows", limit=1, starting_after=page["data"][0]["id"]).json()
    assert [w["id"] for w in rest["data"]] == [first["id"]]
    assert [w["name"] for w in sandbox_api.get("/workflows").json()["data"]] == ["Sandbox one"]


def test_it_filters_the_list_by_status(live):
    api = api_for(live)
    active = _active(api)
    _created(api, {**MANUAL, "name": "Draft"})

    body = api.get("/workflows", status="active").json()

    assert [w["id"] for w in body["data"]] == [active["id"]]


def test_it_answers_404_for_another_environments_workflow(live, sandbox):
    workflow = _created(api_for(live))
    sandbox_api = api_for(sandbox)

    for response in (
        sandbox_api.get(f"/workflows/{workflow['id']}"),
        sandbox_api.post(f"/workflows/{workflow['id']}", MANUAL),
        sandbox_api.post(f"/workflows/{workflow['id']}/publish"),
        sandbox_api.post(f"/workflows/{workflow['id']}/invoke", {"input": {"customer": "x"}}),
        sandbox_api.delete(f"/workflows/{workflow['id']}"),
    ):
        assert response.status_code == 404
        error = error_of(response)
        assert error["code"] == "resource_missing"
        assert f"'{workflow['id']}'" in error["message"]
    assert Workflow.objects.get(pk=workflow["id"]).status == "draft"


def test_it_publishes_activates_and_deactivates(live):
    api = api_for(live, "account_manager")
    workflow = _created(api)

    published = api.post(f"/workflows/{workflow['id']}/publish").json()
    assert (published["status"], published["version"], published["has_draft"]) == (
        "draft",
        1,
        False,
    )
    assert api.post(f"/workflows/{workflow['id']}/activate").json()["status"] == "active"
    assert api.post(f"/workflows/{workflow['id']}/deactivate").json()["status"] == "inactive"


def test_it_refuses_to_activate_an_unpublished_workflow(live):
    api = api_for(live)
    workflow = _created(api)

    response = api.post(f"/workflows/{workflow['id']}/activate")

    assert response.status_code == 400
    assert error_of(response)["code"] == "not_published"
    assert Workflow.objects.get(pk=workflow["id"]).status == "draft"


def test_an_update_of_a_published_workflow_is_a_new_draft(live):
    api = api_for(live)
    workflow = _active(api)
    # What GET answers can be sent back as it is (id, status, version are ignored).
    edited = api.get(f"/workflows/{workflow['id']}").json()
    edited["name"] = "Tag a customer (v2)"

    body = api.post(f"/workflows/{workflow['id']}", edited).json()

    assert (body["name"], body["status"], body["version"], body["has_draft"]) == (
        "Tag a customer (v2)",
        "active",
        1,
        True,
    )
    assert Workflow.objects.get(pk=workflow["id"]).published_version.name == MANUAL["name"]
    assert api.post(f"/workflows/{workflow['id']}/publish").json()["version"] == 2


def test_it_deletes_a_workflow(live):
    api = api_for(live)
    workflow = _created(api)

    response = api.delete(f"/workflows/{workflow['id']}")

    assert response.json() == {"id": workflow["id"], "object": "workflow", "deleted": True}
    assert api.get(f"/workflows/{workflow['id']}").status_code == 404
    assert not Workflow.objects.filter(pk=workflow["id"]).exists()


def test_it_invokes_a_manual_workflow_with_input(live):
    api = api_for(live)
    workflow = _active(api)

    response = api.post(f"/workflows/{workflow['id']}/invoke", {"input": {"customer": "cus_1"}})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["object"], body["status"], body["workflow"], body["version"]) == (
        "run",
        "pending",
        workflow["id"],
        1,
    )
    assert body["input"] == {"customer": "cus_1"}
    run = Run.objects.get(pk=body["id"])
    assert (run.trigger_kind, run.trigger) == ("manual", {"input": {"customer": "cus_1"}})


def test_it_names_the_input_field_that_is_wrong(live):
    api = api_for(live)
    workflow = _active(api)

    missing = api.post(f"/workflows/{workflow['id']}/invoke", {"input": {}})
    mistyped = api.post(f"/workflows/{workflow['id']}/invoke", {"input": {"customer": 5}})

    assert missing.status_code == 400
    assert error_of(missing)["param"] == "input.customer"
    assert "required" in error_of(missing)["message"]
    assert error_of(mistyped)["param"] == "input.customer"
    assert "must be a string" in error_of(mistyped)["message"]
    assert not Run.objects.exists()


def test_it_refuses_to_invoke_an_inactive_workflow(live):
    api = api_for(live)
    workflow = _created(api)

    response = api.post(f"/workflows/{workflow['id']}/invoke", {"input": {"customer": "cus_1"}})

    assert response.status_code == 400
    assert error_of(response)["code"] == "not_active"


def test_a_replayed_create_or_invoke_makes_nothing_twice(live):
    api = api_for(live)
    first = api.post("/workflows", MANUAL, idempotency_key="create-1")
    again = api.post("/workflows", MANUAL, idempotency_key="create-1")
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Workflow.objects.count() == 1

    workflow = first.json()
    api.post(f"/workflows/{workflow['id']}/publish")
    api.post(f"/workflows/{workflow['id']}/activate")
    body = {"input": {"customer": "cus_1"}}
    run = api.post(f"/workflows/{workflow['id']}/invoke", body, idempotency_key="invoke-1")
    replay = api.post(f"/workflows/{workflow['id']}/invoke", body, idempotency_key="invoke-1")
    assert replay.json()["id"] == run.json()["id"]
    assert Run.objects.count() == 1

    other = api.post(
        f"/workflows/{workflow['id']}/invoke",
        {"input": {"customer": "cus_2"}},
        idempotency_key="invoke-1",
    )
    assert other.status_code == 400
    assert error_of(other)["type"] == "idempotency_error"


def test_a_key_used_on_an_invalid_definition_may_be_used_again_once_fixed(live):
    api = api_for(live)
    definition = copy.deepcopy(MANUAL)
    definition["steps"][0]["action"] = "customers.explode"

    first = api.post("/workflows", definition, idempotency_key="bad-1")
    fixed = api.post("/workflows", MANUAL, idempotency_key="bad-1")

    assert first.status_code == 400
    assert fixed.status_code == 200
    assert Workflow.objects.get().pk == fixed.json()["id"]


def test_it_answers_405_in_the_envelope_for_a_wrong_method(live):
    api = api_for(live)
    workflow = _created(api)

    response = api.client.put(
        f"/api/v1/workflows/{workflow['id']}",
        "{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.raw_key}"},
    )
    publish = api.get(f"/workflows/{workflow['id']}/publish")

    assert response.status_code == publish.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert Workflow.objects.get(pk=workflow["id"]).published_version is None


def test_the_openapi_description_lists_the_workflow_routes(db):
    paths = Client().get("/api/v1/openapi.json").json()["paths"]

    for path in (
        "/api/v1/workflows",
        "/api/v1/workflows/{workflow_id}",
        "/api/v1/workflows/{workflow_id}/invoke",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}/restart",
    ):
        assert path in paths, path
    names = [p["name"] for p in paths["/api/v1/runs"]["get"]["parameters"]]
    assert {"workflow", "status", "event", "created[gte]", "created[lte]"} <= set(names)


@pytest.mark.parametrize(
    "extra", [{"bogus_key": 1}, {"environment": "sandbox"}, {"trigger_kind": "manual"}]
)
def test_it_refuses_unknown_top_level_keys_like_the_import(live, extra):
    api = api_for(live)
    (key,) = extra

    created = api.post("/workflows", {**MANUAL, **extra})
    workflow = _created(api)
    updated = api.post(f"/workflows/{workflow['id']}", {**MANUAL, "name": "Renamed", **extra})

    for response in (created, updated):
        assert response.status_code == 400
        error = error_of(response)
        assert (error["code"], error["param"]) == ("workflow_invalid", key)
        assert f"Unknown key '{key}'" in error["message"]
    assert Workflow.objects.count() == 1
    assert api.get(f"/workflows/{workflow['id']}").json()["name"] == MANUAL["name"]


def test_it_refuses_a_kind_other_than_automation_naming_the_field(live):
    api = api_for(live)

    response = api.post("/workflows", {**MANUAL, "kind": "system"})

    assert response.status_code == 400
    assert error_of(response)["param"] == "kind"
    assert not Workflow.objects.exists()
    # What GET answers (kind "automation" included) is still taken back as it is.
    workflow = _created(api)
    assert api.post(f"/workflows/{workflow['id']}", workflow).status_code == 200
    assert api.post("/workflows", {**MANUAL, "kind": None}).status_code == 200


def test_it_serves_the_json_schema_of_the_definition(live):
    schema = api_for(live, "viewer").get("/workflows/schema").json()

    assert schema["title"] == "WorkflowDefinition"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "name",
        "description",
        "trigger",
        "steps",
        "guardrails",
        "auto_deactivate",
    }
    step_types = {
        schema["$defs"][name]["properties"]["type"]["const"]
        for name in (
            "ActionStep",
            "ConditionStep",
            "BranchStep",
            "ForeachStep",
            "DelayStep",
            "ApprovalStep",
        )
    }
    assert step_types == {"action", "condition", "branch", "foreach", "delay", "approval"}


def test_the_openapi_document_types_the_workflow_endpoints(db):
    spec = Client().get("/api/v1/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def body_of(operation: dict) -> dict:
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    def answer_of(operation: dict) -> dict:
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    create = spec["paths"]["/api/v1/workflows"]["post"]
    request = schemas[body_of(create)["$ref"].rsplit("/", 1)[1]]
    assert {"name", "trigger", "steps"} <= set(request["properties"])
    assert request["additionalProperties"] is False
    answer = schemas[answer_of(create)["$ref"].rsplit("/", 1)[1]]
    assert {"id", "status", "steps"} <= set(answer["required"])
    retrieve = spec["paths"]["/api/v1/workflows/{workflow_id}"]["get"]
    assert answer_of(retrieve) == answer_of(create)
