"""`http.post` never reaches the internal network through a wildcard or an address trick.

tests/test_action_http_post.py covers the allow-list, loopback and cross-host redirects against
a live server; these add the private ranges, cloud metadata, IPv6 and numeric spellings of
loopback, and user-info tricks. Every one is refused before any connection is made.
"""

from __future__ import annotations

import pytest

from workflows.actions.http_post import execute
from workflows.actions.registry import ActionContext, ActionError


@pytest.fixture
def allow_any_public_host(settings):
    settings.BILLFLOW = {
        **settings.BILLFLOW,
        "HTTP_ALLOWED_HOSTS": ["*"],
        "HTTP_TIMEOUT_SECONDS": 1,
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.8/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/hook",  # carrier-grade NAT
        "http://0.0.0.0/hook",
        "http://localhost/hook",
        "http://127.0.0.2:8080/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://0x7f000001/hook",  # ... in hex
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
        "http://[fd00::1]/hook",  # unique local IPv6
        "http://user@127.0.0.1/hook",  # user-info before the host
    ],
)
def test_it_refuses_internal_addresses_behind_a_wildcard(live, allow_any_public_host, url) -> None:
    ctx = ActionContext(environment=live, idempotency_key="1/hook/", run_id=1)
    with pytest.raises(ActionError) as caught:
        execute(ctx, {"url": url, "body": {"a": 1}})
    assert caught.value.type == "host_not_allowed"
    assert caught.value.retryable is False


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://x/"])
def test_it_refuses_other_schemes(live, allow_any_public_host, url) -> None:
    ctx = ActionContext(environment=live, idempotency_key="1/hook/", run_id=1)
    with pytest.raises(ActionError) as caught:
        execute(ctx, {"url": url, "body": {}})
    assert "is not an http(s) URL" in caught.value.message


def test_a_wildcard_does_not_match_a_lookalike_host(live, settings) -> None:
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["*.example.com"]}
    ctx = ActionContext(environment=live, idempotency_key="1/hook/", run_id=1)
    for url in ("http://evilexample.com/", "http://example.com.evil.test/"):
        with pytest.raises(ActionError) as caught:
            execute(ctx, {"url": url, "body": {}})
        assert caught.value.type == "host_not_allowed"
