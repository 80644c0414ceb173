"""The admin login is throttled per (username, client address), durably, in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from backoffice.models import LoginThrottle
from backoffice.security import login_throttle_seconds_left

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _throttle(settings):
    settings.LOGIN_THROTTLE = {
        "MAX_FAILURES": 3,
        "WINDOW_SECONDS": 600,
        "LOCKOUT_SECONDS": 900,
        "TRUSTED_PROXY_HOPS": 0,
    }


def _post(client: Client, username: str, password: str, ip: str = "203.0.113.5", **extra):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=ip,
        **extra,
    )


def _fail(client: Client, username: str, times: int, ip: str = "203.0.113.5") -> None:
    for _ in range(times):
        response = _post(client, username, "wrong-password", ip)
        assert response.status_code == 200  # the form again, with its error


def test_it_locks_a_username_and_address_after_too_many_failures(client, alice):
    _fail(client, "alice", 3)
    response = _post(client, "alice", "password")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session  # the right password did not log her in


def test_it_keeps_the_count_in_the_database_for_every_worker(client, alice):
    _fail(client, "alice", 3)
    row = LoginThrottle.objects.get(username="alice", ip="203.0.113.5")
    assert row.failures == 3 and row.locked_until is not None
    # A fresh client (another worker, another cookie jar) is refused as well.
    assert _post(Client(), "alice", "password").status_code == 429


def test_it_does_not_lock_other_addresses_or_other_usernames(client, alice, dave):
    _fail(client, "alice", 3)
    assert _post(Client(), "alice", "password", ip="198.51.100.7").status_code == 302
    assert _post(Client(), "dave", "password").status_code == 302


def test_it_counts_case_variants_of_a_username_together(client, alice):
    _fail(client, "Alice", 2)
    _fail(client, "ALICE", 1)
    assert _post(client, "alice", "password").status_code == 429


def test_a_successful_login_clears_the_count(client, alice):
    _fail(client, "alice", 2)
    assert _post(client, "alice", "password").status_code == 302
    assert not LoginThrottle.objects.filter(username="alice").exists()
    _fail(Client(), "alice", 2)
    assert _post(Client(), "alice", "password").status_code == 302


def test_it_lets_the_user_try_again_after_the_lockout(client, alice):
    _fail(client, "alice", 3)
    assert login_throttle_seconds_left(username="alice", ip="203.0.113.5") > 800
    LoginThrottle.objects.filter(username="alice").update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert login_throttle_seconds_left(username="alice", ip="203.0.113.5") == 0
    assert _post(client, "alice", "password").status_code == 302


def test_it_starts_a_new_window_when_the_old_one_is_over(client, alice):
    _fail(client, "alice", 2)
    LoginThrottle.objects.filter(username="alice").update(
        window_started=timezone.now() - timedelta(seconds=601)
    )
    _fail(client, "alice", 2)
    assert LoginThrottle.objects.get(username="alice").failures == 2
    assert _post(client, "alice", "password").status_code == 302


def test_it_uses_the_proxys_view_of_the_client_only_when_told_to(client, alice, settings):
    settings.LOGIN_THROTTLE = {**settings.LOGIN_THROTTLE, "TRUSTED_PROXY_HOPS": 1}
    for _ in range(3):
        # The client forges a left-hand entry; the proxy appends the real address.
        _post(client, "alice", "wrong", ip="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.44")
    assert LoginThrottle.objects.get(username="alice").ip == "192.0.2.44"
    response = _post(
        Client(), "alice", "password", ip="10.0.0.1", HTTP_X_FORWARDED_FOR="9.9.9.9, 192.0.2.44"
    )
    assert response.status_code == 429


def test_it_forgets_counters_nobody_touched_for_a_window_and_a_lockout(client, alice):
    _fail(client, "alice", 1, ip="198.51.100.1")
    LoginThrottle.objects.filter(ip="198.51.100.1").update(
        updated=timezone.now() - timedelta(seconds=600 + 900 + 1)
    )
    _fail(client, "bob", 1)
    assert not LoginThrottle.objects.filter(ip="198.51.100.1").exists()
    assert LoginThrottle.objects.filter(username="bob").exists()
