"""Oversized and deeply nested API bodies are refused with the JSON error envelope, not a 500."""

from __future__ import annotations

import json

import pytest

from tests.api_client import api_for

pytestmark = pytest.mark.django_db


def test_it_refuses_a_body_over_the_size_limit_with_413(live, settings) -> None:
    api = api_for(live, role="admin")
    body = json.dumps({"email": "big@example.com", "description": "x" * (2 * 1024 * 1024)})
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = api.post("/customers", raw=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_it_refuses_an_oversized_workflow_definition_with_413(live) -> None:
    api = api_for(live, role="admin")
    definition = {"name": "Huge", "trigger": {"type": "manual"}, "steps": [], "x": "y" * 2_000_000}
    response = api.post("/workflows", definition)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("depth", [100, 100_000])
def test_it_refuses_a_deeply_nested_body_with_a_clear_400(live, depth: int) -> None:
    api = api_for(live, role="admin")
    raw = (
        '{"name": "Deep", "trigger": {"type": "manual"}, "steps": '
        + "[" * depth
        + "]" * depth
        + "}"
    )
    response = api.post("/workflows", raw=raw)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_it_refuses_a_deeply_nested_workflow_definition_naming_the_limit(live) -> None:
    api = api_for(live, role="admin")
    steps: list = []
    definition = {"name": "Deep", "trigger": {"type": "manual"}, "steps": steps}
    for level in range(60):
        step = {"id": f"s{level}", "type": "foreach", "items": "{{ trigger.input.x }}", "steps": []}
        steps.append(step)
        steps = step["steps"]
    response = api.post("/workflows", definition)
    assert response.status_code == 400, response.content
    assert "nested more than" in json.dumps(response.json())


def test_it_refuses_invalid_json_with_a_clear_400(live) -> None:
    api = api_for(live, role="admin")
    response = api.post("/customers", raw='{"email": ')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
