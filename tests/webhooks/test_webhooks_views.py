"""The back office's webhook pages: list, create (secret shown once), delivery log, resend,
delete; Developer and Admin only, the current environment only, CSRF-checked POSTs."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests import factories
from webhooks import services
from webhooks.delivery import webhook_deliver
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.usefixtures("webhook_settings")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _in(client: Client, environment) -> Client:
    client.post(reverse("environment_switch"), {"environment": environment.slug})
    return client


def test_a_developer_creates_an_endpoint_and_sees_its_secret_once(live, dave):
    client = _in(_client(dave), live)

    response = client.post(
        reverse("webhooks:create"),
        {
            "url": "http://127.0.0.1:8123/hooks",
            "description": "Ledger",
            "enabled_events": ["customer.created", "invoice.paid"],
        },
    )

    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.environment, endpoint.enabled_events) == (
        live,
        ["customer.created", "invoice.paid"],
    )
    assert endpoint.secret in response.content.decode()
    assert "not shown again" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    for page in (reverse("webhooks:list"), reverse("webhooks:detail", args=[endpoint.pk])):
        shown = client.get(page)
        assert shown.status_code == 200
        assert endpoint.url in shown.content.decode()
        assert endpoint.secret not in shown.content.decode()


def test_a_bad_url_or_no_event_is_refused_beside_the_field(live, alice):
    client = _in(_client(alice), live)

    bad_url = client.post(
        reverse("webhooks:create"), {"url": "http://evil.example.net/", "enabled_events": ["*"]}
    )
    no_events = client.post(reverse("webhooks:create"), {"url": "http://127.0.0.1/x"})

    assert bad_url.status_code == 400
    assert "is not in the allowed hosts" in bad_url.content.decode()
    assert 'id="error-url"' in bad_url.content.decode()
    assert no_events.status_code == 400
    assert 'id="error-enabled_events"' in no_events.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_delivery_log_shows_each_attempt_s_status_code_and_resend_queues_it(
    live, dave, webhook_receiver
):
    endpoint = services.webhook_endpoint_create(
        environment=live, url=webhook_receiver.url(), enabled_events=["*"]
    )
    webhook_receiver.secret = endpoint.secret
    webhook_receiver.script(500)
    factories.customer(live)
    delivery = WebhookDelivery.objects.get()
    webhook_deliver(delivery_id=delivery.pk)
    client = _in(_client(dave), live)

    page = client.get(reverse("webhooks:detail", args=[endpoint.pk])).content.decode()
    assert delivery.event_id in page and "customer.created" in page
    assert '<strong class="attempt-status">500</strong>' in page
    assert f'class="delivery-pending" id="delivery-{delivery.pk}"' in page  # to be retried

    resend = reverse("webhooks:resend", args=[endpoint.pk, delivery.pk])
    assert client.get(resend).status_code == 405
    response = client.post(resend)
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.resend_requested) == ("pending", True)
    webhook_deliver(delivery_id=delivery.pk)
    page = client.get(reverse("webhooks:detail", args=[endpoint.pk])).content.decode()
    assert '<strong class="attempt-status">200</strong>' in page
    assert "<em>resend</em>" in page


def test_a_developer_deletes_an_endpoint(live, dave):
    endpoint = services.webhook_endpoint_create(
        environment=live, url="http://127.0.0.1/x", enabled_events=["*"]
    )
    client = _in(_client(dave), live)

    response = client.post(reverse("webhooks:delete", args=[endpoint.pk]))

    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("who", ["vic", "sam", "mona", "olga"])
def test_roles_below_developer_get_403(request, live, who):
    endpoint = services.webhook_endpoint_create(
        environment=live, url="http://127.0.0.1/x", enabled_events=["*"]
    )
    client = _in(_client(request.getfixturevalue(who)), live)

    assert client.get(reverse("webhooks:list")).status_code == 403
    assert client.get(reverse("webhooks:detail", args=[endpoint.pk])).status_code == 403
    assert client.post(reverse("webhooks:create"), {"url": "http://127.0.0.1/y"}).status_code == 403
    assert client.post(reverse("webhooks:delete", args=[endpoint.pk])).status_code == 403
    assert WebhookEndpoint.objects.count() == 1


def test_anonymous_visitors_are_sent_to_the_login_page(live):
    response = Client().get(reverse("webhooks:list"))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_another_environment_s_endpoint_is_not_found(live, sandbox, dave):
    endpoint = services.webhook_endpoint_create(
        environment=live, url="http://127.0.0.1/x", enabled_events=["*"]
    )
    client = _in(_client(dave), sandbox)

    assert endpoint.url not in client.get(reverse("webhooks:list")).content.decode()
    assert client.get(reverse("webhooks:detail", args=[endpoint.pk])).status_code == 404
    assert client.post(reverse("webhooks:delete", args=[endpoint.pk])).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_posts_need_the_csrf_token(live, dave):
    client = Client(enforce_csrf_checks=True)
    client.force_login(dave)
    response = client.post(reverse("webhooks:create"), {"url": "http://127.0.0.1/x"})
    assert response.status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_the_delivery_log_refreshes_itself_as_a_partial_while_a_delivery_is_under_way(
    live, dave, webhook_receiver
):
    endpoint = services.webhook_endpoint_create(
        environment=live, url=webhook_receiver.url(), enabled_events=["*"]
    )
    webhook_receiver.secret = endpoint.secret
    factories.customer(live)
    client = _in(_client(dave), live)
    detail = reverse("webhooks:detail", args=[endpoint.pk])

    page = client.get(detail).content.decode()
    partial = client.get(detail, headers={"HX-Request": "true"}).content.decode()

    assert 'hx-trigger="every 3s"' in page  # pending: the log polls
    assert partial.lstrip().startswith('<div id="delivery-log"')
    assert "Delete this endpoint" not in partial
    webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)
    assert 'hx-trigger="every 3s"' not in client.get(detail).content.decode()  # all done
