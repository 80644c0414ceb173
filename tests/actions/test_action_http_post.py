"""`http.post` against a local HTTP server with scripted answers (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from tests import factories
from tests.httpserver import Reply
from tests.smtp import free_port
from workflows.actions import registry
from workflows.actions.http_post import execute, validate_params
from workflows.actions.registry import ActionContext, ActionError
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.models import Delivery, StepRun

SECRET = "whsec_test_secret"
PAYLOAD = {"customer": "cus_123", "amount": 150000}


@pytest.fixture
def allowed(settings):
    """Allow exactly 127.0.0.1 (the test server), sign with a known secret, time out fast."""

    def allow(*hosts: str, timeout: float = 2.0) -> None:
        settings.BILLFLOW = {
            **settings.BILLFLOW,
            "HTTP_ALLOWED_HOSTS": list(hosts),
            "HTTP_SIGNING_SECRET": SECRET,
            "HTTP_TIMEOUT_SECONDS": timeout,
        }

    allow("127.0.0.1")
    return allow


def _ctx(environment, key: str = "9/call_erp/") -> ActionContext:
    return ActionContext(environment=environment, idempotency_key=key, run_id=9)


def _verify(header: str, body: bytes) -> bool:
    """What a receiver does, written out here rather than calling our own code."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 60


def test_it_is_registered_as_a_non_transactional_side_effect():
    action = registry.get("http.post")
    assert action is not None
    assert action.transactional is False
    assert [f.name for f in action.inputs] == ["url", "body"]


def test_it_posts_a_signed_json_body_with_the_idempotency_key(live, allowed, http_server):
    http_server.script(Reply(200, {"received": True}))

    output = execute(_ctx(live), {"url": http_server.url("/hooks/erp"), "body": PAYLOAD})

    [request] = http_server.requests
    assert request.method == "POST"
    assert request.path == "/hooks/erp"
    assert request.json() == PAYLOAD
    assert request.headers["idempotency-key"] == "9/call_erp/"
    assert request.headers["content-type"] == "application/json"
    assert _verify(request.headers["billflow-signature"], request.body)
    assert output == {"status": 200, "body": {"received": True}}


def test_its_signature_does_not_verify_with_another_secret(live, allowed, http_server):
    execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})

    [request] = http_server.requests
    parts = dict(item.split("=", 1) for item in request.headers["billflow-signature"].split(","))
    forged = hmac.new(b"other", f"{parts['t']}.".encode() + request.body, hashlib.sha256)
    assert forged.hexdigest() != parts["v1"]


def test_it_treats_503_as_retryable_and_succeeds_on_the_third_attempt(live, allowed, http_server):
    http_server.script(503, 503, Reply(200, {"ok": True}))
    params = {"url": http_server.url("/hooks/erp"), "body": PAYLOAD}

    for _ in range(2):
        with pytest.raises(ActionError) as caught:
            execute(_ctx(live), params)
        assert caught.value.retryable is True
        assert "503" in caught.value.message
    output = execute(_ctx(live), params)

    assert output["status"] == 200
    assert len(http_server.requests) == 3
    assert {r.headers["idempotency-key"] for r in http_server.requests} == {"9/call_erp/"}
    delivery = Delivery.objects.get(kind="http", idempotency_key="9/call_erp/")
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 3)


def test_it_sends_nothing_when_a_succeeded_key_is_executed_again(live, allowed, http_server):
    params = {"url": http_server.url("/"), "body": PAYLOAD}
    first = execute(_ctx(live), params)
    again = execute(_ctx(live), params)

    assert len(http_server.requests) == 1
    assert again == first


def test_it_treats_429_as_retryable(live, allowed, http_server):
    http_server.script(429)
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})
    assert caught.value.retryable is True


def test_it_treats_400_as_final(live, allowed, http_server):
    http_server.script(Reply(400, {"error": "bad customer"}))
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})

    assert caught.value.retryable is False
    assert "400" in caught.value.message
    assert "bad customer" in caught.value.message


def test_it_refuses_a_host_that_is_not_allowed(live, allowed, http_server):
    allowed("hooks.example.com")
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})

    assert caught.value.type == "host_not_allowed"
    assert "'127.0.0.1' is not in the allowed hosts" in caught.value.message
    assert caught.value.param == "url"
    assert caught.value.retryable is False
    assert http_server.requests == []


def test_it_refuses_loopback_unless_listed_by_exact_name(live, allowed, http_server):
    allowed("*")
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})
    assert caught.value.type == "host_not_allowed"
    assert "private or loopback" in caught.value.message
    assert http_server.requests == []

    allowed("*", "127.0.0.1")
    assert execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})["status"] == 200


def test_it_refuses_a_redirect_to_another_host(live, allowed, http_server):
    http_server.script(Reply(307, headers={"Location": "http://elsewhere.example/steal"}))
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})

    assert caught.value.type == "redirect_refused"
    assert "elsewhere.example" in caught.value.message
    assert caught.value.retryable is False
    assert len(http_server.requests) == 1


def test_it_follows_a_307_on_the_same_host_with_the_same_body(live, allowed, http_server):
    http_server.script(Reply(307, headers={"Location": "/moved"}), Reply(200, {"ok": True}))

    output = execute(_ctx(live), {"url": http_server.url("/old"), "body": PAYLOAD})

    assert output["status"] == 200
    assert [r.path for r in http_server.requests] == ["/old", "/moved"]
    assert http_server.requests[1].json() == PAYLOAD


def test_it_treats_a_timeout_as_retryable(live, allowed, http_server):
    allowed("127.0.0.1", timeout=0.5)
    http_server.hang = True
    started = time.monotonic()
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": http_server.url("/"), "body": PAYLOAD})

    assert caught.value.type == "timeout"
    assert caught.value.retryable is True
    assert time.monotonic() - started < 5


def test_it_treats_a_refused_connection_as_retryable(live, allowed):
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {"url": f"http://127.0.0.1:{free_port()}/", "body": PAYLOAD})
    assert caught.value.type == "connection_error"
    assert caught.value.retryable is True


def test_it_keeps_a_text_reply_and_truncates_a_long_one(live, allowed, http_server):
    http_server.script(Reply(200, "accepted"), Reply(200, "x" * 10_000))

    assert execute(_ctx(live, key="1/a/"), {"url": http_server.url("/")})["body"] == "accepted"
    long = execute(_ctx(live, key="1/b/"), {"url": http_server.url("/")})["body"]
    assert len(long) == 4000
    assert json.loads(http_server.requests[0].body) == {}


def test_it_checks_a_literal_url_when_the_workflow_is_saved(allowed):
    allowed("hooks.example.com")
    assert validate_params({"url": "https://hooks.example.com/x"}) == []
    assert validate_params({"url": "{{ trigger.input.url }}"}) == []
    assert validate_params({"url": "https://evil.example/x"}) == [
        ("url", "Host 'evil.example' is not in the allowed hosts (HTTP_ALLOWED_HOSTS).")
    ]
    assert validate_params({"url": "ftp://hooks.example.com/"}) == [
        ("url", "'ftp://hooks.example.com/' is not an http(s) URL.")
    ]


def test_the_engine_retries_503_twice_and_records_the_attempts(live, allowed, http_server):
    """The transient case through the engine in this process: 503, 503, then 200."""
    http_server.script(503, 503, Reply(200, {"ok": True}))
    workflow = factories.workflow_active(
        live,
        {
            "name": "Tell the ERP",
            "trigger": {"type": "manual", "input": []},
            "steps": [
                {
                    "id": "call_erp",
                    "type": "action",
                    "action": "http.post",
                    "params": {"url": http_server.url("/erp"), "body": {"run": "{{ run.id }}"}},
                }
            ],
        },
    )
    run = run_start_manual(workflow=workflow, input={})

    assert run_execute(run_id=run.pk) == "succeeded"

    step = StepRun.objects.get(run=run)
    assert (step.status, step.attempts) == ("succeeded", 3)
    assert [e["retryable"] for e in step.attempt_errors] == [True, True]
    assert all("503" in e["message"] for e in step.attempt_errors)
    assert step.output == {"status": 200, "body": {"ok": True}}
    assert len(http_server.requests) == 3
    assert {r.headers["idempotency-key"] for r in http_server.requests} == {f"{run.pk}/call_erp/"}
    assert http_server.requests[0].json() == {"run": run.pk}
