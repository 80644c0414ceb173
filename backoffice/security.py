"""Security plumbing: the Content-Security-Policy header and the admin login throttle.

* `ContentSecurityPolicyMiddleware` adds `settings.CONTENT_SECURITY_POLICY` to every response
  that does not set its own. Pages load scripts and styles as files only (htmx included), so the
  policy needs no 'unsafe-inline' for scripts.
* `LoginThrottleMiddleware` answers 429 to an admin login POST for a (username, client address)
  that failed `LOGIN_THROTTLE["MAX_FAILURES"]` times within `WINDOW_SECONDS`, for
  `LOCKOUT_SECONDS`. Failures are counted from Django's `user_login_failed` signal, and a
  successful login clears the count. The counters are database rows (`LoginThrottle`), so every
  web worker and every restart shares them.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from backoffice.models import LoginThrottle

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


# --- login throttle ----------------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address the trusted proxies saw.

    With `LOGIN_THROTTLE["TRUSTED_PROXY_HOPS"]` = N (proxies in front of the app that append to
    X-Forwarded-For), the client is the N-th address from the right; anything further left was
    written by the client and cannot be trusted.
    """
    hops = settings.LOGIN_THROTTLE["TRUSTED_PROXY_HOPS"]
    remote = request.META.get("REMOTE_ADDR", "") or ""
    if hops > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops][:45]
    return remote[:45]


def _username(raw: object) -> str:
    # Lower-cased: "Alice" and "alice" share one counter, so case variants buy no extra tries.
    return str(raw or "").strip().lower()[:150]


def login_throttle_seconds_left(*, username: str, ip: str) -> int:
    """Seconds until (username, ip) may try again; 0 when it is not locked."""
    row = LoginThrottle.objects.filter(username=_username(username), ip=ip).first()
    if row is None or row.locked_until is None:
        return 0
    left = (row.locked_until - timezone.now()).total_seconds()
    return max(0, math.ceil(left))


def login_failure_record(*, username: str, ip: str) -> LoginThrottle:
    """Counts one failed login; locks the pair once it reaches the limit within the window."""
    config = settings.LOGIN_THROTTLE
    window = timedelta(seconds=config["WINDOW_SECONDS"])
    now = timezone.now()
    name = _username(username)
    with transaction.atomic():
        try:
            with transaction.atomic():
                row, _ = LoginThrottle.objects.select_for_update().get_or_create(
                    username=name,
                    ip=ip,
                    defaults={"window_started": now, "updated": now},
                )
        except IntegrityError:  # a concurrent first failure made the row first
            row = LoginThrottle.objects.select_for_update().get(username=name, ip=ip)
        expired_lock = row.locked_until is not None and row.locked_until <= now
        if expired_lock or now - row.window_started > window:
            row.failures, row.window_started, row.locked_until = 0, now, None
        # The row is locked (select_for_update) until commit, so a plain increment is safe.
        row.failures += 1
        row.updated = now
        row.save()
        if row.failures >= config["MAX_FAILURES"] and row.locked_until is None:
            row.locked_until = now + timedelta(seconds=config["LOCKOUT_SECONDS"])
            row.save(update_fields=["locked_until"])
    # Rows nobody touched for longer than a window and a lockout tell nothing any more.
    stale = now - window - timedelta(seconds=config["LOCKOUT_SECONDS"])
    LoginThrottle.objects.filter(updated__lt=stale).delete()
    return row


def login_success_record(*, username: str, ip: str) -> None:
    LoginThrottle.objects.filter(username=_username(username), ip=ip).delete()


def _on_login_failed(sender, credentials: dict, request: HttpRequest | None = None, **kw) -> None:
    if request is None:  # a script calling authenticate() directly: no client to throttle
        return
    login_failure_record(username=credentials.get("username", ""), ip=client_ip(request))


def _on_logged_in(sender, request: HttpRequest | None, user, **kw) -> None:
    if request is None:
        return
    login_success_record(username=user.get_username(), ip=client_ip(request))


def connect_signals() -> None:
    """Called from BackofficeConfig.ready()."""
    user_login_failed.connect(_on_login_failed, dispatch_uid="backoffice.login_throttle.failed")
    user_logged_in.connect(_on_logged_in, dispatch_uid="backoffice.login_throttle.ok")


class LoginThrottleMiddleware:
    """Refuses admin login POSTs of a locked (username, address) before any password check."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path == reverse("admin:login"):
            username = request.POST.get("username", "")
            left = login_throttle_seconds_left(username=username, ip=client_ip(request))
            if left:
                minutes = max(1, math.ceil(left / 60))
                response = TemplateResponse(
                    request,
                    "admin/login_throttled.html",
                    {
                        "title": "Too many failed logins",
                        "minutes": minutes,
                        "site_header": "Billflow back office",
                    },
                    status=429,
                )
                response["Retry-After"] = str(left)
                # Returned from middleware, so nothing else would render it.
                return response.render()
        return self.get_response(request)
