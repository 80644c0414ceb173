"""`http.post` never reaches the internal network through a wildcard or an address trick.

tests/actions/test_action_http_post.py covers the allow-list, loopback and cross-host redirects
against a live server; these add the private ranges, cloud metadata, IPv6 and numeric spellings of
loopback, and user-info tricks. Every one is refused before any connection is made.
"""

from __future__ import annotations

import pytest

from workflows.actions.http_post import _is_internal, execute
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


# Issue 14, item 8: IPv6 spellings that carry an IPv4 address are judged by that IPv4 address.
EMBEDDED_INTERNAL_IPV4 = [
    "::127.0.0.1",  # IPv4-compatible (deprecated ::/96)
    "::10.0.0.8",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
    "64:ff9b::7f00:1",  # NAT64 well-known prefix -> 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 -> 169.254.169.254, cloud metadata
    "64:ff9b:1::7f00:1",  # local-use NAT64 (64:ff9b:1::/48), never global
    "2002:7f00:1::1",  # 6to4 -> 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 -> 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
]


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL_IPV4)
def test_ipv6_spellings_of_internal_ipv4_addresses_are_refused(
    live, allow_any_public_host, address
) -> None:
    ctx = ActionContext(environment=live, idempotency_key="1/hook/", run_id=1)
    with pytest.raises(ActionError) as caught:
        execute(ctx, {"url": f"http://[{address}]/hook", "body": {"a": 1}})
    assert caught.value.type == "host_not_allowed"
    assert caught.value.retryable is False


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL_IPV4)
def test_the_internal_address_check_reads_the_embedded_ipv4(address) -> None:
    assert _is_internal(address)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"],
)
def test_a_public_ipv4_inside_an_ipv6_spelling_is_judged_public(address) -> None:
    assert not _is_internal(address)
