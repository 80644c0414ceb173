"""The builder's delay step: added from the step picker, edited in its side panel (seconds or
until), the engine's errors next to the field, and refused to a role that may not edit."""

from __future__ import annotations

import pytest

from tests.builder.test_builder_steps import HX, _definition, empty  # noqa: F401 (fixture)


def add_delay(client, workflow):
    return client.post(
        f"/admin/workflows/{workflow.pk}/steps/add/",
        {"kind": "delay", "parent": "", "path": "", "position": 0},
        **HX,
    )


def test_it_adds_a_delay_step_and_opens_its_form(client, mona, empty):  # noqa: F811
    client.force_login(mona)
    body = add_delay(client, empty).content.decode()
    assert _definition(empty)["steps"] == [{"id": "wait", "type": "delay", "seconds": 3600}]
    assert 'name="seconds"' in body and 'name="until"' in body
    assert "Wait 1 hour" in body  # the canvas card


def test_it_edits_a_delay_in_seconds_or_until_a_time(client, mona, empty):  # noqa: F811
    client.force_login(mona)
    add_delay(client, empty)
    url = f"/admin/workflows/{empty.pk}/steps/wait/"
    body = client.post(url, {"seconds": "259200", "until": ""}, **HX).content.decode()
    assert _definition(empty)["steps"] == [{"id": "wait", "type": "delay", "seconds": 259200}]
    assert "Wait 3 days" in body
    assert "Saved." in body

    body = client.post(url, {"until": "{{ trigger.data.object.created }}"}, **HX).content.decode()
    assert _definition(empty)["steps"] == [
        {"id": "wait", "type": "delay", "until": "{{ trigger.data.object.created }}"}
    ]
    assert "Wait until {{ trigger.data.object.created }}" in body


@pytest.mark.parametrize(
    "data, message",
    [
        ({"seconds": "0"}, "Must be a positive whole number"),
        ({"until": "tomorrow morning"}, "Must be an ISO timestamp"),
    ],
)
def test_it_shows_the_engines_error_next_to_the_delay_field(client, mona, empty, data, message):  # noqa: F811
    client.force_login(mona)
    add_delay(client, empty)
    body = client.post(f"/admin/workflows/{empty.pk}/steps/wait/", data, **HX).content.decode()
    assert "Saved, with problems to fix" in body
    assert message in body


def test_a_viewer_cannot_add_a_delay_step(client, vic, empty):  # noqa: F811
    client.force_login(vic)
    response = add_delay(client, empty)
    assert response.status_code == 403
    assert _definition(empty)["steps"] == []
