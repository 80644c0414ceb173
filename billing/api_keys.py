"""Secret API keys: made once, shown once, stored only as a SHA-256 hash.

A key reads `sk_<environment slug>_<32 random characters>` (`sk_live_…` for live), so a person
can tell at a glance which environment a script talks to.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from backoffice.roles import ROLE_BY_KEY_ROLE, role_of
from billing.models import ID_ALPHABET, ApiKey, Environment

SECRET_LENGTH = 32
# Visible part kept for people to recognise a key: "sk_<slug>_" and four secret characters.
PREFIX_SECRET_CHARS = 4
# Writing last_used on every request would make each GET a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_KEY_LENGTH = 200


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(
    *, environment: Environment, name: str, role: str = ApiKey.Role.DEVELOPER, created_by=None
) -> tuple[ApiKey, str]:
    """Make a key; returns the row and the raw key, which is never available again.

    A person cannot mint a key more powerful than themselves (a Developer cannot make an Admin key).
    """
    if role not in ROLE_BY_KEY_ROLE:
        raise ValueError(f"Unknown API key role {role!r}")
    if created_by is not None and ROLE_BY_KEY_ROLE[role] > role_of(created_by):
        raise PermissionDenied("You cannot create a key with a role above your own.")
    head = f"sk_{environment.slug}_"
    raw = head + "".join(secrets.choice(ID_ALPHABET) for _ in range(SECRET_LENGTH))
    key = ApiKey.objects.create(
        environment=environment,
        name=name,
        role=role,
        created_by=created_by,
        prefix=raw[: len(head) + PREFIX_SECRET_CHARS][
            : ApiKey._meta.get_field("prefix").max_length
        ],
        hashed_key=_hash(raw),
    )
    return key, raw


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None (unknown, malformed or revoked)."""
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.startswith("sk_"):
        return None
    digest = _hash(raw)
    key = ApiKey.objects.select_related("environment").filter(hashed_key=digest).first()
    # The lookup is by hash, so timing reveals nothing about the key; compare_digest keeps the
    # final check constant-time as well.
    if key is None or not hmac.compare_digest(key.hashed_key, digest):
        return None
    if key.revoked_at is not None:
        return None
    now = timezone.now()
    if key.last_used is None or now - key.last_used >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used=now)
        key.last_used = now
    return key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good; requests with it get 401 from then on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=api_key.revoked_at
        )
    return api_key
