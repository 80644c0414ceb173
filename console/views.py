from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing.models import Environment
from console.environments import switch_environment

# Admin views of one object: after a switch that object is not in the new environment.
OBJECT_VIEW_SUFFIXES = ("_change", "_delete", "_history")


def _after_switch_url(target: str) -> str:
    """Where to go after switching: the same page, or its list when it showed one object."""
    try:
        match = resolve(target.split("?", 1)[0])
    except Resolver404:
        return target
    if match.namespace == "admin" and match.url_name.endswith(OBJECT_VIEW_SUFFIXES):
        changelist = match.url_name.rsplit("_", 1)[0] + "_changelist"
        try:
            return reverse(f"admin:{changelist}")
        except NoReverseMatch:
            return reverse("admin:index")
    if match.namespace != "admin" and (match.args or match.kwargs):
        # Another page about one object (a run, a workflow): it is not in the new environment.
        return reverse("admin:index")
    return target


@require_POST
@staff_member_required
def environment_switch(request: HttpRequest) -> HttpResponse:
    env = get_object_or_404(Environment, slug=request.POST.get("environment", ""))
    switch_environment(request.session, env)
    target = request.POST.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/admin/"
    return redirect(_after_switch_url(target))
