"""API keys: made once, stored hashed, checked in constant time, revocable."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import PermissionDenied

from billing.api_keys import api_key_authenticate, api_key_create, api_key_revoke
from billing.models import ApiKey


def test_it_returns_the_raw_key_once_and_stores_only_its_hash(live):
    key, raw = api_key_create(environment=live, name="CI")
    assert raw.startswith("sk_live_")
    assert len(raw) == len("sk_live_") + 32
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {stored.hashed_key, stored.prefix, stored.name}
    assert raw.startswith(stored.prefix) and stored.prefix.startswith("sk_live_")
    assert stored.role == "developer"


def test_it_names_sandbox_keys_after_their_environment(sandbox):
    _, raw = api_key_create(environment=sandbox, name="Tests", role="viewer")
    assert raw.startswith("sk_sandbox_")


def test_it_authenticates_a_key_and_records_its_use(live):
    key, raw = api_key_create(environment=live, name="CI")
    found = api_key_authenticate(raw)
    assert found == key
    assert found.environment == live
    assert ApiKey.objects.get(pk=key.pk).last_used is not None


def test_it_rejects_wrong_malformed_and_revoked_keys(live):
    key, raw = api_key_create(environment=live, name="CI")
    assert api_key_authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert api_key_authenticate("") is None
    assert api_key_authenticate("Bearer " + raw) is None
    assert api_key_authenticate("sk_" + "x" * 500) is None
    api_key_revoke(api_key=key)
    assert api_key_authenticate(raw) is None


def test_it_refuses_an_unknown_role(live):
    with pytest.raises(ValueError):
        api_key_create(environment=live, name="CI", role="superuser")


def test_it_does_not_let_a_developer_mint_an_admin_key(live, dave, alice):
    with pytest.raises(PermissionDenied):
        api_key_create(environment=live, name="Too strong", role="admin", created_by=dave)
    key, _ = api_key_create(environment=live, name="Fine", role="admin", created_by=alice)
    assert key.created_by == alice
