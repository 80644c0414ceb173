"""User-controlled text is escaped everywhere it is shown.

`<script>` goes into workflow and step names, a customer's name and metadata values, an e-mail
step's subject and body, and a step's error message; every page that shows them must show the
escaped text and never the raw tag.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.core import mail

from billing import services
from tests import factories
from workflows.actions import registry

PAYLOAD = '<script>alert("xss")</script>'
ATTRIBUTE_PAYLOAD = '"><img src=x onerror=alert(1)>'
# Inline script is stopped by the CSP; markup is not: a refresh to another site, a fake link.
META_PAYLOAD = '<meta http-equiv="refresh" content="0;url=https://evil.example/">'
LINK_PAYLOAD = '<a href="https://evil.example/login">Session expired, sign in again</a>'
RAW = [
    b"<script>alert(",
    b"<img src=x onerror",
    b'<meta http-equiv="refresh"',
    b'<a href="https://evil.example',
]


def _definition() -> dict:
    return {
        "name": f"Sync {PAYLOAD}",
        "description": PAYLOAD,
        "trigger": {
            "type": "manual",
            # Every user-controlled part of a manual input reaches a form: label, help, choices.
            "input": [
                {
                    "name": "customer",
                    "type": "string",
                    "required": True,
                    "label": PAYLOAD,
                    "help": f"{META_PAYLOAD} {PAYLOAD}",
                },
                {
                    "name": "plan",
                    "type": "string",
                    "label": LINK_PAYLOAD,
                    "help": LINK_PAYLOAD,
                    "choices": [PAYLOAD, META_PAYLOAD, LINK_PAYLOAD],
                },
                {"name": "note", "type": "object", "help": ATTRIBUTE_PAYLOAD},
                {"name": "urgent", "type": "boolean", "help": META_PAYLOAD},
            ],
        },
        "steps": [
            {
                "id": "tag",
                "name": f"Tag {PAYLOAD}",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"note": PAYLOAD, "quote": ATTRIBUTE_PAYLOAD},
                },
            },
            {
                "id": "mail",
                "name": f"Mail {PAYLOAD}",
                "type": "action",
                "action": "team.email",
                "params": {
                    "recipients": ["alice"],
                    "subject": f"Subject {PAYLOAD}",
                    "body": f"Body {PAYLOAD} {ATTRIBUTE_PAYLOAD}",
                },
            },
            {"id": "sync", "name": f"Sync {PAYLOAD}", "type": "action", "action": "tests.flaky"},
        ],
    }


@pytest.fixture
def world(live, alice):
    state = {"fail": True, "message": f"Ledger said {PAYLOAD} {ATTRIBUTE_PAYLOAD}"}
    factories.flaky_action(state)
    try:
        customer = factories.customer(
            live,
            email="xss@example.com",
            name=PAYLOAD,
            description=ATTRIBUTE_PAYLOAD,
            metadata={"note": PAYLOAD},
        )
        services.customer_update(
            customer=customer, changes={"metadata": {"plan": ATTRIBUTE_PAYLOAD}}
        )
        workflow = factories.workflow_active(live, _definition(), alice)
        run = factories.run_executed(workflow, customer=customer)
        yield {"customer": customer, "workflow": workflow, "run": run}
    finally:
        registry.unregister("tests.flaky")


def _pages(world: dict) -> list[str]:
    workflow, run, customer = world["workflow"], world["run"], world["customer"]
    from billing.models import Event

    event = Event.objects.filter(type="customer.updated").first()
    return [
        "/admin/workflows/",
        f"/admin/workflows/{workflow.pk}/",
        f"/admin/workflows/{workflow.pk}/steps/tag/",
        f"/admin/workflows/{workflow.pk}/steps/mail/",
        f"/admin/workflows/{workflow.pk}/steps/sync/",
        f"/admin/workflows/{workflow.pk}/trigger/",
        f"/admin/workflows/{workflow.pk}/versions/",
        f"/admin/workflows/{workflow.pk}/run/",
        f"/admin/workflows/{workflow.pk}/test/",
        f"/admin/workflows/{workflow.pk}/delete/",
        "/admin/runs/",
        "/admin/runs/dashboard/",
        f"/admin/runs/{run.pk}/",
        f"/admin/runs/{run.pk}/row/",
        f"/admin/runs/{run.pk}/restart/",
        "/admin/billing/customer/",
        f"/admin/billing/customer/{quote(customer.pk)}/change/",
        "/admin/billing/event/",
        f"/admin/billing/event/{quote(event.pk)}/change/",
    ]


def test_the_run_failed_with_the_hostile_error_message(world) -> None:
    assert world["run"].status == "failed"
    assert PAYLOAD in world["run"].error["message"]


def test_every_page_escapes_stored_script_tags(client, alice, world) -> None:
    client.force_login(alice)
    shown_escaped = 0
    for path in _pages(world):
        response = client.get(path)
        assert response.status_code == 200, path
        for raw in RAW:
            assert raw not in response.content, f"unescaped {raw!r} on {path}"
        if b"&lt;script&gt;" in response.content:
            shown_escaped += 1
    # The text really is on the pages (escaped), so the absence of the raw tag means something.
    assert shown_escaped >= len(_pages(world)) - 3


def test_the_run_page_shows_the_escaped_error_and_metadata(client, alice, world) -> None:
    client.force_login(alice)
    content = client.get(f"/admin/runs/{world['run'].pk}/").content.decode()
    assert "Ledger said &lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in content


def test_team_emails_are_plain_text(world) -> None:
    sent = [m for m in mail.outbox if "Subject" in m.subject]
    assert sent, "the team e-mail step sent nothing"
    for message in sent:
        assert message.content_subtype == "plain"
        assert not getattr(message, "alternatives", [])


def test_manual_input_help_label_and_choices_are_escaped_on_the_run_and_test_forms(
    client, alice, world
) -> None:
    """Item 2 of issue 14: a manual input's `help` became unescaped `help_text`."""
    client.force_login(alice)
    workflow = world["workflow"]
    for path in (f"/admin/workflows/{workflow.pk}/run/", f"/admin/workflows/{workflow.pk}/test/"):
        content = client.get(path).content.decode()
        for raw in RAW:
            assert raw.decode() not in content, f"unescaped {raw!r} on {path}"
        # The help, labels and choices are there, escaped, so the absence above means something.
        assert "&lt;meta http-equiv=&quot;refresh&quot;" in content, path
        assert "&lt;a href=&quot;https://evil.example/login&quot;&gt;" in content, path
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in content, path


def test_a_posted_form_with_hostile_values_shows_them_escaped(client, alice, world) -> None:
    """Values typed back into a form (initial/bound data) are escaped in the re-rendered page."""
    client.force_login(alice)
    workflow = world["workflow"]
    for path in (f"/admin/workflows/{workflow.pk}/run/", f"/admin/workflows/{workflow.pk}/test/"):
        response = client.post(
            path, {"customer": PAYLOAD, "plan": META_PAYLOAD, "note": LINK_PAYLOAD}
        )
        assert response.status_code in (200, 302), path
        for raw in RAW:
            assert raw not in response.content, f"unescaped {raw!r} on {path}"
