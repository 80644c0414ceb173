"""backoffice/access.py (role checks) and the fetchers beside the objects they fetch
(workflows/access.py, webhooks/access.py): how the back-office views reach their URL's object.
The role is checked before the object is looked for, and another environment's object is the
same 404 as one that does not exist (tests/security/test_permission_matrix.py walks every URL)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from backoffice import access
from tests import factories
from webhooks import services as webhook_services
from webhooks.access import endpoint_for
from workflows.access import any_workflow_for, run_for, system_workflow_for, workflow_for
from workflows.engine.runs import run_start_manual
from workflows.system.catalogue import system_workflows_install


def request_as(user, environment):
    request = RequestFactory().get("/")
    request.user = user
    request.environment = environment
    return request


@pytest.fixture
def objects(live, webhook_settings):
    definition = factories.flaky_definition()
    definition["steps"] = definition["steps"][:1]  # tag the customer: a manual workflow
    workflow = factories.workflow_active(live, definition)
    return {
        "workflow": workflow,
        "run": run_start_manual(workflow=workflow, input={"customer": "cus_1"}),
        "system": system_workflows_install(environment=live)[0],
        "endpoint": webhook_services.webhook_endpoint_create(
            environment=live, url="http://127.0.0.1:9/hooks", enabled_events=["*"]
        ),
    }


def fetchers(objects):
    return [
        (workflow_for, objects["workflow"].pk, "workflows.manage"),
        (any_workflow_for, objects["system"].pk, "runs.manage"),
        (run_for, objects["run"].pk, "runs.manage"),
        (system_workflow_for, objects["system"].system_key, "system_workflows.configure"),
        (endpoint_for, objects["endpoint"].pk, "webhooks.manage"),
    ]


def test_it_returns_the_object_of_the_session_s_environment(live, alice, objects):
    request = request_as(alice, live)
    assert workflow_for(request, objects["workflow"].pk) == objects["workflow"]
    assert run_for(request, objects["run"].pk) == objects["run"]
    system = objects["system"]
    assert system_workflow_for(request, system.system_key)[1] == system
    assert endpoint_for(request, objects["endpoint"].pk) == objects["endpoint"]


def test_it_answers_404_for_another_environment_s_object(sandbox, alice, objects):
    for fetch, key, capability in fetchers(objects):
        with pytest.raises(Http404):
            fetch(request_as(alice, sandbox), key, capability=capability)


def test_it_answers_403_before_it_looks_for_the_object(live, vic, objects):
    for fetch, key, capability in fetchers(objects):
        with pytest.raises(PermissionDenied, match=f"Your role does not allow {capability}"):
            fetch(request_as(vic, live), key, capability=capability)
        with pytest.raises(PermissionDenied):
            fetch(request_as(vic, live), "999999", capability=capability)


def test_it_sends_an_anonymous_user_to_the_login_and_a_weak_role_to_403(live, vic):
    view = access.guarded("runs.manage")(lambda request: "ran")
    anonymous = request_as(AnonymousUser(), live)
    assert view(anonymous)["Location"].startswith("/admin/login/?next=")
    with pytest.raises(PermissionDenied):
        view(request_as(vic, live))
