"""GET /api/v1/history?object=<id>: an object's history, scoped and checked like every list."""

from __future__ import annotations

import pytest

from billing import services
from billing.api_keys import api_key_create
from tests import factories
from tests.api_client import api_for, error_of

pytestmark = pytest.mark.postgres


def test_it_lists_an_objects_history_newest_first_with_actor_and_changes(live):
    customer = factories.customer(live, name="Ada")
    api = api_for(live, "support")
    update = api.post(f"/customers/{customer.pk}", {"name": "Grace"})
    body = api.get("/history", object=customer.pk).json()
    assert body["object"] == "list" and body["has_more"] is False
    assert body["url"] == "/v1/history"
    newest, created = body["data"]
    assert newest["action"] == "updated"
    assert newest["object"] == {"type": "customer", "id": customer.pk}
    assert newest["changes"] == {"name": ["Ada", "Grace"]}
    assert newest["actor"]["type"] == "api_key"
    assert newest["request_id"] == update["Request-Id"]
    assert set(newest) == {"id", "created", "actor", "action", "object", "changes", "request_id"}
    assert created["action"] == "created"
    assert created["actor"] == {"type": "system", "id": None, "name": "System"}
    assert created["changes"]["name"] == [None, "Ada"]


def test_it_pages_with_cursors(live):
    customer = factories.customer(live, name="v0")
    for n in range(1, 4):
        services.customer_update(customer=customer, changes={"name": f"v{n}"})
    api = api_for(live, "viewer")
    first = api.get("/history", object=customer.pk, limit=2).json()
    assert [e["changes"]["name"][1] for e in first["data"]] == ["v3", "v2"]
    assert first["has_more"] is True
    second = api.get(
        "/history", object=customer.pk, limit=2, starting_after=first["data"][-1]["id"]
    ).json()
    assert [e["changes"]["name"][1] for e in second["data"]] == ["v1", "v0"]
    assert second["has_more"] is False
    back = api.get(
        "/history", object=customer.pk, limit=2, ending_before=second["data"][0]["id"]
    ).json()
    assert [e["id"] for e in back["data"]] == [e["id"] for e in first["data"]]


def test_a_workflows_history_includes_its_versions_and_steps(live, alice):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    body = api_for(live, "viewer").get("/history", object=f"workflow:{workflow.pk}").json()
    types = {entry["object"]["type"] for entry in body["data"]}
    assert {"workflow", "workflow_version", "step"} <= types


def test_the_created_filters_select_when_the_change_was_made(live):
    customer = factories.customer(live, name="Ada")
    services.customer_update(customer=customer, changes={"name": "Grace"})
    api = api_for(live, "viewer")
    entries = api.get("/history", object=customer.pk).json()["data"]
    changed_at = entries[0]["created"]  # the second it was made in
    later = api.get("/history", object=customer.pk, **{"created[gte]": changed_at + 1}).json()
    assert later["data"] == []
    since = api.get("/history", object=customer.pk, **{"created[gte]": changed_at}).json()
    assert entries[0]["id"] in [e["id"] for e in since["data"]]
    that_second = api.get("/history", object=customer.pk, created=changed_at).json()
    assert entries[0]["id"] in [e["id"] for e in that_second["data"]]
    bad = api.get("/history", object=customer.pk, **{"created[gt]": "yesterday"})
    assert bad.status_code == 400 and error_of(bad)["param"] == "created[gt]"


@pytest.mark.parametrize(
    "reference, message",
    [
        ("nonsense", "is not an object id"),
        ("zz_123", "is not an object id"),
        ("spaceship:4", "Unknown object type 'spaceship'"),
        ("workflow:abc", "whole numbers"),
    ],
)
def test_a_bad_object_is_a_400_naming_the_param(live, reference, message):
    response = api_for(live, "viewer").get("/history", object=reference)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "object"
    assert message in error["message"]


def test_a_missing_object_param_is_a_400_naming_it(live):
    response = api_for(live, "viewer").get("/history")
    assert response.status_code == 400
    assert error_of(response)["param"] == "object"


def test_another_environments_object_is_not_found(live, sandbox):
    customer = factories.customer(sandbox)
    response = api_for(live, "admin").get("/history", object=customer.pk)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["param"]) == ("resource_missing", "object")


def test_a_cursor_from_another_objects_history_is_refused(live):
    one, other = factories.customer(live), factories.customer(live)
    api = api_for(live, "viewer")
    foreign = api.get("/history", object=other.pk).json()["data"][0]["id"]
    response = api.get("/history", object=one.pk, starting_after=foreign)
    assert response.status_code == 400
    assert error_of(response)["param"] == "starting_after"


@pytest.mark.parametrize(
    "role, status",
    [("viewer", 403), ("account_manager", 403), ("developer", 200), ("admin", 200)],
)
def test_an_api_keys_history_needs_the_right_to_manage_keys(live, role, status):
    key, _ = api_key_create(environment=live, name="watched", role="viewer")
    response = api_for(live, role).get("/history", object=f"api_key:{key.pk}")
    assert response.status_code == status
    if status == 403:
        assert error_of(response)["type"] == "permission_error"


@pytest.mark.parametrize("role, status", [("developer", 403), ("admin", 200)])
def test_a_persons_history_is_for_admins(live, olga, role, status):
    response = api_for(live, role).get("/history", object=f"user:{olga.pk}")
    assert response.status_code == status


def test_a_run_and_a_billing_object_are_readable_by_a_viewer(live, alice):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    run = factories.run_executed(workflow, customer=factories.customer(live))
    api = api_for(live, "viewer")
    body = api.get("/history", object=f"run:{run.pk}").json()
    assert [e["changes"] for e in body["data"]] == [
        {"status": ["running", "succeeded"]},
        {"status": ["pending", "running"]},
    ]
    assert api.get("/history", object=f"workflow:{workflow.pk}").status_code == 200


def test_it_needs_a_key(live):
    api = api_for(live, "viewer")
    api.raw_key = "sk_wrong"
    assert api.get("/history", object="cus_x").status_code == 401
