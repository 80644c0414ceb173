"""The event tables: one per tracked model, each row written by a database trigger.

Declared here, not in the tracked apps, so billing and workflows stay as they are. Each row holds
the object's tracked fields after the change (before, for a delete), `pgh_changes`
(`{field: [before, after]}`), and `pgh_context`, the actor and request id the connection had
handed to the trigger (backoffice/actors.py), or null for the system.
"""

from __future__ import annotations

import pghistory
from django.contrib.auth.models import Group, User
from django.db import models
from pghistory.models import Event

from billing import models as billing
from history.trackers import Created, Updated, every_change
from workflows import models as workflows


class HistoryEvent(Event):
    pgh_changes = models.JSONField(default=dict)

    class Meta:
        abstract = True


# Copied foreign keys that the history is looked up by (history/objects.py); the others are
# not indexed: each index is one more write in every trigger.
LOOKED_UP_BY = {"pgh_obj", "workflow", "version", "step", "user", "run"}


def _events(tracked, *trackers, **options):
    """The abstract event model of `tracked`, in this app, with the actor kept on the row."""
    model = pghistory.create_event_model(
        tracked,
        *(trackers or every_change()),
        base_model=HistoryEvent,
        obj_field=pghistory.ObjForeignKey(related_name="+"),
        context_field=pghistory.ContextJSONField(),
        app_label="history",
        **options,
    )
    for field in model._meta.local_fields:
        if field.is_relation and field.name not in LOOKED_UP_BY:
            field.db_index = False
    return model


# --- billing objects ----------------------------------------------------------------------------


class AccountEvent(_events(billing.Account)):
    pass


class CustomerEvent(_events(billing.Customer)):
    pass


class ProductEvent(_events(billing.Product)):
    pass


class PriceEvent(_events(billing.Price)):
    pass


class SubscriptionEvent(_events(billing.Subscription)):
    pass


class SubscriptionItemEvent(_events(billing.SubscriptionItem)):
    pass


class InvoiceEvent(_events(billing.Invoice)):
    pass


class InvoiceLineEvent(_events(billing.InvoiceLine)):
    pass


class PaymentIntentEvent(_events(billing.PaymentIntent)):
    pass


class ChargeEvent(_events(billing.Charge)):
    pass


class RefundEvent(_events(billing.Refund)):
    pass


class DisputeEvent(_events(billing.Dispute)):
    pass


class CheckoutSessionEvent(_events(billing.CheckoutSession)):
    pass


# The secret's hash is never copied; `last_used` moves with every request, so it is not history.
class ApiKeyEvent(_events(billing.ApiKey, exclude=["hashed_key", "last_used"])):
    pass


# --- workflows ----------------------------------------------------------------------------------


class WorkflowEvent(_events(workflows.Workflow)):
    pass


class WorkflowVersionEvent(_events(workflows.WorkflowVersion)):
    pass


class StepEvent(_events(workflows.Step)):
    pass


class BranchPathEvent(_events(workflows.BranchPath)):
    pass


class ConditionEvent(_events(workflows.Condition)):
    pass


# Runs are written on every step; only a change of status is history (one trigger, fired by a
# condition on the status column, recording just the status).
class RunEvent(
    _events(
        workflows.Run,
        Updated("status", condition=pghistory.AnyChange("status")),
        fields=["status"],
    )
):
    pass


# An approval step's request: asked (created), e-mailed, decided (by whom, the actor), timed out.
# A run's history shows them with its status changes (history/objects.py). Deleted only with
# their run (retention), whose history goes too: no delete event.
class ApprovalEvent(_events(workflows.Approval, Created(), Updated())):
    pass


# --- people and roles ---------------------------------------------------------------------------


# Password hashes are never copied; `last_login` moves at every sign-in, so it is not history.
class UserEvent(_events(User, exclude=["password", "last_login"])):
    pass


class GroupEvent(_events(Group)):
    pass


# A person's roles are their groups: a row here is a role given (create) or taken (delete).
class RoleMembershipEvent(_events(User.groups.through, model_name="RoleMembershipEvent")):
    pass
