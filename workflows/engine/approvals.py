"""What an approval step means: who may decide, the request, the decision, the e-mail.

When the walk reaches an approval step the executor creates its request (`Approval`) and
moves the run to `waiting` in one transaction, with `next_attempt_at` at the request's
timeout; after the commit the approvers get an e-mail with a link to the run page
(`notify_approvers`, once per request: `notified_at` is claimed before sending).

A decision (`approval_decide`) is one transaction: a conditional UPDATE of the request
(`decision = pending`) and the run's waiting -> pending (due now), so two people deciding at
once decide once, and a canceled run is not decided. The executor, woken, reads the
decision: approved goes on, rejected fails the step (`approval_rejected`). Woken at the
timeout with no decision, it records `timed_out` and applies `on_timeout` the same way.

Who may decide: `runs.approve` (Account Manager or above) and one of the approvers: a person
by user name, or a person or API key whose role is the named role or above it (roles include
the roles below them: docs/roles.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from backoffice.roles import (
    GROUP_NAMES,
    ROLE_BY_GROUP,
    ROLE_BY_KEY_ROLE,
    Role,
    can,
    role_has,
    role_of,
)
from billing.models import ApiKey
from workflows.engine.queue import run_enqueue
from workflows.engine.store.runs import run_wake
from workflows.models import Approval, Run, api_key_actor

logger = logging.getLogger(__name__)

MAX_TIMEOUT_HOURS = 720  # 30 days
ON_TIMEOUT = ("reject", "approve")
# The least role that may decide (docs/roles.md: `runs.approve`).
DECIDING_ROLE = Role.ACCOUNT_MANAGER


class ApprovalError(Exception):
    """A decision that cannot be taken: `http_status` 403 (not an approver), 409 (decided
    already, or the run no longer waits), 400 (a rejection without a note)."""

    def __init__(self, message: str, *, http_status: int, code: str, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.param = param


# --- approvers ----------------------------------------------------------------------------


def approver_role(name: str) -> Role | None:
    """A role named in `approvers`: its group name ("Account Manager") or its key-role name
    ("account_manager"); None for anything else (a user name)."""
    return ROLE_BY_GROUP.get(name) or ROLE_BY_KEY_ROLE.get(name)


def approver_problem(name: object) -> str:
    """Why `name` cannot be an approver ("" when it can): an unknown user or role, or one
    below Account Manager (who could never decide)."""
    if not isinstance(name, str) or not name.strip():
        return "Each approver is a user name or a role name (a non-empty string)"
    role = approver_role(name)
    if role is None:
        user = get_user_model().objects.filter(username=name, is_active=True).first()
        if user is None:
            roles = ", ".join(GROUP_NAMES[r] for r in Role if r >= DECIDING_ROLE)
            return f"'{name}' is neither an active back-office user nor a role ({roles})"
        role = role_of(user)
    if role < DECIDING_ROLE:
        return f"'{name}' cannot approve: deciding needs Account Manager or above"
    return ""


def approver_users(approvers: list[str]) -> QuerySet:
    """The active people who may decide a request with these approvers."""
    names = [name for name in approvers if approver_role(name) is None]
    roles = [approver_role(name) for name in approvers if approver_role(name) is not None]
    least = min(roles, default=None)
    who = Q(username__in=names)
    if least is not None:
        groups = [GROUP_NAMES[role] for role in Role if role >= max(least, DECIDING_ROLE)]
        who |= Q(groups__name__in=groups) | Q(is_superuser=True)
    users = get_user_model().objects.filter(who, is_active=True).distinct().order_by("pk")
    return users


def describe_approvers(approvers: list[str]) -> str:
    return ", ".join(approvers) or "nobody"


def decider_problem(approval: Approval, *, user: Any = None, api_key: ApiKey | None = None) -> str:
    """Why this person or key may not decide `approval` ("" when they may)."""
    if api_key is not None:
        role = ROLE_BY_KEY_ROLE.get(api_key.role, Role.NONE)
        if not role_has(role, "runs.approve"):
            return "Deciding an approval needs an API key of Account Manager or above."
        roles = [approver_role(name) for name in approval.approvers]
        if not any(named is not None and role >= named for named in roles):
            return (
                f"This API key's role is none of the approvers "
                f"({describe_approvers(approval.approvers)}); only they may decide."
            )
        return ""
    if not can(user, "runs.approve"):
        return "Deciding an approval needs Account Manager or above."
    if not approver_users(approval.approvers).filter(pk=user.pk).exists():
        return (
            f"You are not one of the approvers ({describe_approvers(approval.approvers)}); "
            "only they may decide."
        )
    return ""


# --- the request --------------------------------------------------------------------------


def timeout_at(now: datetime, hours: object) -> datetime:
    return now + timedelta(hours=float(hours))  # type: ignore[arg-type]


def current_request(run: Run, step_id: str, iteration: str) -> Approval | None:
    """The request of this step in the run's current restart, if it was asked."""
    return Approval.objects.filter(
        run=run, step_id=step_id, iteration=iteration, restart=run.restart_count
    ).first()


def waiting_request(run: Run) -> Approval | None:
    """The request a waiting run waits on (the newest pending one of its current restart)."""
    if run.status != Run.Status.WAITING:
        return None
    return (
        Approval.objects.filter(
            run=run, restart=run.restart_count, decision=Approval.Decision.PENDING
        )
        .order_by("-created", "-id")
        .first()
    )


def describe(approval: Approval) -> str:
    return (
        f"waiting for approval by {describe_approvers(approval.approvers)}, times out at "
        f"{approval.due_at.isoformat()} (then {approval.on_timeout}), approval step "
        f"{approval.step_id}"
    )


def waiting_reason(approval: Approval) -> dict:
    """A run's `waiting` (run page, API) when it waits for `approval`: it resumes at the
    timeout at the latest."""
    return {
        "for": "approval",
        "step": approval.step_id,
        "resume_at": approval.due_at,
        "reason": describe(approval),
        "approval": {
            "id": approval.pk,
            "approvers": approval.approvers,
            "message": approval.message,
            "times_out_at": approval.due_at,
            "on_timeout": approval.on_timeout,
        },
    }


def time_out(approval: Approval, now: datetime) -> Approval:
    """Record that nobody decided in time (once: a decision that came first stands)."""
    Approval.objects.filter(pk=approval.pk, decision=Approval.Decision.PENDING).update(
        decision=Approval.Decision.TIMED_OUT,
        decided_at=now,
        decided_by_name="timeout",
        note=f"No decision by {approval.due_at.isoformat()}; {approval.on_timeout} applied.",
    )
    return Approval.objects.get(pk=approval.pk)


def decision_output(approval: Approval) -> dict:
    """The approval step's output (later steps read it as {{ steps.<id>.output.decision }})."""
    return {
        "decision": approval.applied,
        "by": approval.decided_by_name,
        "at": approval.decided_at.isoformat() if approval.decided_at else None,
        "note": approval.note,
        "timed_out": approval.decision == Approval.Decision.TIMED_OUT,
    }


def rejection(approval: Approval) -> dict:
    """The error of a rejected (or timed-out-and-rejected) approval step."""
    at = approval.decided_at.isoformat() if approval.decided_at else "?"
    if approval.decision == Approval.Decision.TIMED_OUT:
        return {
            "type": "approval_rejected",
            "message": f"Approval step '{approval.step_id}': nobody decided by "
            f"{approval.due_at.isoformat()}; rejected on timeout.",
        }
    note = f": {approval.note}" if approval.note else ""
    return {
        "type": "approval_rejected",
        "message": f"Approval step '{approval.step_id}' was rejected by "
        f"{approval.decided_by_name} at {at}{note}",
    }


# --- the e-mail ---------------------------------------------------------------------------


def notify_approvers(approval_id: int) -> int:
    """E-mail the approvers once, after the request committed; returns the messages sent.

    `notified_at` is claimed first (a conditional UPDATE), so a re-walk of the step or a
    second worker sends nothing again; a send that fails is logged (the request is on the
    run page and in the runs list either way)."""
    from workflows.operations.notifications import run_url

    claimed = Approval.objects.filter(pk=approval_id, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
    if not claimed:
        return 0
    approval = Approval.objects.select_related("run__workflow").get(pk=approval_id)
    run = approval.run
    addresses = [
        user.email for user in approver_users(approval.approvers).exclude(email="") if user.email
    ]
    subject = f"[Billflow] Approval needed: {run.workflow.name} (run {run.pk})"
    body = "\n".join(
        [
            approval.message or f"The workflow '{run.workflow.name}' asks for your approval.",
            "",
            f"Workflow: {run.workflow.name}",
            f"Step: {approval.step_id}",
            f"Approvers: {describe_approvers(approval.approvers)}",
            f"Times out at {approval.due_at.isoformat()}, then: {approval.on_timeout}.",
            "",
            f"Approve or reject on the run page: {run_url(run.pk)}",
        ]
    )
    try:
        return send_mass_mail([(subject, body, None, [to]) for to in addresses])
    except Exception:
        logger.exception("Could not e-mail the approvers of run %s", run.pk)
        return 0


# --- deciding -----------------------------------------------------------------------------


def approval_decide(
    *,
    run: Run,
    approve: bool,
    note: str = "",
    user: Any = None,
    api_key: ApiKey | None = None,
) -> Approval:
    """Approve or reject the request `run` waits on, as `user` or `api_key`; wakes the run.

    Call inside a transaction (the caller writes its audit row in it); raises ApprovalError."""
    note = (note or "").strip()
    # The pending request of the run's current restart (a loop may have decided earlier ones);
    # else the latest, to say how it was decided.
    approval = waiting_request(run) or (
        Approval.objects.filter(run=run, restart=run.restart_count)
        .order_by("-created", "-id")
        .first()
    )
    if approval is None:
        raise ApprovalError(
            f"Run {run.pk} has no approval to decide.", http_status=409, code="no_approval"
        )
    problem = decider_problem(approval, user=user, api_key=api_key)
    if problem:
        raise ApprovalError(problem, http_status=403, code="not_an_approver")
    if not approve and not note:
        raise ApprovalError(
            "A rejection needs a note saying why.",
            http_status=400,
            code="note_required",
            param="note",
        )
    now = timezone.now()
    name = api_key_actor(api_key) if api_key is not None else user.get_username()
    decision = Approval.Decision.APPROVED if approve else Approval.Decision.REJECTED
    with transaction.atomic():
        decided = Approval.objects.filter(
            pk=approval.pk, decision=Approval.Decision.PENDING
        ).update(
            decision=decision,
            decided_by=user if api_key is None else None,
            decided_by_api_key=api_key,
            decided_by_name=name[:200],
            note=note,
            decided_at=now,
        )
        if not decided:
            raise already_decided(Approval.objects.get(pk=approval.pk))
        if not run_wake(run_id=run.pk):
            status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
            raise ApprovalError(
                f"Run {run.pk} is {status}; only a run waiting for its approval can be decided.",
                http_status=409,
                code="invalid_state",
            )
        run_enqueue(run.pk)
    approval.refresh_from_db()
    return approval


def already_decided(approval: Approval) -> ApprovalError:
    at = approval.decided_at.isoformat() if approval.decided_at else "?"
    if approval.decision == Approval.Decision.TIMED_OUT:
        message = f"Already timed out at {at} ({approval.on_timeout} applied)."
    else:
        message = f"Already {approval.decision} by {approval.decided_by_name} at {at}."
    return ApprovalError(message, http_status=409, code="already_decided")
