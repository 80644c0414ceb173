"""The one way a back-office view reaches what its URL names: check the role, then fetch the
object scoped to the session's environment.

    @guarded("runs.view")                 # anonymous: the login page; no capability: 403
    def run_page(request, run_id):
        run = run_for(request, run_id)    # another environment's run, or none: 404

    workflow = workflow_for(request, workflow_id, capability="workflows.manage")

Every function checks the capability first (`backoffice.roles.can`, where role checks are
decided), so a role without it gets 403 whether or not the object exists, and an object of
another environment is the same 404 as one that does not exist: a URL never tells a user what
another environment holds. The builder's views sit behind `staff_member_required` and call the
fetchers alone; the inspector, system-workflow and webhook views are wrapped in `guarded`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from backoffice.roles import can
from billing.errors import NotFoundError
from webhooks import selectors as webhook_selectors
from webhooks.models import WebhookEndpoint
from workflows.inspector.selectors import run_for_environment
from workflows.models import Run, Workflow
from workflows.system.catalogue import BY_KEY, SystemWorkflow, system_workflows_for

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


def workflow_for(
    request: HttpRequest, workflow_id: Any, *, capability: str = "workflows.view"
) -> Workflow:
    """An automation workflow of the session's environment (not deleted), with its versions."""
    require(request, capability)
    return get_object_or_404(
        Workflow.objects.select_related("draft_version", "published_version"),
        pk=workflow_id,
        environment=request.environment,
        deleted_at__isnull=True,
        kind=Workflow.Kind.AUTOMATION,
    )


def any_workflow_for(
    request: HttpRequest, workflow_id: Any, *, capability: str = "workflows.view"
) -> Workflow:
    """A workflow of any kind (automation or system) of the session's environment, as the run
    filters and notification subscriptions name it; an id that is not a number is a 404."""
    require(request, capability)
    text = str(workflow_id)
    workflow = (
        Workflow.objects.filter(environment=request.environment, pk=text).first()
        if text.isdigit()
        else None
    )
    if workflow is None:
        raise Http404("No such workflow in this environment.")
    return workflow


def run_for(request: HttpRequest, run_id: int, *, capability: str = "runs.view") -> Run:
    """A run of the session's environment, with its workflow and version."""
    require(request, capability)
    run = run_for_environment(environment=request.environment, run_id=run_id)
    if run is None:
        raise Http404("No such run in this environment.")
    return run


def system_workflow_for(
    request: HttpRequest, system_key: str, *, capability: str = "workflows.view"
) -> tuple[SystemWorkflow, Workflow]:
    """A system workflow's fixed spec and its workflow installed in the session's environment."""
    require(request, capability)
    spec = BY_KEY.get(system_key)
    workflow = system_workflows_for(environment=request.environment).get(system_key)
    if spec is None or workflow is None:
        raise Http404("No such system workflow in this environment.")
    return spec, workflow


def endpoint_for(
    request: HttpRequest, endpoint_id: str, *, capability: str = "webhooks.manage"
) -> WebhookEndpoint:
    """A webhook endpoint of the session's environment."""
    require(request, capability)
    try:
        return webhook_selectors.get_endpoint(request.environment, endpoint_id)
    except NotFoundError:
        raise Http404("No such webhook endpoint in this environment.") from None
