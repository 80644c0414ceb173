"""Role checks for back-office views, decided in one place (`backoffice.roles.can`).

    @guarded("runs.view")                 # anonymous: the login page; no capability: 403
    def run_page(request, run_id):
        run = run_for(request, run_id)    # workflows.access: another environment's run: 404

A role without the capability gets 403 before any object is fetched, so it learns nothing about
what exists. Fetching the URL's object belongs to the app that owns it (`workflows.access`,
`webhooks.access`): each fetcher calls `require` first, then looks only in the session's
environment.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from backoffice.roles import can

View = Callable[..., HttpResponse]


def require(request: HttpRequest, capability: str) -> None:
    """403 unless the user's role has `capability`."""
    if not can(request.user, capability):
        raise PermissionDenied(f"Your role does not allow {capability}.")


def guarded(capability: str) -> Callable[[View], View]:
    """Wrap a view: anonymous users go to the admin login, a role without `capability` gets
    403, both before the view (or any fetch) runs, so every view denies the same way."""

    def wrap(view: View) -> View:
        @wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            require(request, capability)
            return view(request, *args, **kwargs)

        return inner

    return wrap
