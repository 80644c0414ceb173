"""Security plumbing: the Content-Security-Policy header and the admin login lockout.

* `ContentSecurityPolicyMiddleware` adds `settings.CONTENT_SECURITY_POLICY` to every response
  that does not set its own. Pages load scripts and styles as files only (htmx included), so the
  policy needs no 'unsafe-inline' for scripts.
* The admin login lockout is django-axes (settings `AXES_*`, from the `LOGIN_THROTTLE_*`
  variables): failed logins are counted per user name and per client address in the database,
  so every web worker and every restart shares them. What is ours: the user name it counts
  (`login_lockout_username`, the same name Django's login signs in with), the client's address
  behind trusted proxies (`client_ip`), the 429 page (`login_lockout_response`) and a backend
  that leaves scripts calling `authenticate()` without a request alone (`LoginLockoutBackend`).
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

CSP_HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and CSP_HEADER not in response:
            response[CSP_HEADER] = policy
        return response


# --- login lockout (django-axes) ---------------------------------------------------------------


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the address the trusted proxies saw.

    With `TRUSTED_PROXY_HOPS` = N (proxies in front of the app that append to X-Forwarded-For),
    the client is the N-th address from the right; anything further left was written by the
    client and cannot be trusted. `AXES_CLIENT_IP_CALLABLE`.
    """
    hops = settings.TRUSTED_PROXY_HOPS
    remote = (request.META.get("REMOTE_ADDR", "") or "").strip()
    if hops > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops and _is_ip(forwarded[-hops]):
            return forwarded[-hops]
    # axes stores the address in an IP column: no address (a request made in code) is None.
    return remote if _is_ip(remote) else None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def normalize_login_username(raw: object) -> str:
    """The user name Django's login form hands to the backends: stripped, then NFKC.

    `django.contrib.auth.forms.UsernameField` does exactly this (and `User.normalize_username`
    stores names the same way), so "ｔｖｉｃｔｉｍ" and " tvictim " sign in as "tvictim".
    """
    return unicodedata.normalize("NFKC", str(raw or "").strip())


def login_lockout_username(request: HttpRequest, credentials: dict | None = None) -> str:
    """The name failures are counted and locks are checked under (`AXES_USERNAME_CALLABLE`).

    A function of the name Django signs in with, so every spelling that signs in as one user
    shares that user's one counter; lower-cased on top (and stripped again: NFKC can make
    spaces), so case variants share it as well. Counting a little wider than signing in
    locks "Alice" together with "alice", which is safe; counting narrower would be a bypass.
    """
    field = settings.AXES_USERNAME_FORM_FIELD
    raw = credentials.get(field) if credentials else None
    if raw is None:  # axes asks without credentials only outside the login form
        raw = getattr(request, "POST", {}).get(field, "")
    return normalize_login_username(raw).strip().lower()[:255]


def login_lockout_seconds_left(request: HttpRequest, credentials: dict | None = None) -> int:
    """Seconds until the newest failure that counts toward the lock expires (an upper bound)."""
    handler = AxesProxyHandler.get_implementation()
    latest = None
    for attempts in handler.get_user_attempts(request, credentials):
        newest = attempts.aggregate(newest=Max("attempt_time"))["newest"]
        if newest is not None and (latest is None or newest > latest):
            latest = newest
    if latest is None:
        return 0
    left = (latest + settings.AXES_COOLOFF_TIME - timezone.now()).total_seconds()
    return max(0, math.ceil(left))


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The 429 page for a refused login (`AXES_LOCKOUT_CALLABLE`), with Retry-After."""
    left = login_lockout_seconds_left(request, credentials) or 1
    response = TemplateResponse(
        request,
        "admin/login_throttled.html",
        {
            "title": "Too many failed logins",
            "minutes": max(1, math.ceil(left / 60)),
            "site_header": "Billflow back office",
        },
        status=429,
    )
    response["Retry-After"] = str(left)
    # Returned from middleware, so nothing else would render it.
    return response.render()


class LoginLockoutBackend(AxesStandaloneBackend):
    """axes' backend: refuses a locked user name or address before any password is checked.

    A script calling `authenticate()` without a request has no client to count (axes would
    raise); it is left to the next backend, as before axes.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any):
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)
