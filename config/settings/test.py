"""Test settings: the same as base, with fast hashing and mail kept in memory unless EMAIL_URL."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")

from config.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if not os.environ.get("EMAIL_URL"):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
BILLFLOW = {  # noqa: F405
    **BILLFLOW,  # noqa: F405
    "RETRY_BASE_SECONDS": 0.05,
    "RETRY_MAX_SECONDS": 0.5,
    # A hundredth of the minute an outage is ridden out for, unless a worker test sets it.
    "OUTAGE_RETRY_SECONDS": float(os.environ.get("BILLFLOW_OUTAGE_RETRY_SECONDS", "0.6")),
}
