"""The builder's JSON import under hostile input (issue 14): JSON nested thousands of levels
deep and files or pasted text over the 1 MiB request limit get a form error naming the field
and the rule, never a 500 or a stored 30 MB description.

The client enforces CSRF like a browser, so the size check is proved on the production path,
where Django's CSRF middleware reads the body before the view.
"""

from __future__ import annotations

import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from workflows.models import Workflow

pytestmark = pytest.mark.django_db

IMPORT = "/admin/workflows/import/"


@pytest.fixture
def csrf_client(alice, live) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/admin/workflows/")  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


def _deep(levels: int) -> str:
    return (
        '{"name": "Deep", "trigger": {"type": "manual"}, "steps": '
        + "[" * levels
        + "]" * levels
        + "}"
    )


def _small(description: str = "") -> str:
    return (
        '{"name": "Small", "description": "' + description + '", '
        '"trigger": {"type": "manual"}, "steps": []}'
    )


def _page(response) -> str:
    return html.unescape(response.content.decode())


# --- item 4: deeply nested JSON ----------------------------------------------------------------


def test_pasted_json_nested_5000_levels_is_a_form_error_naming_the_field_and_the_rule(
    csrf_client,
) -> None:
    client, token = csrf_client
    response = client.post(IMPORT, {"text": _deep(5_000), "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    page = _page(response)
    assert "Pasted definition" in page or "text" in page
    assert "nested at most 200 levels deep" in page
    assert not Workflow.objects.exists()


def test_an_uploaded_file_nested_5000_levels_is_a_form_error_naming_the_field_and_the_rule(
    csrf_client,
) -> None:
    client, token = csrf_client
    upload = SimpleUploadedFile("deep.json", _deep(5_000).encode(), "application/json")
    response = client.post(IMPORT, {"file": upload, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    page = _page(response)
    assert "JSON file" in page
    assert "nested at most 200 levels deep" in page
    assert not Workflow.objects.exists()


def test_json_nested_just_under_the_recursion_limit_is_a_form_error_too(csrf_client) -> None:
    client, token = csrf_client
    response = client.post(IMPORT, {"text": _deep(900), "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    assert "nested at most 200 levels deep" in _page(response)
    assert not Workflow.objects.exists()


# --- item 6: the 1 MiB limit holds for the import too ------------------------------------------


def test_an_uploaded_file_over_the_request_limit_is_a_form_error(csrf_client, settings) -> None:
    client, token = csrf_client
    body = _small("x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10))
    upload = SimpleUploadedFile("big.json", body.encode(), "application/json")
    response = client.post(IMPORT, {"file": upload, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    page = _page(response)
    assert "JSON file" in page
    assert "at most 1 MiB" in page
    assert not Workflow.objects.exists()


def test_pasted_text_over_the_request_limit_is_a_form_error(csrf_client, settings) -> None:
    client, token = csrf_client
    body = _small("x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10))
    response = client.post(IMPORT, {"text": body, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    assert "at most 1 MiB" in _page(response)
    assert not Workflow.objects.exists()


def test_an_import_under_the_limit_still_works(csrf_client) -> None:
    client, token = csrf_client
    upload = SimpleUploadedFile("ok.json", _small("fine").encode(), "application/json")
    response = client.post(IMPORT, {"file": upload, "csrfmiddlewaretoken": token})
    assert response.status_code == 302, _page(response)[:2000]
    assert Workflow.objects.get().description == "fine"


def test_a_large_body_without_a_csrf_token_changes_nothing(alice, live, settings) -> None:
    """The size answer comes before the CSRF check; it must not import anything."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    body = _small("x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10))
    response = client.post(IMPORT, {"text": body})
    assert response.status_code in (400, 403)
    assert not Workflow.objects.exists()
    small = client.post(IMPORT, {"text": _small()})
    assert small.status_code == 403
    assert not Workflow.objects.exists()


def test_a_description_over_5000_characters_is_refused_naming_the_field(csrf_client) -> None:
    client, token = csrf_client
    response = client.post(IMPORT, {"text": _small("x" * 5_001), "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    assert "The description is longer than 5000 characters" in _page(response)
    assert not Workflow.objects.exists()
