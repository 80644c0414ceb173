"""schemathesis against /api/v1/openapi.json, in process through the WSGI app.

Every operation gets generated requests, valid ones and invalid ones, with an Admin key of the
live environment; no answer may be a 5xx or break the response schema the document declares.
The examples per operation are bounded so the whole walk takes well under two minutes.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from billing.api_keys import api_key_create
from config.wsgi import application
from tests import factories
from webhooks.services import webhook_endpoint_create

EXAMPLES_PER_OPERATION = 4
# A manual workflow whose run tags a customer: its run, steps and all, is in the run lists.
TAG = factories.tag_by_hand_definition()


@pytest.fixture
def wsgi_in_test_transaction(db):
    # The WSGI handler would close the test's connection (and so its transaction) around each
    # request; Django's test client makes the same disconnects.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_it_answers_generated_requests_without_5xx_or_schema_breaks(
    wsgi_in_test_transaction, mode
) -> None:
    live = factories.environment("live")
    customer = factories.customer(live, email="schema@example.com")
    factories.paid_charge(live, customer=customer)
    # So the workflow, run and webhook endpoint lists answer with objects to check too.
    factories.run_executed(factories.workflow_active(live, TAG), customer=customer)
    with override_settings(
        BILLFLOW={**django_settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["hooks.example.com"]}
    ):
        webhook_endpoint_create(
            environment=live, url="https://hooks.example.com/in", enabled_events=["*"]
        )
    _, raw = api_key_create(environment=live, name="schemathesis", role="admin")
    headers = {"Authorization": f"Bearer {raw}"}

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_in_test_transaction)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 60  # billing, workflows, runs and webhook endpoints
    failures: list[str] = []

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert failures == []
