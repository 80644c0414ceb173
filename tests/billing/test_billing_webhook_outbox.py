"""The webhook outbox keeps each environment's enabled endpoints between events, and sees every
endpoint change at the next event, made in this process or in another one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from tests import factories
from tests.workers import ROOT, _database_url
from webhooks import services as webhooks
from webhooks.models import WebhookDelivery, WebhookEndpoint

URL = "http://127.0.0.1:9/hook"  # never sent to: these tests only count deliveries

pytestmark = pytest.mark.usefixtures("webhook_settings")


def _deliveries_of_a_new_customer(environment) -> list[str]:
    customer = services.customer_create(environment=environment, email="a@example.com")
    return list(
        WebhookDelivery.objects.filter(event__object_id=customer.pk).values_list(
            "endpoint_id", flat=True
        )
    )


def _endpoint_reads(queries: CaptureQueriesContext) -> int:
    table = WebhookEndpoint._meta.db_table
    return sum(1 for q in queries.captured_queries if f'FROM "{table}"' in q["sql"])


def test_an_event_sees_an_endpoint_created_and_deleted_since_the_last_one(live):
    assert _deliveries_of_a_new_customer(live) == []  # the (empty) set is kept now
    endpoint = webhooks.webhook_endpoint_create(
        environment=live, url=URL, enabled_events=["customer.created"]
    )
    assert _deliveries_of_a_new_customer(live) == [endpoint.pk]
    webhooks.webhook_endpoint_delete(endpoint=endpoint)
    assert _deliveries_of_a_new_customer(live) == []


def test_an_event_sees_an_endpoint_disabled_with_save(live):
    endpoint = webhooks.webhook_endpoint_create(environment=live, url=URL, enabled_events=["*"])
    assert _deliveries_of_a_new_customer(live) == [endpoint.pk]
    endpoint.status = WebhookEndpoint.Status.DISABLED
    endpoint.save(update_fields=["status"])
    assert _deliveries_of_a_new_customer(live) == []


def test_unchanged_endpoints_are_not_read_again(live):
    endpoint = webhooks.webhook_endpoint_create(environment=live, url=URL, enabled_events=["*"])
    _deliveries_of_a_new_customer(live)
    with CaptureQueriesContext(connection) as queries:
        assert _deliveries_of_a_new_customer(live) == [endpoint.pk]
    assert _endpoint_reads(queries) == 0


def _create_endpoint_in_another_process(environment_id: int) -> str:
    code = (
        "from billing.models import Environment\n"
        "from webhooks.services import webhook_endpoint_create\n"
        f"env = Environment.objects.get(pk={environment_id})\n"
        f"print(webhook_endpoint_create(environment=env, url={URL!r}, "
        "enabled_events=['customer.created']).pk)\n"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": _database_url(),
            "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_next_event_sees_an_endpoint_created_by_another_process():
    live = factories.environment("live")
    assert _deliveries_of_a_new_customer(live) == []  # this process keeps the empty set
    endpoint_id = _create_endpoint_in_another_process(live.pk)
    assert _deliveries_of_a_new_customer(live) == [endpoint_id]
