"""Test settings: the same as base, with fast hashing and mail kept in memory unless EMAIL_URL."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")

from config.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if not os.environ.get("EMAIL_URL"):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
BILLFLOW = {**BILLFLOW, "RETRY_BASE_SECONDS": 0.05, "RETRY_MAX_SECONDS": 0.5}  # noqa: F405
