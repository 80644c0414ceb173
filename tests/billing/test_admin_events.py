"""The event log: read-only, one environment at a time, payloads shown escaped."""

from __future__ import annotations

import json

from django.urls import reverse

from billing.events import event_envelope
from billing.models import Event
from tests import factories


def change_url(event: Event) -> str:
    # Event ids hold "_", which the admin escapes in URLs.
    from django.contrib.admin.utils import quote

    return reverse("admin:billing_event_change", args=[quote(event.pk)])


def test_it_shows_the_pretty_payload_escaped(client, vic, live):
    customer = factories.customer(live, name="<script>alert(1)</script>")
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    client.force_login(vic)
    response = client.get(change_url(event))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;type&quot;: &quot;customer.created&quot;" in page
    pretty = json.dumps(event_envelope(event), indent=2, sort_keys=True)
    assert pretty.splitlines()[1].strip().replace('"', "&quot;") in page


def test_it_is_read_only_for_everyone(client, alice, live):
    customer = factories.customer(live)
    event = Event.objects.get(object_id=customer.pk)
    client.force_login(alice)
    page = client.get(change_url(event))
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    assert client.get(reverse("admin:billing_event_add")).status_code == 403
    assert client.post(change_url(event), {"type": "customer.deleted"}).status_code == 403
    delete = reverse("admin:billing_event_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code in {403, 404}
    listing = client.get(reverse("admin:billing_event_changelist"))
    assert listing.context["action_form"] is None  # not even delete_selected
    event.refresh_from_db()
    assert event.type == "customer.created"
    assert Event.objects.filter(pk=event.pk).exists()


def test_it_lists_only_the_current_environments_events(client, vic, live, sandbox):
    live_customer = factories.customer(live, email="live@example.com")
    sandbox_customer = factories.customer(sandbox, email="sandbox@example.com")
    client.force_login(vic)
    listed = client.get(reverse("admin:billing_event_changelist")).context["cl"].result_list
    assert {e.object_id for e in listed} == {live_customer.pk}
    client.post("/environment/switch/", {"environment": "sandbox"})
    listed = client.get(reverse("admin:billing_event_changelist")).context["cl"].result_list
    assert {e.object_id for e in listed} == {sandbox_customer.pk}
    live_event = Event.objects.get(object_id=live_customer.pk)
    assert client.get(change_url(live_event)).status_code == 404


def test_it_filters_events_by_type_and_finds_them_by_object_id(client, vic, live):
    customer = factories.customer(live)
    factories.paid_charge(live)
    client.force_login(vic)
    by_type = client.get(reverse("admin:billing_event_changelist"), {"type": "customer.created"})
    assert [e.object_id for e in by_type.context["cl"].result_list] == [customer.pk]
    by_id = client.get(reverse("admin:billing_event_changelist"), {"q": customer.pk})
    assert [e.type for e in by_id.context["cl"].result_list] == ["customer.created"]


def test_it_refuses_the_event_log_without_a_role(client, olga, live):
    client.force_login(olga)
    assert client.get(reverse("admin:billing_event_changelist")).status_code == 403
