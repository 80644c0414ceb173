from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from backoffice.environments import switch_environment
from billing.models import Environment


@require_POST
@staff_member_required
def environment_switch(request: HttpRequest) -> HttpResponse:
    env = get_object_or_404(Environment, slug=request.POST.get("environment", ""))
    switch_environment(request.session, env)
    target = request.POST.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/admin/"
    return redirect(target)
