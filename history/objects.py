"""Which history belongs to an object, who may read it, and how an object is named.

An object is named as the API names it: a billing object by its Stripe id (`cus_…`, `in_…`),
anything else by `<type>:<id>` (`workflow:12`, `workflow_version:7`, `run:345`, `api_key:3`,
`user:5`, `group:2`). An object's history is its own events, plus those of its parts: a
workflow's versions and their steps, branch paths and conditions; a person's role memberships.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db.models import Model, Q

from billing import models as billing
from history import models as events
from workflows import models as workflows


@dataclass(frozen=True)
class Kind:
    """A tracked model: its name in the API, its event table, the capability to read it."""

    name: str
    model: type[Model]
    event_model: type[Model]
    capability: str
    scoped: bool = True  # belongs to an environment


BILLING_KINDS = [
    Kind(m.OBJECT or m._meta.model_name, m, e, "billing.view")
    for m, e in (
        (billing.Account, events.AccountEvent),
        (billing.Customer, events.CustomerEvent),
        (billing.Product, events.ProductEvent),
        (billing.Price, events.PriceEvent),
        (billing.Subscription, events.SubscriptionEvent),
        (billing.SubscriptionItem, events.SubscriptionItemEvent),
        (billing.Invoice, events.InvoiceEvent),
        (billing.InvoiceLine, events.InvoiceLineEvent),
        (billing.PaymentIntent, events.PaymentIntentEvent),
        (billing.Charge, events.ChargeEvent),
        (billing.Refund, events.RefundEvent),
        (billing.Dispute, events.DisputeEvent),
        (billing.CheckoutSession, events.CheckoutSessionEvent),
    )
]
OTHER_KINDS = [
    Kind("workflow", workflows.Workflow, events.WorkflowEvent, "workflows.view"),
    Kind(
        "workflow_version", workflows.WorkflowVersion, events.WorkflowVersionEvent, "workflows.view"
    ),
    Kind("step", workflows.Step, events.StepEvent, "workflows.view"),
    Kind("branch_path", workflows.BranchPath, events.BranchPathEvent, "workflows.view"),
    Kind("condition", workflows.Condition, events.ConditionEvent, "workflows.view"),
    Kind("run", workflows.Run, events.RunEvent, "runs.view"),
    Kind("approval", workflows.Approval, events.ApprovalEvent, "runs.view"),
    Kind("api_key", billing.ApiKey, events.ApiKeyEvent, "api_keys.manage"),
    Kind("user", User, events.UserEvent, "users.manage", scoped=False),
    Kind("group", Group, events.GroupEvent, "users.manage", scoped=False),
    Kind("role_membership", User.groups.through, events.RoleMembershipEvent, "users.manage", False),
]
KIND_BY_PREFIX = {k.model.ID_PREFIX: k for k in BILLING_KINDS}
KIND_BY_NAME = {k.name: k for k in BILLING_KINDS + OTHER_KINDS}
KIND_BY_EVENT_MODEL = {k.event_model: k for k in KIND_BY_NAME.values()}
# Kinds with a page or an API object of their own; parts are shown with their whole.
NAMED_KINDS = [k.name for k in OTHER_KINDS if k.name not in ("role_membership", "approval")]


class UnknownObject(ValueError):
    """`reference` names no object kind we keep history for."""


@dataclass(frozen=True)
class Subject:
    """One object whose history is asked for."""

    kind: Kind
    pk: object

    @property
    def reference(self) -> str:
        return str(self.pk) if self.kind in BILLING_KINDS else f"{self.kind.name}:{self.pk}"

    def sources(self) -> list[tuple[type[Model], Q]]:
        """(event model, filter) pairs whose rows make up this object's history."""
        own = [(self.kind.event_model, Q(pgh_obj_id=self.pk))]
        name = self.kind.name
        if name == "workflow":
            return own + _version_parts(Q(workflow_id=self.pk), workflow_id=self.pk)
        if name == "workflow_version":
            return own + _version_parts(None, version_id=self.pk)
        if name == "user":
            return own + [(events.RoleMembershipEvent, Q(user_id=self.pk))]
        if name == "run":
            return own + [(events.ApprovalEvent, Q(run_id=self.pk))]
        return own


def _version_parts(version_filter: Q | None, **key) -> list[tuple[type[Model], Q]]:
    """The events of a workflow's versions (or one version) and of their steps and conditions.

    A version's id is read from the event rows, not the live rows, so a deleted draft's steps
    still show."""
    if "workflow_id" in key:
        version_ids = events.WorkflowVersionEvent.objects.filter(version_filter).values(
            "pgh_obj_id"
        )
        versions = [(events.WorkflowVersionEvent, version_filter)]
    else:
        version_ids = [key["version_id"]]
        versions = []
    step_ids = events.StepEvent.objects.filter(version_id__in=version_ids).values("pgh_obj_id")
    return versions + [
        (events.StepEvent, Q(version_id__in=version_ids)),
        (events.ConditionEvent, Q(version_id__in=version_ids)),
        (events.BranchPathEvent, Q(step_id__in=step_ids)),
    ]


def parse_reference(reference: str) -> tuple[Kind, object]:
    """`cus_…` or `workflow:12` -> (kind, primary key). Raises UnknownObject."""
    reference = (reference or "").strip()
    if ":" in reference:
        name, _, raw_pk = reference.partition(":")
        kind = KIND_BY_NAME.get(name)
        if kind is None or kind in BILLING_KINDS:
            raise UnknownObject(
                f"Unknown object type {name!r}: use a billing object's id (cus_…) or one of "
                + ", ".join(f"{n}:<id>" for n in NAMED_KINDS)
                + "."
            )
        if not raw_pk.isdigit():
            raise UnknownObject(f"{name} ids are whole numbers, as in {name}:12.")
        return kind, int(raw_pk)
    prefix, underscore, _ = reference.rpartition("_")
    kind = KIND_BY_PREFIX.get(prefix) if underscore else None
    if kind is None:
        raise UnknownObject(
            f"{reference!r} is not an object id: use a billing object's id (cus_…) or one of "
            + ", ".join(f"{n}:<id>" for n in NAMED_KINDS)
            + "."
        )
    return kind, reference


def find(kind: Kind, pk: object, environment) -> Subject | None:
    """The object, if it exists (or existed: its history outlives it) in `environment`."""
    if kind.scoped:
        live = kind.model._default_manager.filter(pk=pk)
        if live.exists():
            live = _in_environment(kind, live, environment)
            return Subject(kind, pk) if live.exists() else None
        # Deleted: its last event says where it lived.
        last = kind.event_model.objects.filter(pgh_obj_id=pk).order_by("-pgh_id").first()
        if last is None or _event_environment_id(kind, last) != environment.pk:
            return None
        return Subject(kind, pk)
    exists = kind.model._default_manager.filter(pk=pk).exists()
    if exists or kind.event_model.objects.filter(pgh_obj_id=pk).exists():
        return Subject(kind, pk)
    return None


def _environment_path(kind: Kind) -> str:
    return {
        "workflow_version": "workflow__environment",
        "step": "version__workflow__environment",
        "branch_path": "step__version__workflow__environment",
        "condition": "version__workflow__environment",
        "approval": "run__environment",
    }.get(kind.name, "environment")


def _in_environment(kind: Kind, queryset, environment):
    return queryset.filter(**{_environment_path(kind): environment})


def _event_environment_id(kind: Kind, event) -> int | None:
    if hasattr(event, "environment_id"):
        return event.environment_id
    if kind.name == "workflow_version":
        return workflows.Workflow.objects.filter(pk=event.workflow_id).values_list(
            "environment_id", flat=True
        ).first() or _deleted_workflow_environment(event.workflow_id)
    return None


def _deleted_workflow_environment(workflow_id: int) -> int | None:
    last = events.WorkflowEvent.objects.filter(pgh_obj_id=workflow_id).order_by("-pgh_id").first()
    return last.environment_id if last is not None else None


def for_object(obj: Model) -> Subject:
    """The subject of a model instance (the History panel's object)."""
    for kind in KIND_BY_NAME.values():
        if type(obj) is kind.model:
            return Subject(kind, obj.pk)
    raise UnknownObject(f"No history is kept for {type(obj).__name__}.")
