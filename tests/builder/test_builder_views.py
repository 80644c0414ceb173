"""Every builder endpoint: the method, the role, the environment boundary, the full page without
HTMX and the partial with `HX-Request`.

Mona (Account Manager) builds; Vic (Viewer) and Sam (Customer Support) look; Olga has no role.
A workflow of the sandbox is out of reach from a session in live.
"""

from __future__ import annotations

import pytest

from tests import factories
from workflows import services

HX = {"HTTP_HX_REQUEST": "true"}

# (name, url suffix, method, capability) — url suffix after /admin/workflows/<id>/ ("" for the
# workflow's own page), or an absolute path for the endpoints without a workflow.
READ = [
    ("list", "/admin/workflows/", "get"),
    ("builder", "", "get"),
    ("export", "export/", "get"),
    ("step", "steps/tag_eu/", "get"),
    ("trigger", "trigger/", "get"),
    ("guardrails", "guardrails/", "get"),
    ("picker", "picker/?step=tag_eu&target=id_p_customer", "get"),
    ("versions", "versions/", "get"),
]
MANAGE_GET = [
    ("step_add", "steps/add/?parent=region&path=1&position=1", "get"),
    ("delete_confirm", "delete/", "get"),
    ("test", "test/", "get"),
    ("run", "run/", "get"),
]
MANAGE_POST = [
    ("create", "/admin/workflows/create/", {"name": "New one", "event": "customer.created"}),
    ("import", "/admin/workflows/import/", {"text": "{}"}),
    ("duplicate", "duplicate/", {}),
    ("publish", "publish/", {}),
    ("activate", "activate/", {}),
    ("deactivate", "deactivate/", {}),
    ("delete", "delete/", {}),
    ("trigger_save", "trigger/", {"workflow_name": "x", "type": "event"}),
    ("guardrails_save", "guardrails/", {"max_runs_per_hour": "5"}),
    ("step_add_post", "steps/add/", {"kind": "condition", "position": "0"}),
    ("step_save", "steps/tag_eu/", {"p_customer": "{{ trigger.data.object.id }}"}),
    ("step_move", "steps/tag_eu/move/", {"direction": "up"}),
    ("step_duplicate", "steps/tag_eu/duplicate/", {}),
    ("step_delete", "steps/tag_eu/delete/", {}),
    ("version_restore", "versions/1/restore/", {}),
    ("test_post", "test/", {"event": "sample"}),
    ("run_post", "run/", {}),
]
POST_ONLY = [
    "/admin/workflows/create/",
    "/admin/workflows/import/",
    "duplicate/",
    "publish/",
    "activate/",
    "deactivate/",
    "steps/tag_eu/move/",
    "steps/tag_eu/duplicate/",
    "steps/tag_eu/delete/",
    "versions/1/restore/",
]
GET_ONLY = ["/admin/workflows/", "", "export/", "picker/", "versions/"]


def _url(workflow, suffix: str) -> str:
    return suffix if suffix.startswith("/") else f"/admin/workflows/{workflow.pk}/{suffix}"


def _published_with_draft(environment, user, name: str = "Tag customer region"):
    definition = factories.region_workflow_definition(name)
    workflow = services.workflow_create(
        environment=environment, definition=definition, created_by=user
    )
    services.workflow_publish(workflow=workflow, published_by=user)
    services.workflow_update(workflow=workflow, definition=definition, updated_by=user)
    workflow.refresh_from_db()
    return workflow


@pytest.fixture
def region_with_draft(live, mona):
    """The region workflow, published once (version 1), with a draft."""
    return _published_with_draft(live, mona)


@pytest.fixture
def elsewhere(sandbox, mona):
    """A workflow of the sandbox: invisible from a session in live."""
    workflow = services.workflow_create(
        environment=sandbox, definition=factories.region_workflow_definition(), created_by=mona
    )
    services.workflow_publish(workflow=workflow, published_by=mona)
    return workflow


# --- anonymous ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,suffix,method", READ + MANAGE_GET)
def test_it_sends_anonymous_readers_to_the_login_page(
    client, region_with_draft, name, suffix, method
):
    response = client.get(_url(region_with_draft, suffix))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("name,suffix,data", MANAGE_POST)
def test_it_sends_anonymous_writers_to_the_login_page(
    client, region_with_draft, name, suffix, data
):
    response = client.post(_url(region_with_draft, suffix), data)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", POST_ONLY)
def test_it_refuses_get_on_mutating_endpoints(client, mona, region_with_draft, suffix):
    client.force_login(mona)
    assert client.get(_url(region_with_draft, suffix)).status_code == 405


@pytest.mark.parametrize("suffix", GET_ONLY)
def test_it_refuses_post_on_read_only_endpoints(client, mona, region_with_draft, suffix):
    client.force_login(mona)
    assert client.post(_url(region_with_draft, suffix)).status_code == 405


@pytest.mark.parametrize(
    "suffix", ["trigger/", "steps/add/", "steps/tag_eu/", "delete/", "test/", "run/"]
)
def test_it_refuses_other_methods_on_form_endpoints(client, mona, region_with_draft, suffix):
    client.force_login(mona)
    assert client.put(_url(region_with_draft, suffix)).status_code == 405


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["vic", "sam", "olga"])
@pytest.mark.parametrize("name,suffix,data", MANAGE_POST)
def test_it_forbids_changes_below_account_manager(
    request, client, region_with_draft, who, name, suffix, data
):
    client.force_login(request.getfixturevalue(who))
    before = region_with_draft.draft_version_id
    assert client.post(_url(region_with_draft, suffix), data).status_code == 403
    region_with_draft.refresh_from_db()
    assert region_with_draft.draft_version_id == before


@pytest.mark.parametrize("who", ["vic", "sam", "olga"])
@pytest.mark.parametrize("name,suffix,method", MANAGE_GET)
def test_it_forbids_edit_panels_below_account_manager(
    request, client, region_with_draft, who, name, suffix, method
):
    client.force_login(request.getfixturevalue(who))
    assert client.get(_url(region_with_draft, suffix)).status_code == 403


@pytest.mark.parametrize("who", ["vic", "sam"])
@pytest.mark.parametrize("name,suffix,method", READ)
def test_it_lets_viewers_and_support_look(
    request, client, region_with_draft, who, name, suffix, method
):
    client.force_login(request.getfixturevalue(who))
    assert client.get(_url(region_with_draft, suffix)).status_code == 200


@pytest.mark.parametrize("name,suffix,method", READ)
def test_it_forbids_looking_without_a_role(client, olga, region_with_draft, name, suffix, method):
    client.force_login(olga)
    assert client.get(_url(region_with_draft, suffix)).status_code == 403


def test_it_draws_no_edit_controls_for_support(client, sam, region_with_draft):
    client.force_login(sam)
    for url in [
        _url(region_with_draft, ""),
        _url(region_with_draft, "steps/tag_eu/"),
        "/admin/workflows/",
    ]:
        html = client.get(url).content.decode()
        assert "Tag customer region" in html
        for control in [
            'class="wf-add"',
            'id="wf-save"',
            'id="wf-publish"',
            "Duplicate",
            "wf-create",
        ]:
            assert control not in html, (url, control)


def test_it_draws_edit_controls_for_an_account_manager(client, mona, region_with_draft):
    client.force_login(mona)
    html = client.get(_url(region_with_draft, "steps/tag_eu/")).content.decode()
    for control in ['class="wf-add"', 'id="wf-save"', 'id="wf-publish"', 'id="wf-move-up"']:
        assert control in html


# --- environment boundary ----------------------------------------------------------------------


@pytest.mark.parametrize("name,suffix,method", [r for r in READ + MANAGE_GET if r[0] != "list"])
def test_it_hides_another_environments_workflow(client, mona, elsewhere, name, suffix, method):
    client.force_login(mona)
    assert client.get(_url(elsewhere, suffix)).status_code == 404


@pytest.mark.parametrize("name,suffix,data", [r for r in MANAGE_POST if not r[1].startswith("/")])
def test_it_refuses_changes_to_another_environments_workflow(
    client, mona, elsewhere, name, suffix, data
):
    client.force_login(mona)
    assert client.post(_url(elsewhere, suffix), data).status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.deleted_at is None


def test_it_lists_only_this_environments_workflows(client, mona, region_with_draft, elsewhere):
    services.workflow_update(
        workflow=elsewhere,
        definition=factories.region_workflow_definition("Sandbox only"),
        updated_by=mona,
    )
    client.force_login(mona)
    html = client.get("/admin/workflows/").content.decode()
    assert "Tag customer region" in html
    assert "Sandbox only" not in html


# --- full page and partial ---------------------------------------------------------------------

PARTIAL_IDS = {
    "list": 'id="wf-list"',
    "builder": 'id="wf-canvas"',
    "step": 'id="wf-panel"',
    "trigger": 'id="wf-panel"',
    "picker": 'id="wf-picker"',
    "versions": 'id="wf-history"',
    "step_add": 'id="wf-panel"',
    "delete_confirm": 'id="wf-delete-confirm"',
    "test": 'id="wf-panel"',
    "run": 'id="wf-panel"',
}


@pytest.mark.parametrize(
    "name,suffix,method", [r for r in READ + MANAGE_GET if r[0] in PARTIAL_IDS]
)
def test_it_serves_a_full_page_or_a_partial(client, mona, region_with_draft, name, suffix, method):
    client.force_login(mona)
    full = client.get(_url(region_with_draft, suffix)).content.decode()
    assert "<html" in full
    assert 'class="breadcrumbs"' in full
    assert PARTIAL_IDS[name] in full
    partial = client.get(_url(region_with_draft, suffix), **HX).content.decode()
    assert "<html" not in partial
    assert PARTIAL_IDS[name] in partial


def test_it_exports_the_same_json_with_or_without_htmx(client, mona, region_with_draft):
    client.force_login(mona)
    plain = client.get(_url(region_with_draft, "export/"))
    assert plain.json() == factories.region_workflow_definition()
    assert client.get(_url(region_with_draft, "export/"), **HX).json() == plain.json()


@pytest.mark.parametrize("name,suffix,data", MANAGE_POST)
def test_it_answers_changes_with_a_redirect_or_a_partial(
    client, live, mona, region_with_draft, name, suffix, data
):
    client.force_login(mona)
    plain = client.post(_url(region_with_draft, suffix), data)
    assert plain.status_code in (200, 302, 400), plain.status_code
    if plain.status_code != 302:
        assert "<html" in plain.content.decode()
    # The same change with HTMX, on a workflow of its own in the same state.
    again = _published_with_draft(live, mona, "Again")
    response = client.post(_url(again, suffix), data, **HX)
    assert response.status_code in (200, 400)
    body = response.content.decode()
    assert "<html" not in body
    assert response.has_header("HX-Redirect") or 'id="wf-' in body
