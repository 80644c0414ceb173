"""The example custom-action app: `slack.post_message` registered by another Django app."""

from __future__ import annotations

import pytest

from tests.httpserver import Reply
from workflows.actions import registry
from workflows.actions.registry import ActionContext, ActionError


@pytest.fixture
def webhook(settings, http_server):
    settings.SLACK_ACTIONS = {"WEBHOOK_URL": http_server.url("/services/T000/B000/XXXX")}
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_TIMEOUT_SECONDS": 2.0}
    http_server.default = Reply(200, "ok")
    return http_server


def _ctx(environment, key: str = "5/tell_slack/") -> ActionContext:
    return ActionContext(environment=environment, idempotency_key=key, run_id=5)


def test_it_is_registered_beside_the_built_in_actions():
    keys = [action.key for action in registry.all_actions()]

    assert "slack.post_message" in keys
    assert "team.email" in keys
    action = registry.get("slack.post_message")
    assert action.label == "Post to Slack"
    assert action.input("text").required is True
    assert action.transactional is False


def test_it_posts_the_text_to_the_configured_webhook(live, webhook):
    output = registry.get("slack.post_message").execute(
        _ctx(live), {"text": "Run 5 failed at step charge"}
    )

    [request] = webhook.requests
    assert request.path == "/services/T000/B000/XXXX"
    assert request.json() == {"text": "Run 5 failed at step charge"}
    assert request.headers["idempotency-key"] == "5/tell_slack/"
    assert "billflow-signature" in request.headers
    assert output == {"status": 200, "body": "ok"}


def test_it_posts_once_per_key(live, webhook):
    action = registry.get("slack.post_message")
    action.execute(_ctx(live), {"text": "hello"})
    action.execute(_ctx(live), {"text": "hello"})

    assert len(webhook.requests) == 1


def test_it_treats_a_slack_outage_as_retryable(live, webhook):
    webhook.script(500)
    with pytest.raises(ActionError) as caught:
        registry.get("slack.post_message").execute(_ctx(live), {"text": "hello"})
    assert caught.value.retryable is True


def test_it_fails_clearly_when_no_webhook_is_configured(live, settings):
    settings.SLACK_ACTIONS = {"WEBHOOK_URL": ""}
    with pytest.raises(ActionError) as caught:
        registry.get("slack.post_message").execute(_ctx(live), {"text": "hello"})

    assert caught.value.type == "configuration"
    assert "SLACK_WEBHOOK_URL" in caught.value.message
    assert caught.value.retryable is False


def test_it_refuses_an_empty_message(live, webhook):
    with pytest.raises(ActionError) as caught:
        registry.get("slack.post_message").execute(_ctx(live), {"text": "  "})
    assert caught.value.param == "text"
    assert webhook.requests == []
