"""System workflow settings: what happens inside their fixed steps, per environment.

Pages inside the admin's layout. Everyone who may see workflows (`workflows.view`) reads them;
Account Manager and above (`system_workflows.configure`) change them. Everything is scoped to
`request.environment`: the settings saved here apply to this environment's runs only.
Mutations are POST-only and redirect (they work without JavaScript).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from backoffice.access import guarded
from backoffice.roles import can
from workflows.access import system_workflow_for
from workflows.models import Run, Workflow
from workflows.system.catalogue import (
    STEP_LABELS,
    SYSTEM_WORKFLOWS,
    SystemWorkflow,
    SystemWorkflowError,
    default_email_source,
    email_preview,
    system_settings_get,
    system_settings_update,
    system_workflows_for,
    system_workflows_install,
)


def _steps(spec: SystemWorkflow, disabled: list[str]) -> list[dict]:
    return [
        {"id": step, "label": STEP_LABELS[step], "enabled": step not in disabled}
        for step in spec.steps
    ]


def _runs_url(workflow: Workflow, status: str = "") -> str:
    query = f"?workflow={workflow.pk}" + (f"&status={status}" if status else "")
    return reverse("runs:list") + query


@require_GET
@guarded("workflows.view")
def system_list(request: HttpRequest) -> HttpResponse:
    installed = system_workflows_for(environment=request.environment)
    rows = []
    for spec in SYSTEM_WORKFLOWS:
        workflow = installed.get(spec.key)
        row = system_settings_get(environment=request.environment, system_key=spec.key)
        rows.append(
            {
                "spec": spec,
                "workflow": workflow,
                "steps": _steps(spec, row.disabled_steps or []),
                "failed": (
                    Run.objects.filter(workflow=workflow, status=Run.Status.FAILED).count()
                    if workflow
                    else 0
                ),
                "runs_url": _runs_url(workflow) if workflow else "",
                "failed_url": _runs_url(workflow, "failed") if workflow else "",
            }
        )
    context = {
        **admin.site.each_context(request),
        "title": "System workflows",
        "rows": rows,
        "missing": len(installed) < len(SYSTEM_WORKFLOWS),
        "can_configure": can(request.user, "system_workflows.configure"),
    }
    return render(request, "workflows/system/list.html", context)


@require_POST
@guarded("system_workflows.configure")
def system_install(request: HttpRequest) -> HttpResponse:
    system_workflows_install(environment=request.environment)
    messages.success(request, "The system workflows of this environment are installed.")
    return redirect("system_workflows:list")


def _detail(
    request: HttpRequest,
    spec: SystemWorkflow,
    workflow: Workflow,
    values: dict,
    errors: dict,
    status: int = 200,
) -> HttpResponse:
    row = system_settings_get(environment=request.environment, system_key=spec.key)
    has_email = "email_customer" in spec.steps
    subject, body = email_preview(spec=spec, row=row) if has_email else ("", "")
    context = {
        **admin.site.each_context(request),
        "title": spec.name,
        "spec": spec,
        "workflow": workflow,
        "row": row,
        "values": values,
        "errors": errors,
        "has_email": has_email,
        "has_team": "notify_team" in spec.steps,
        "preview_subject": subject,
        "preview_body": body,
        "runs_url": _runs_url(workflow),
        "can_configure": can(request.user, "system_workflows.configure"),
    }
    return render(request, "workflows/system/detail.html", context, status=status)


@require_GET
@guarded("workflows.view")
def system_detail(request: HttpRequest, system_key: str) -> HttpResponse:
    spec, workflow = system_workflow_for(request, system_key)
    row = system_settings_get(environment=request.environment, system_key=spec.key)
    has_email = "email_customer" in spec.steps
    values = {
        "steps": _steps(spec, row.disabled_steps or []),
        "email_subject": row.email_subject
        or (default_email_source(spec, "subject").strip() if has_email else ""),
        "email_body": row.email_body
        or (default_email_source(spec, "body").strip() if has_email else ""),
        "team_recipients": ", ".join(row.team_recipients or []),
    }
    return _detail(request, spec, workflow, values, {})


def _recipients(raw: str) -> list[str]:
    return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]


@require_POST
@guarded("system_workflows.configure")
def system_settings_save(request: HttpRequest, system_key: str) -> HttpResponse:
    spec, workflow = system_workflow_for(request, system_key)
    enabled = request.POST.getlist("enabled")
    subject = request.POST.get("email_subject", "")
    body = request.POST.get("email_body", "")
    recipients = _recipients(request.POST.get("team_recipients", ""))
    try:
        system_settings_update(
            environment=request.environment,
            system_key=spec.key,
            enabled_steps=enabled,
            email_subject=subject,
            email_body=body,
            team_recipients=recipients,
            updated_by=request.user,
        )
    except SystemWorkflowError as exc:
        values = {
            "steps": [
                {"id": s, "label": STEP_LABELS[s], "enabled": s in enabled} for s in spec.steps
            ],
            "email_subject": subject,
            "email_body": body,
            "team_recipients": ", ".join(recipients),
        }
        return _detail(request, spec, workflow, values, exc.errors, status=400)
    messages.success(request, f"Settings of {spec.name} saved.")
    return redirect("system_workflows:detail", system_key=spec.key)
