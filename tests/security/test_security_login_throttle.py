"""The admin login locks a user name, and a client address, after too many failed logins.

django-axes counts the failures (durably, in the database) and refuses further logins, even with
the right password. The user name is counted as Django's login form hands it to the backends
(stripped, NFKC), lower-cased: every spelling that signs in as one user counts toward, and is
refused by, that user's one lock (issue 14, item 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests import factories

LOGIN = "/admin/login/"
LIMIT = 5  # LOGIN_THROTTLE_MAX_FAILURES' default
ROOT = Path(__file__).resolve().parents[2]
# Spellings of "tvictim" that Django's login form turns into "tvictim" (fullwidth letters are
# NFKC-equivalent, surrounding whitespace is stripped), and mixed case (its own user name to
# Django, but the same lock here: a lock too wide is safe, one too narrow is a bypass).
SPELLINGS = (
    "tvictim",
    "ｔｖｉｃｔｉｍ",
    "  tvictim\t",
    " ｔｖｉｃｔｉｍ ",
    "TVictim",
    "ＴＶＩＣＴＩＭ",
)


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
        assert response.status_code in (200, 429)  # the form again, or the lockout page


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- issue 14 item 1: one user name, every spelling ---------------------------------------------


def test_it_locks_every_spelling_of_a_user_name(db):
    factories.user("tvictim", "Admin")
    # Each failure from its own address: only the lock on the user name can refuse.
    for i in range(LIMIT):
        _fail(Client(), "tvictim", 1, ip=f"198.51.100.{i + 1}")
    for n, spelling in enumerate(SPELLINGS):
        client = Client()
        response = _post(client, spelling, "password", ip=f"192.0.2.{n + 1}")
        assert response.status_code == 429, spelling
        assert not _signed_in(client), spelling  # the right password did not sign in


def test_it_counts_guesses_under_every_spelling_toward_one_lock(db):
    factories.user("tvictim2", "Admin")
    guesses = ("ｔｖｉｃｔｉｍ２", "TVictim2", " tvictim2 ", "ＴＶＩＣＴＩＭ２", "ｔｖｉｃｔｉｍ２")
    for i, spelling in enumerate(guesses):
        _fail(Client(), spelling, 1, ip=f"198.51.100.{i + 1}")
    # The next guess, under the fullwidth spelling, is not even tried, and neither is the user's
    # own spelling with the right password.
    assert _post(Client(), "ｔｖｉｃｔｉｍ２", "wrong", ip="192.0.2.77").status_code == 429
    client = Client()
    assert _post(client, "tvictim2", "password", ip="192.0.2.78").status_code == 429
    assert not _signed_in(client)
    # One counter row per spelling? No: every row carries the one normalized name.
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"tvictim2"}


def test_a_fullwidth_spelling_does_not_get_around_the_lock_from_the_same_address(db):
    factories.user("tvictim", "Admin")
    _fail(Client(), "tvictim", LIMIT)
    client = Client()
    assert _post(client, "ｔｖｉｃｔｉｍ", "password").status_code == 429
    assert not _signed_in(client)


# --- the lock itself ------------------------------------------------------------------------


def test_it_locks_a_user_name_after_too_many_failures(client, alice):
    _fail(client, "alice", LIMIT - 1)
    assert _post(client, "alice", "wrong").status_code == 429  # the failure that locks
    response = _post(client, "alice", "password")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 900
    assert b"Too many failed logins" in response.content
    assert not _signed_in(client)  # the right password did not log her in


def test_it_keeps_the_count_in_the_database_for_every_worker(client, alice):
    _fail(client, "alice", LIMIT)
    row = AccessAttempt.objects.get(username="alice", ip_address="203.0.113.5")
    assert row.failures_since_start == LIMIT
    # A fresh client (another worker, another cookie jar, another address) is refused as well.
    assert _post(Client(), "alice", "password", ip="198.51.100.9").status_code == 429


def test_it_locks_an_address_that_guesses_at_many_user_names(db, dave):
    for i in range(LIMIT):
        _fail(Client(), f"nobody{i}", 1)
    assert _post(Client(), "dave", "password").status_code == 429
    # Dave from his own address is not locked: the lock is on the guessing address.
    assert _post(Client(), "dave", "password", ip="198.51.100.7").status_code == 302


def test_it_does_not_lock_other_users_from_other_addresses(client, alice, dave):
    _fail(client, "alice", LIMIT)
    assert _post(Client(), "dave", "password", ip="198.51.100.7").status_code == 302


def test_a_successful_login_clears_the_count(client, alice):
    _fail(client, "alice", LIMIT - 1)
    assert _post(client, "alice", "password").status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    _fail(Client(), "alice", LIMIT - 1)
    assert _post(Client(), "alice", "password").status_code == 302


def test_a_refused_login_does_not_extend_the_lockout(client, alice):
    _fail(client, "alice", LIMIT)
    before = AccessAttempt.objects.get(username="alice").attempt_time
    assert _post(client, "alice", "password").status_code == 429
    after = AccessAttempt.objects.get(username="alice")
    assert (after.attempt_time, after.failures_since_start) == (before, LIMIT)


def test_it_lets_the_user_try_again_after_the_cool_off(client, alice):
    _fail(client, "alice", LIMIT)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=901))
    assert _post(client, "alice", "password").status_code == 302


def test_it_uses_the_proxys_view_of_the_client_only_when_told_to(client, alice, settings):
    forged = {"HTTP_X_FORWARDED_FOR": "1.2.3.4, 192.0.2.44"}
    _post(client, "alice", "wrong", ip="10.0.0.1", **forged)
    assert AccessAttempt.objects.get().ip_address == "10.0.0.1"  # no proxy: the header is ignored
    AccessAttempt.objects.all().delete()

    settings.TRUSTED_PROXY_HOPS = 1
    for _ in range(LIMIT):
        # The client forges a left-hand entry; the proxy appends the real address.
        _post(Client(), f"u{_}", "wrong", ip="10.0.0.1", **forged)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.44"}
    other = {"HTTP_X_FORWARDED_FOR": "9.9.9.9, 192.0.2.44"}
    assert _post(Client(), "alice", "password", ip="10.0.0.1", **other).status_code == 429
    elsewhere = {"HTTP_X_FORWARDED_FOR": "192.0.2.44, 198.51.100.3"}
    assert _post(Client(), "alice", "password", ip="10.0.0.1", **elsewhere).status_code == 302


# --- unlocking --------------------------------------------------------------------------------


def test_an_admin_unlocks_a_user_with_axes_reset_username(client, alice):
    _fail(client, "alice", LIMIT)
    call_command("axes_reset_username", "alice", stdout=open(os.devnull, "w"))
    assert _post(Client(), "alice", "password", ip="198.51.100.7").status_code == 302


def test_an_admin_unlocks_a_user_on_the_access_attempts_page(alice, dave):
    _fail(Client(), "dave", LIMIT, ip="198.51.100.7")
    attempt = AccessAttempt.objects.get(username="dave")
    admin_client = Client()
    admin_client.force_login(alice)
    page = admin_client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and b"198.51.100.7" in page.content
    response = admin_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert _post(Client(), "dave", "password", ip="198.51.100.7").status_code == 302


def test_the_access_attempts_page_is_for_admins_only(alice, dave):
    developer = Client()
    developer.force_login(dave)
    assert developer.get("/admin/axes/accessattempt/").status_code == 403


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "LOGIN_THROTTLE_MAX_FAILURES",
        "LOGIN_THROTTLE_WINDOW_SECONDS",
        "LOGIN_THROTTLE_LOCKOUT_SECONDS",
    ],
)
def test_a_bad_throttle_setting_stops_start_up_naming_the_variable(name):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", name: "0"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"Environment variable {name} must be at least 1" in result.stderr
