"""The visual builder: the workflows list, the canvas, step editing, versions, test runs.

Function-based views inside the admin's layout. Every view starts with `workflow_for` (or
`require`, both in backoffice/access.py), which checks the role and fetches the workflow scoped
to `request.environment`: another environment's workflow is a 404, a missing capability a 403.
Mutating views are POST only. With HTMX a view answers with the region it changed
(`page.html#partial`, plus out-of-band swaps of the canvas and the header); without it, a full
page or a redirect.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import RequestDataTooBig
from django.db.models import Count, OuterRef, Q, Subquery
from django.forms.utils import ErrorDict
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from backoffice.access import require
from backoffice.roles import can
from billing.errors import BillingError
from billing.events import event_envelope
from billing.models import Environment, Event
from workflows.access import workflow_for
from workflows.builder.canvas import (
    all_nodes,
    canvas_guardrails,
    canvas_nodes,
    canvas_trigger,
    find_node,
)
from workflows.builder.draft_edits import copy_step, draft_step_insert, draft_step_update
from workflows.builder.forms import (
    AddStepForm,
    ImportForm,
    ManualInputForm,
    TriggerForm,
    WorkflowCreateForm,
    action_groups,
    import_too_large_message,
    new_step,
    step_form,
)
from workflows.builder.guardrails_form import GuardrailsForm
from workflows.builder.picker import available_fields
from workflows.builder.test_run import workflow_test_run
from workflows.definition import event_types, walk
from workflows.definition.rows import version_definition
from workflows.definition.validation import DefinitionInvalid, ValidationError, validate_definition
from workflows.models import Run, Workflow, WorkflowVersion
from workflows.services import (
    WorkflowError,
    workflow_activate,
    workflow_create,
    workflow_deactivate,
    workflow_delete,
    workflow_duplicate,
    workflow_publish,
    workflow_update,
)

VIEW = "workflows.view"
MANAGE = "workflows.manage"
BUILDER = "workflows/builder.html"


# --- access ---


def _editing_version(workflow: Workflow) -> WorkflowVersion:
    version = workflow.draft_version or workflow.published_version
    if version is None:
        raise Http404("This workflow has no version.")
    return version


# --- rendering ---


def _admin_context(request: HttpRequest, title: str) -> dict:
    return {**admin.site.each_context(request), "title": title}


def _errors_by_step(errors: list[ValidationError]) -> dict[str, list[str]]:
    by_step: dict[str, list[str]] = {}
    for error in errors:
        by_step.setdefault(error.step_id or "__workflow__", []).append(error.message)
    return by_step


def _attach(form: Any, errors: list[ValidationError], definition: dict, step_id: str) -> None:
    """Put the engine's validation errors of `step_id` next to the fields they name."""
    # The step's field path in validation errors ("steps[0].paths[1].steps[0]").
    prefix = walk.field_path(definition, step_id) or ""
    for error in errors:
        if error.step_id != step_id:
            continue
        suffix = error.field[len(prefix) + 1 :] if error.field.startswith(prefix) else ""
        form.attach(suffix, error.message)


def _builder_context(
    request: HttpRequest,
    workflow: Workflow,
    definition: dict,
    *,
    errors: list[ValidationError] | None = None,
    step_runs: dict | None = None,
    selected: str = "",
    panel: str = "",
    **extra: Any,
) -> dict:
    if errors is None:
        errors = validate_definition(definition, environment=request.environment)
    editable = can(request.user, MANAGE)
    base = reverse("workflows:builder", args=[workflow.pk])
    nodes = canvas_nodes(
        definition, step_runs=step_runs, step_url=lambda step_id: f"{base}steps/{step_id}/"
    )
    by_step = _errors_by_step(errors)
    _mark_errors(nodes, by_step)
    # The admin's layout (sidebar, header) is drawn only on full pages: HTMX swaps regions.
    layout = {"title": workflow.name} if request.htmx else _admin_context(request, workflow.name)
    return {
        **layout,
        "workflow": workflow,
        "wf_url": base,
        "picker_url": f"{base}picker/",
        "definition": definition,
        "trigger": canvas_trigger(definition),
        "nodes": nodes,
        "errors": errors,
        "workflow_errors": by_step.get("__workflow__", []),
        "editable": editable and step_runs is None,
        "can_manage": editable,
        "add_url": f"{base}steps/add/",
        "trigger_url": f"{base}trigger/",
        "guardrails": canvas_guardrails(definition),
        "guardrails_url": f"{base}guardrails/",
        "selected": selected,
        "panel": panel,
        "step_count": walk.count(definition),
        "step_limit": settings.BILLFLOW["MAX_STEPS_PER_WORKFLOW"],
        "is_sandbox": request.environment.kind == Environment.Kind.SANDBOX,
        **extra,
    }


def _mark_errors(nodes: list, by_step: dict[str, list[str]]) -> None:
    for node in all_nodes(nodes):
        node.errors = by_step.get(node.id, [])


def _respond(
    request: HttpRequest, context: dict, *, oob: bool = False, card_only: bool = False
) -> HttpResponse:
    """The full builder page, or with HTMX the panel (and, after a change, the canvas and the
    header out of band; only the step's card when nothing else on the canvas can change)."""
    if not request.htmx:
        return render(request, BUILDER, context)
    html = render_to_string(f"{BUILDER}#panel", context, request=request)
    if oob:
        context = {**context, "oob": True}
        if card_only and context.get("node") is not None:
            card = {**context, "card_oob": True}
            html += render_to_string("workflows/_canvas_card.html", card, request=request)
        else:
            html += render_to_string(f"{BUILDER}#canvas", context, request=request)
        html += render_to_string(f"{BUILDER}#header", context, request=request)
    return HttpResponse(html)


def _builder_url(workflow: Workflow, step_id: str = "") -> str:
    if step_id:
        return reverse("workflows:step", args=[workflow.pk, step_id])
    return reverse("workflows:builder", args=[workflow.pk])


# --- the workflows list ---


def _list_context(request: HttpRequest, **extra: Any) -> dict:
    runs = Run.objects.filter(workflow=OuterRef("pk"), dry_run=False).order_by("-created", "-id")
    workflows = list(
        Workflow.objects.filter(
            environment=request.environment,
            deleted_at__isnull=True,
            kind=Workflow.Kind.AUTOMATION,
        )
        .select_related("draft_version", "published_version")
        .annotate(
            run_count=Count("runs", filter=Q(runs__dry_run=False)),
            failed_count=Count("runs", filter=Q(runs__status=Run.Status.FAILED)),
            last_run_status=Subquery(runs.values("status")[:1]),
            last_run_at=Subquery(runs.values("created")[:1]),
        )
        .order_by("name", "id")
    )
    active = sum(1 for w in workflows if w.status == Workflow.Status.ACTIVE)
    return {
        **_admin_context(request, "Workflows"),
        "workflows": workflows,
        "active_count": active,
        "active_limit": settings.BILLFLOW["MAX_ACTIVE_WORKFLOWS"],
        "total_count": len(workflows),
        "total_limit": settings.BILLFLOW["MAX_WORKFLOWS"],
        "can_manage": can(request.user, MANAGE),
        "create_form": WorkflowCreateForm(),
        "import_form": ImportForm(),
        **extra,
    }


def _list_response(request: HttpRequest, **extra: Any) -> HttpResponse:
    if request.htmx:
        return render(request, "workflows/list.html#table", _list_context(request, **extra))
    return redirect("workflows:list")


@require_GET
@staff_member_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    require(request, VIEW)
    template = "workflows/list.html#table" if request.htmx else "workflows/list.html"
    return render(request, template, _list_context(request))


@require_POST
@staff_member_required
def workflow_create_view(request: HttpRequest) -> HttpResponse:
    require(request, MANAGE)
    form = WorkflowCreateForm(request.POST)
    if not form.is_valid():
        return _list_form_error(request, create_form=form)
    try:
        workflow = workflow_create(
            environment=request.environment,
            definition=form.definition(),
            created_by=request.user,
            allow_invalid=True,
        )
    except (WorkflowError, DefinitionInvalid) as exc:
        form.add_error(None, getattr(exc, "message", str(exc)))
        return _list_form_error(request, create_form=form)
    return _to(request, _builder_url(workflow))


def _list_form_error(request: HttpRequest, **forms_: Any) -> HttpResponse:
    template = "workflows/list.html#table" if request.htmx else "workflows/list.html"
    return render(request, template, _list_context(request, **forms_), status=400)


def _to(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@csrf_exempt  # checked in `_workflow_import`, once the body is known to fit (see below)
@require_POST
@staff_member_required
def workflow_import(request: HttpRequest) -> HttpResponse:
    require(request, MANAGE)
    try:
        request.POST  # noqa: B018 -- parses the body, so a too-large one is caught here
    except RequestDataTooBig:
        # Pasted text over DATA_UPLOAD_MAX_MEMORY_SIZE: the CSRF middleware would read the body
        # first and answer a bare 400 page. Answered here instead, before the CSRF check, with
        # the form error; nothing is changed, and this page is all anyone gets back.
        form = ImportForm()
        form._errors = ErrorDict(
            text=form.error_class([import_too_large_message("The pasted text")])
        )
        return _list_form_error(request, import_form=form)
    return _workflow_import(request)


@csrf_protect
def _workflow_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _list_form_error(request, import_form=form)
    definition = form.cleaned_data["definition"]
    try:
        workflow = workflow_create(
            environment=request.environment,
            definition=definition,
            created_by=request.user,
            allow_invalid=True,
        )
    except DefinitionInvalid as exc:
        for error in exc.errors[:10]:
            form.add_error(None, str(error))
        return _list_form_error(request, import_form=form)
    except WorkflowError as exc:
        form.add_error(None, exc.message)
        return _list_form_error(request, import_form=form)
    messages.success(request, f"Imported “{workflow.name}” as a draft.")
    return _to(request, _builder_url(workflow))


@require_GET
@staff_member_required
def workflow_export(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id)
    definition = version_definition(_editing_version(workflow))
    response = JsonResponse(definition, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.pk}.json"'
    return response


def _service_call(
    request: HttpRequest, workflow: Workflow, call: Callable[[], Any], done: str
) -> HttpResponse:
    """Run a state-changing service; report success or the reason it was refused."""
    try:
        call()
    except DefinitionInvalid as exc:
        count = len(exc.errors)
        messages.error(
            request,
            f"“{workflow.name}” has {count} problem{'s' if count != 1 else ''} to fix first: "
            + "; ".join(str(e) for e in exc.errors[:3]),
        )
    except WorkflowError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    if request.POST.get("next") == "builder":
        if request.htmx:
            return HttpResponseClientRedirect(_builder_url(workflow))
        return redirect(_builder_url(workflow))
    return _list_response(request)


@require_POST
@staff_member_required
def workflow_duplicate_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    return _service_call(
        request,
        workflow,
        lambda: workflow_duplicate(workflow=workflow, created_by=request.user),
        f"Duplicated “{workflow.name}” as a new draft.",
    )


@require_POST
@staff_member_required
def workflow_publish_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    return _service_call(
        request,
        workflow,
        lambda: workflow_publish(workflow=workflow, published_by=request.user),
        f"Published “{workflow.name}”: new runs use this version.",
    )


@require_POST
@staff_member_required
def workflow_activate_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    return _service_call(
        request,
        workflow,
        lambda: workflow_activate(workflow=workflow, activated_by=request.user),
        f"Activated “{workflow.name}”.",
    )


@require_POST
@staff_member_required
def workflow_deactivate_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    return _service_call(
        request,
        workflow,
        lambda: workflow_deactivate(workflow=workflow, deactivated_by=request.user),
        f"Deactivated “{workflow.name}”: runs in flight finish on their version.",
    )


@require_http_methods(["GET", "POST"])
@staff_member_required
def workflow_delete_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    if request.method == "POST":
        try:
            workflow_delete(workflow=workflow, deleted_by=request.user)
        except WorkflowError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Deleted “{workflow.name}”.")
        return _to(request, reverse("workflows:list"))
    context = {
        **_admin_context(request, f"Delete “{workflow.name}”?"),
        "workflow": workflow,
        "run_count": Run.objects.filter(workflow=workflow).count(),
    }
    template = "workflows/delete.html#confirm" if request.htmx else "workflows/delete.html"
    return render(request, template, context)


# --- the canvas and the panel ---


@require_GET
@staff_member_required
def builder(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id)
    definition = version_definition(_editing_version(workflow))
    context = _builder_context(request, workflow, definition)
    template = f"{BUILDER}#canvas" if request.htmx else BUILDER
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@staff_member_required
def trigger_edit(request: HttpRequest, workflow_id: int) -> HttpResponse:
    capability = MANAGE if request.method == "POST" else VIEW
    workflow = workflow_for(request, workflow_id, capability=capability)
    definition = version_definition(_editing_version(workflow))
    if request.method == "GET":
        form = TriggerForm(definition=definition)
        return _respond(
            request,
            _builder_context(
                request, workflow, definition, panel="trigger", form=form, selected="__trigger__"
            ),
        )
    form = TriggerForm(request.POST, definition=definition)
    if _editor_command(request, form.conditions) or not form.is_valid():
        context = _builder_context(
            request, workflow, definition, panel="trigger", form=form, selected="__trigger__"
        )
        return _respond(request, context)
    new_definition = form.to_definition()
    if form.conditions.errors or form.conditions.refused:
        return _respond(
            request,
            _builder_context(request, workflow, definition, panel="trigger", form=form),
        )
    try:
        workflow = workflow_update(
            workflow=workflow,
            definition=new_definition,
            updated_by=request.user,
            allow_invalid=True,
        )
    except DefinitionInvalid as exc:
        _attach_root(form, exc.errors)
        return _respond(
            request, _builder_context(request, workflow, definition, panel="trigger", form=form)
        )
    errors = validate_definition(new_definition, environment=request.environment)
    _attach_root(form, errors)
    context = _builder_context(
        request,
        workflow,
        new_definition,
        errors=errors,
        panel="trigger",
        form=form,
        selected="__trigger__",
        saved=True,
    )
    if not request.htmx and not form.errors and not form.conditions.errors:
        return redirect(reverse("workflows:trigger", args=[workflow.pk]))
    return _respond(request, context, oob=True)


@require_http_methods(["GET", "POST"])
@staff_member_required
def guardrails_edit(request: HttpRequest, workflow_id: int) -> HttpResponse:
    """The workflow's money guardrails and circuit breaker (docs/workflows.md)."""
    capability = MANAGE if request.method == "POST" else VIEW
    workflow = workflow_for(request, workflow_id, capability=capability)
    definition = version_definition(_editing_version(workflow))
    panel = {"panel": "guardrails", "selected": "__guardrails__"}
    if request.method == "GET":
        form = GuardrailsForm(definition=definition)
        return _respond(
            request, _builder_context(request, workflow, definition, form=form, **panel)
        )
    form = GuardrailsForm(request.POST, definition=definition)
    if not form.is_valid():
        return _respond(
            request, _builder_context(request, workflow, definition, form=form, **panel)
        )
    new_definition = form.to_definition()
    workflow = workflow_update(
        workflow=workflow, definition=new_definition, updated_by=request.user, allow_invalid=True
    )
    if not request.htmx:
        return redirect(reverse("workflows:guardrails", args=[workflow.pk]))
    context = _builder_context(request, workflow, new_definition, form=form, saved=True, **panel)
    return _respond(request, context, oob=True)


def _attach_root(form: TriggerForm, errors: list[ValidationError]) -> None:
    for error in errors:
        if not error.step_id and (error.field.startswith("trigger") or error.field == "name"):
            form.attach(error.field, error.message)


def _editor_command(request: HttpRequest, *editors: Any) -> bool:
    """Handle "add a condition row/group" buttons: re-render, save nothing."""
    command = request.POST.get("_editor", "")
    if not command:
        return False
    prefix, _, action = command.partition(":")
    for editor in editors:
        if editor.prefix != prefix:
            continue
        if action == "group":
            editor.add_group()
        elif action.startswith("row"):
            editor.add_row(int(action[3:] or 0))
    return True


@require_http_methods(["GET", "POST"])
@staff_member_required
def step_add(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    definition = version_definition(_editing_version(workflow))
    source = request.POST if request.method == "POST" else request.GET
    form = AddStepForm(
        source if request.method == "POST" else None,
        initial={
            "parent": source.get("parent", ""),
            "path": source.get("path", ""),
            "position": source.get("position", len(definition.get("steps") or [])),
        },
    )
    if request.method == "GET" or not form.is_valid():
        context = _builder_context(
            request,
            workflow,
            definition,
            panel="add",
            form=form,
            action_groups=action_groups(),
            insert_parent=source.get("parent", ""),
        )
        return _respond(request, context)
    data = form.cleaned_data
    step = new_step(data["kind"], data.get("action") or "")
    try:
        step = draft_step_insert(
            workflow=workflow,
            step=step,
            parent=data.get("parent") or "",
            path_index=form.path_index,
            position=data["position"],
            user=request.user,
        )
    except WorkflowError as exc:
        form.add_error(None, exc.message)
        context = _builder_context(
            request,
            workflow,
            definition,
            panel="add",
            form=form,
            action_groups=action_groups(),
        )
        return _respond(request, context)
    if not request.htmx:
        return redirect(_builder_url(workflow, step["id"]))
    # The rows now hold what the definition in memory gets here: no need to read them back.
    walk.insert(
        definition,
        step,
        parent=data.get("parent") or None,
        path=form.path_index,
        index=data["position"],
    )
    if workflow.draft_version_id is None:  # the first edit after a publish made a draft
        workflow = workflow_for(request, workflow.pk, capability=MANAGE)
    return _step_panel(request, workflow, definition, step["id"], oob=True, added=True)


def _place(definition: dict, step_id: str) -> walk.Place:
    place = walk.find(definition, step_id)
    if place is None:
        raise Http404(f"There is no step '{step_id}' in this workflow.")
    return place


def _find_step(definition: dict, step_id: str) -> dict:
    return _place(definition, step_id).step


def _trigger_event(definition: dict) -> str:
    """The event type of an event-triggered workflow ("" otherwise): it types conditions."""
    trigger = definition.get("trigger") or {}
    return str(trigger.get("event") or "") if trigger.get("type") == "event" else ""


def _step_panel(
    request: HttpRequest,
    workflow: Workflow,
    definition: dict,
    step_id: str,
    *,
    form: Any = None,
    errors: list[ValidationError] | None = None,
    oob: bool = False,
    card_only: bool = False,
    **extra: Any,
) -> HttpResponse:
    step = _find_step(definition, step_id)
    if errors is None:
        errors = validate_definition(definition, environment=request.environment)
    if form is None:
        form = step_form(step, event=_trigger_event(definition))
        if errors:
            # Show the engine's errors on a fresh form too: a bound-looking form without data.
            form._errors = ErrorDict()
            form.cleaned_data = {}
            _attach(form, errors, definition, step_id)
    context = _builder_context(
        request,
        workflow,
        definition,
        errors=errors,
        panel="step",
        step=step,
        form=form,
        selected=step_id,
        node=None,
        **extra,
    )
    context["node"] = find_node(context["nodes"], step_id)
    context["step_url"] = f"{context['wf_url']}steps/{step_id}/"
    return _respond(request, context, oob=oob, card_only=card_only)


@require_http_methods(["GET", "POST"])
@staff_member_required
def step_edit(request: HttpRequest, workflow_id: int, step_id: str) -> HttpResponse:
    capability = MANAGE if request.method == "POST" else VIEW
    workflow = workflow_for(request, workflow_id, capability=capability)
    definition = version_definition(_editing_version(workflow))
    if request.method == "GET":
        return _step_panel(request, workflow, definition, step_id)
    step = _find_step(definition, step_id)
    form = step_form(step, request.POST, event=_trigger_event(definition))
    editors = [form.conditions] if hasattr(form, "conditions") else []
    if step["type"] == "branch":
        editors = [p["editor"] for p in form.paths]
        if request.POST.get("_editor") == "path:add":
            form.is_valid()
            form.add_path()
            return _step_panel(request, workflow, definition, step_id, form=form)
    if _editor_command(request, *editors) or request.POST.get("_refresh"):
        form.is_valid()
        return _step_panel(request, workflow, definition, step_id, form=form)
    if not form.is_valid():
        return _step_panel(request, workflow, definition, step_id, form=form)
    new = form.to_step()
    if form.errors or any(e.errors or e.refused for e in editors):
        return _step_panel(request, workflow, definition, step_id, form=form)
    step.clear()
    step.update(new)  # the definition now holds the edited step
    try:
        if new["type"] == "branch":
            workflow = workflow_update(
                workflow=workflow,
                definition=definition,
                updated_by=request.user,
                allow_invalid=True,
            )
        else:
            draft_step_update(workflow=workflow, step=new, user=request.user)
    except DefinitionInvalid as exc:
        _attach(form, exc.errors, definition, step_id)
        return _step_panel(request, workflow, definition, step_id, form=form)
    except WorkflowError as exc:
        form.step_errors.append(exc.message)
        return _step_panel(request, workflow, definition, step_id, form=form)
    errors = validate_definition(definition, environment=request.environment)
    _attach(form, errors, definition, step_id)
    if not request.htmx and not form.errors:
        messages.success(request, "Saved.")
        return redirect(_builder_url(workflow, step_id))
    # A saved action, condition or loop changes its own card only; a branch redraws its paths.
    return _step_panel(
        request,
        workflow,
        definition,
        step_id,
        form=form,
        errors=errors,
        oob=True,
        card_only=new["type"] != "branch",
        saved=True,
    )


def _structural_edit(
    request: HttpRequest,
    workflow_id: int,
    step_id: str,
    change: Callable[[dict, walk.Place], str],
) -> HttpResponse:
    """Move, delete: change the definition in memory and write it as the draft."""
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    definition = version_definition(_editing_version(workflow))
    selected = change(definition, _place(definition, step_id))
    workflow = workflow_update(
        workflow=workflow, definition=definition, updated_by=request.user, allow_invalid=True
    )
    if not request.htmx:
        return redirect(_builder_url(workflow, selected))
    if selected:
        return _step_panel(request, workflow, definition, selected, oob=True)
    return _respond(request, _builder_context(request, workflow, definition), oob=True)


@require_POST
@staff_member_required
def step_move(request: HttpRequest, workflow_id: int, step_id: str) -> HttpResponse:
    direction = -1 if request.POST.get("direction") == "up" else 1

    def move(definition: dict, place: walk.Place) -> str:
        # One place up or down in its own list; at either end it stays.
        target = place.index + direction
        if 0 <= target < len(place.container):
            walk.move(
                definition,
                step_id,
                parent=place.parent["id"] if place.parent else None,
                path=place.path_index,
                index=target,
            )
        return step_id

    return _structural_edit(request, workflow_id, step_id, move)


@require_POST
@staff_member_required
def step_delete(request: HttpRequest, workflow_id: int, step_id: str) -> HttpResponse:
    def delete(definition: dict, place: walk.Place) -> str:
        walk.remove(definition, step_id)
        return ""

    return _structural_edit(request, workflow_id, step_id, delete)


@require_POST
@staff_member_required
def step_duplicate(request: HttpRequest, workflow_id: int, step_id: str) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    definition = version_definition(_editing_version(workflow))
    place = _place(definition, step_id)
    try:
        copy = draft_step_insert(
            workflow=workflow,
            step=copy_step(place.step, definition),
            parent=place.parent["id"] if place.parent else "",
            path_index=place.path_index,
            position=place.index + 1,  # right after the original, in the same list
            user=request.user,
        )
    except WorkflowError as exc:
        messages.error(request, exc.message)
        if not request.htmx:
            return redirect(_builder_url(workflow, step_id))
        return _step_panel(request, workflow, definition, step_id, refused=exc.message)
    workflow.refresh_from_db()
    definition = version_definition(_editing_version(workflow))
    if not request.htmx:
        return redirect(_builder_url(workflow, copy["id"]))
    return _step_panel(request, workflow, definition, copy["id"], oob=True)


@require_GET
@staff_member_required
def picker(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id)
    definition = version_definition(_editing_version(workflow))
    step_id = request.GET.get("step", "")
    parent = request.GET.get("parent", "")
    position = request.GET.get("position", "")
    fields = available_fields(
        definition,
        step_id=step_id,
        parent=parent,
        # Without a step (trigger conditions) only the trigger's fields are in scope.
        position=int(position) if position.isdigit() else (None if step_id or parent else 0),
        query=request.GET.get("q", ""),
    )
    extra = {
        "fields": fields,
        "picker_bare": bool(request.GET.get("bare")),
        "picker_step": step_id,
        "picker_target": request.GET.get("target", ""),
        "picker_query": request.GET.get("q", ""),
        # The search box asks this URL again; without it its hx-get was relative and went
        # to the page's own URL (the step panel), nesting a copy of the panel in the picker.
        "picker_url": reverse("workflows:picker", args=[workflow.pk]),
    }
    if request.htmx:
        # The list alone (search), or the picker with its search box (first open).
        part = "picker_list" if request.GET.get("list") else "picker"
        return render(request, f"{BUILDER}#{part}", {"workflow": workflow, **extra})
    context = _builder_context(request, workflow, definition, panel="picker", **extra)
    return render(request, BUILDER, context)


# --- versions ---


@require_GET
@staff_member_required
def versions(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id)
    rows = list(
        WorkflowVersion.objects.filter(workflow=workflow)
        .filter(Q(number__isnull=False) | Q(pk=workflow.draft_version_id))
        .select_related("published_by", "created_by")
        .order_by("-number")
    )
    rows.sort(key=lambda v: (v.number is not None, -(v.number or 0)))
    diff: list[tuple[str, str]] = []
    a, b = request.GET.get("a", ""), request.GET.get("b", "")
    by_key = {str(v.number) if v.number else "draft": v for v in rows}
    if a in by_key and b in by_key:
        left = json.dumps(version_definition(by_key[a]), indent=2, sort_keys=True).splitlines()
        right = json.dumps(version_definition(by_key[b]), indent=2, sort_keys=True).splitlines()
        for line in difflib.unified_diff(left, right, f"version {a}", f"version {b}", lineterm=""):
            kind = "add" if line.startswith("+") else "del" if line.startswith("-") else "same"
            if line.startswith("@@"):
                kind = "hunk"
            diff.append((kind, line))
    context = {
        **_admin_context(request, f"Versions of “{workflow.name}”"),
        "workflow": workflow,
        "versions": rows,
        "diff": diff,
        "a": a,
        "b": b,
        "can_manage": can(request.user, MANAGE),
    }
    template = "workflows/versions.html#history" if request.htmx else "workflows/versions.html"
    return render(request, template, context)


@require_POST
@staff_member_required
def version_restore(request: HttpRequest, workflow_id: int, number: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    version = get_object_or_404(WorkflowVersion, workflow=workflow, number=number)
    try:
        workflow_update(
            workflow=workflow,
            definition=version_definition(version),
            updated_by=request.user,
            allow_invalid=True,
        )
    except (WorkflowError, DefinitionInvalid) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    else:
        messages.success(request, f"Version {number} is the draft again; publish it to use it.")
    return _to(request, _builder_url(workflow))


# --- test runs and manual runs ---


def _past_events(request: HttpRequest, definition: dict) -> list[Event]:
    trigger = definition.get("trigger") or {}
    if trigger.get("type") != "event" or not trigger.get("event"):
        return []
    return list(
        Event.objects.filter(environment=request.environment, type=trigger["event"]).order_by(
            "-created", "-id"
        )[:25]
    )


@require_http_methods(["GET", "POST"])
@staff_member_required
def workflow_test_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    definition = version_definition(_editing_version(workflow))
    trigger = definition.get("trigger") or {}
    events = _past_events(request, definition)
    input_fields = list(trigger.get("input") or []) if trigger.get("type") == "manual" else []
    input_form = ManualInputForm(input_fields, request.POST if request.method == "POST" else None)
    extra = {"events": events, "input_form": input_form, "test_trigger_type": trigger.get("type")}
    if request.method == "GET":
        return _respond(
            request, _builder_context(request, workflow, definition, panel="test", **extra)
        )
    problem = ""
    run_trigger: dict = {}
    if trigger.get("type") == "event":
        chosen = request.POST.get("event", "")
        if chosen and chosen != "sample":
            event = next((e for e in events if e.id == chosen), None)
            if event is None:
                event = Event.objects.filter(
                    environment=request.environment, pk=chosen, type=trigger.get("event")
                ).first()
            if event is None:
                problem = "Choose one of this environment's events of the trigger's type."
            else:
                run_trigger = event_envelope(event)
        elif event_types.is_known(str(trigger.get("event", ""))):
            run_trigger = event_types.sample_event(trigger["event"])
        else:
            problem = "Choose the trigger's event type first."
    elif trigger.get("type") == "manual":
        if input_form.is_valid():
            run_trigger = {"input": input_form.values}
        else:
            problem = "Correct the input fields below."
    else:
        run_trigger = {"schedule": {"cron": trigger.get("cron", ""), "at": None}}
    for_real = bool(request.POST.get("for_real")) and request.environment.kind == "sandbox"
    if problem:
        context = _builder_context(
            request, workflow, definition, panel="test", test_problem=problem, **extra
        )
        return _respond(request, context)
    result = workflow_test_run(
        workflow_id=workflow.pk,
        definition=definition,
        trigger=run_trigger,
        environment=request.environment,
        for_real=for_real,
    )
    context = _builder_context(
        request,
        workflow,
        definition,
        step_runs=result.steps,
        panel="test",
        test_result=result,
        # The results are drawn on the cards and in the panel; the canvas stays in edit mode.
        editable=True,
        **extra,
    )
    return _respond(request, context, oob=True)


@require_http_methods(["GET", "POST"])
@staff_member_required
def manual_run(request: HttpRequest, workflow_id: int) -> HttpResponse:
    from workflows.engine.runs import run_start_manual

    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    definition = version_definition(_editing_version(workflow))
    published = workflow.published_version
    fields = list(published.trigger_input or []) if published is not None else []
    form = ManualInputForm(fields, request.POST if request.method == "POST" else None)
    extra: dict[str, Any] = {"run_form": form, "published": published}
    if request.method == "POST" and form.is_valid():
        try:
            run = run_start_manual(workflow=workflow, input=form.values, user=request.user)
        except (WorkflowError, BillingError) as exc:
            extra["run_problem"] = getattr(exc, "message", str(exc))
        else:
            messages.success(request, f"Run {run.pk} started.")
            if not request.htmx:
                return redirect(reverse("workflows:run", args=[workflow.pk]))
            extra["run_started"] = run
    context = _builder_context(request, workflow, definition, panel="run", **extra)
    return _respond(request, context)
