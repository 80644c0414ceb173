"""The builder's approval step: added from the step picker, edited in its side panel
(approvers, message, hours, what a timeout decides), its card's words, the engine's errors
next to the field, its output in the dynamic-field picker, and refused to a role that may not
edit."""

from __future__ import annotations

import pytest

from tests.builder.test_builder_steps import HX, _definition, empty  # noqa: F401 (fixture)
from workflows.builder.picker import _step_output_fields


def add_approval(client, workflow):
    return client.post(
        f"/admin/workflows/{workflow.pk}/steps/add/",
        {"kind": "approval", "parent": "", "path": "", "position": 0},
        **HX,
    )


def test_it_adds_an_approval_step_and_opens_its_form(client, mona, empty):  # noqa: F811
    client.force_login(mona)
    body = add_approval(client, empty).content.decode()
    assert _definition(empty)["steps"] == [
        {
            "id": "approval",
            "type": "approval",
            "approvers": ["Account Manager"],
            "message": "",
            "timeout_hours": 48,
            "on_timeout": "reject",
        }
    ]
    for name in ("approvers", "message", "timeout_hours", "on_timeout"):
        assert f'name="{name}"' in body
    assert "Approval by Account Manager (48 h, then reject)" in body  # the canvas card


def test_it_edits_the_approvers_hours_and_timeout(client, mona, empty):  # noqa: F811
    client.force_login(mona)
    add_approval(client, empty)
    url = f"/admin/workflows/{empty.pk}/steps/approval/"
    data = {
        "approvers": "mona, Admin",
        "message": "Refund {{ trigger.data.object.id }}?",
        "timeout_hours": "0.5",
        "on_timeout": "approve",
    }
    body = client.post(url, data, **HX).content.decode()
    assert "Saved." in body
    assert _definition(empty)["steps"][0] == {
        "id": "approval",
        "type": "approval",
        "approvers": ["mona", "Admin"],
        "message": "Refund {{ trigger.data.object.id }}?",
        "timeout_hours": 0.5,
        "on_timeout": "approve",
    }
    assert "Approval by mona, Admin (0.5 h, then approve)" in body


@pytest.mark.parametrize(
    "data, message",
    [
        ({"approvers": "", "timeout_hours": "48"}, "needs at least one approver"),
        ({"approvers": "nobody", "timeout_hours": "48"}, "neither an active back-office user"),
        ({"approvers": "mona", "timeout_hours": "721"}, "Must be at most 720"),
    ],
)
def test_it_shows_the_engines_error_next_to_the_field(client, mona, empty, data, message):  # noqa: F811
    client.force_login(mona)
    add_approval(client, empty)
    url = f"/admin/workflows/{empty.pk}/steps/approval/"
    body = client.post(url, {"on_timeout": "reject", **data}, **HX).content.decode()
    assert "Saved, with problems to fix" in body
    assert message in body


def test_the_dynamic_field_picker_knows_the_decision():
    fields = _step_output_fields({"id": "ok", "type": "approval"})
    paths = [field.path for field in fields]
    assert "steps.ok.output.decision" in paths
    assert "steps.ok.output.note" in paths


def test_a_viewer_cannot_add_an_approval_step(client, vic, empty):  # noqa: F811
    client.force_login(vic)
    assert add_approval(client, empty).status_code == 403
    assert _definition(empty)["steps"] == []
