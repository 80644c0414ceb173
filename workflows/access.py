"""How a back-office view reaches the workflow, run or system workflow its URL names: check the
role, then fetch the object scoped to the session's environment.

    workflow = workflow_for(request, workflow_id, capability="workflows.manage")

Every function checks the capability first (`backoffice.access.require`), so a role without it
gets 403 whether or not the object exists, and an object of another environment is the same 404
as one that does not exist: a URL never tells a user what another environment holds. The
builder's views sit behind `staff_member_required` and call the fetchers alone; the inspector's
and system workflows' views are wrapped in `backoffice.access.guarded`.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from backoffice.access import require
from workflows.inspector.selectors import run_for_environment
from workflows.models import Run, RunBatch, Workflow
from workflows.system.catalogue import BY_KEY, SystemWorkflow, system_workflows_for


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


def run_batch_for(
    request: HttpRequest, batch_id: int, *, capability: str = "runs.view"
) -> RunBatch:
    """A bulk restart or cancel (run batch) of the session's environment."""
    require(request, capability)
    batch = RunBatch.objects.filter(environment=request.environment, pk=batch_id).first()
    if batch is None:
        raise Http404("No such run batch in this environment.")
    return batch


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
