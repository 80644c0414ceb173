"""Workflow definitions (relational, versioned) and their runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from billing.models import ApiKey, Environment, Event
from workflows.engine.store.guard import StoreOnlyManager, StoreOnlyModel


class Workflow(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        INACTIVE = "inactive"

    class Kind(models.TextChoices):
        AUTOMATION = "automation"
        SYSTEM = "system"

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.AUTOMATION)
    # For system workflows: which predefined process this is (e.g. "subscription_created").
    system_key = models.CharField(max_length=60, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # The published version new runs start on; the draft is what the builder edits.
    published_version = models.ForeignKey(
        "workflows.WorkflowVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    draft_version = models.ForeignKey(
        "workflows.WorkflowVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set when the circuit breaker deactivated the workflow (its failure rate, the window);
    # cleared when someone activates it again (docs/workflows.md, "Circuit breaker").
    deactivated_reason = models.TextField(blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["environment", "status"])]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """A draft, or an immutable published version (`number` set)."""

    class TriggerType(models.TextChoices):
        EVENT = "event"
        MANUAL = "manual"
        SCHEDULE = "schedule"

    class AccountScope(models.TextChoices):
        PLATFORM = "platform"
        CONNECTED = "connected"
        ALL = "all"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(null=True, blank=True)  # null while a draft
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    trigger_type = models.CharField(max_length=10, choices=TriggerType.choices)
    trigger_event = models.CharField(max_length=80, blank=True, db_index=True)
    trigger_accounts = models.CharField(
        max_length=10, choices=AccountScope.choices, default=AccountScope.PLATFORM
    )
    trigger_cron = models.CharField(max_length=120, blank=True)
    # Manual trigger: [{"name", "type", "required", ...}]
    trigger_input = models.JSONField(default=list, blank=True)
    # Event trigger: one run at a time per customer or object (docs/workflows.md).
    trigger_serialize_by = models.CharField(max_length=10, blank=True)
    trigger_serialize_max_wait_minutes = models.FloatField(null=True, blank=True)
    step_count = models.PositiveSmallIntegerField(default=0)
    # The definition's money guardrails and circuit breaker, as in its JSON form (or null).
    guardrails = models.JSONField(null=True, blank=True)
    auto_deactivate = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "number"], name="workflow_version_unique_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number or 'draft'}"

    @property
    def is_published(self) -> bool:
        return self.number is not None


class Step(models.Model):
    """One step of a version. Nested steps point at their branch path or loop."""

    class Type(models.TextChoices):
        ACTION = "action"
        CONDITION = "condition"
        BRANCH = "branch"
        FOREACH = "foreach"
        DELAY = "delay"
        APPROVAL = "approval"

    version = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=64)
    type = models.CharField(max_length=10, choices=Type.choices)
    # Exactly one of these is set for a nested step; neither for a top-level step.
    parent_path = models.ForeignKey(
        "workflows.BranchPath",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="steps",
    )
    parent_loop = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="body"
    )
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=80, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # foreach: {"items": "{{ … }}"} or {"action": key, "params": {...}}, plus "max_items".
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "step_id"], name="step_unique_id")
        ]

    def __str__(self) -> str:
        return self.step_id


class BranchPath(models.Model):
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="paths")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    is_else = models.BooleanField(default=False)

    class Meta:
        ordering = ["step", "position"]

    def __str__(self) -> str:
        return self.name


class Condition(models.Model):
    """A node of a condition tree: a group (`all`/`any`) or a leaf (field, op, value).

    The root belongs to the trigger (version), a condition step, or a branch path.
    """

    class Group(models.TextChoices):
        ALL = "all"
        ANY = "any"

    version = models.ForeignKey(
        WorkflowVersion, on_delete=models.CASCADE, related_name="conditions"
    )
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.CASCADE, related_name="conditions"
    )
    path = models.ForeignKey(
        BranchPath, null=True, blank=True, on_delete=models.CASCADE, related_name="conditions"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    position = models.PositiveSmallIntegerField(default=0)
    group = models.CharField(max_length=3, choices=Group.choices, blank=True)
    field = models.CharField(max_length=300, blank=True)
    op = models.CharField(max_length=20, blank=True)
    value = models.JSONField(null=True, blank=True)
    has_value = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.group or f"{self.field} {self.op}"


class Run(StoreOnlyModel, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"
        # Holds no worker and no lease until `next_attempt_at` (a delay step; none: until
        # someone decides). The step record it waits on says what for.
        WAITING = "waiting"
        # A failure an operator closed without restarting it (with a note); retention prunes it.
        RESOLVED = "resolved"

    class TriggerKind(models.TextChoices):
        EVENT = "event"
        MANUAL = "manual"
        SCHEDULE = "schedule"

    # Reads only: runs are written by the engine's store (workflows/engine/store/).
    objects = StoreOnlyManager()

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    trigger_kind = models.CharField(max_length=10, choices=TriggerKind.choices)
    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    # The run context's `trigger`: the event envelope, or {"input": …} for manual runs.
    trigger = models.JSONField(default=dict)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # (workflow id, run id) pairs that caused this run, oldest first (recursion detection).
    cause_chain = models.JSONField(default=list, blank=True)
    # Decisions taken, in order: [{"step": id, "iteration": "", "branch": "Europe"}, …]
    path = models.JSONField(default=list, blank=True)
    # {"type", "message", "step", "iteration", "retryable"} when failed.
    error = models.JSONField(null=True, blank=True)
    stop_reason = models.CharField(max_length=500, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    restart_count = models.PositiveIntegerField(default=0)
    dry_run = models.BooleanField(default=False)
    # One at a time per key (`trigger.serialize_by`, workflows/engine/serial.py): the key of an
    # event's run ("cus_123"), and how long this run, failed, holds it.
    serial_key = models.CharField(max_length=255, null=True, blank=True)
    serial_max_wait = models.FloatField(null=True, blank=True)  # seconds

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "event"],
                condition=Q(event__isnull=False, dry_run=False),
                name="run_unique_workflow_event",
            )
        ]
        indexes = [
            models.Index(fields=["environment", "-created", "-id"]),
            models.Index(fields=["environment", "status", "-created", "-id"]),
            models.Index(fields=["workflow", "-created", "-id"]),
            models.Index(fields=["status", "lease_expires_at"]),
            # Inspector filters (workflows/inspector/selectors.py): keyset pages stay index-only.
            models.Index(
                fields=["workflow", "status", "-created", "-id"], name="run_wf_status_created"
            ),
            models.Index(
                F("environment"),
                KeyTextTransform("type", "trigger"),
                F("created").desc(),
                F("id").desc(),
                name="run_env_event_type_created",
            ),
            # Retention (workflows/operations/retention.py): the prune takes the oldest
            # prunable runs first and /health/ reads the backlog's size and age, both from
            # this index alone however many failed or recent runs the table holds.
            models.Index(
                fields=["finished_at", "id"],
                condition=Q(status__in=["succeeded", "canceled", "resolved"]),
                name="run_prunable_finished",
            ),
            # The claim's check of a serialized run: the runs of its key before it.
            models.Index(
                fields=["workflow", "serial_key", "id"],
                condition=Q(
                    serial_key__isnull=False,
                    status__in=["pending", "running", "waiting", "failed"],
                ),
                name="run_serial_key",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in {
            self.Status.SUCCEEDED,
            self.Status.FAILED,
            self.Status.CANCELED,
            self.Status.RESOLVED,
        }


class RestartMode(models.TextChoices):
    """How a failed run is restarted (workflows/engine/runs.py `run_restart`)."""

    # Resume at the failed step; steps that succeeded are kept (the default).
    FROM_FAILED_STEP = "from_failed_step", "From the failed step"
    # A new attempt of every step, on the run's own version.
    FROM_START = "from_start", "From the start"
    # The workflow's current published version, at the same step id when it still exists.
    LATEST_VERSION = "latest_version", "On the latest version"


class StepRun(StoreOnlyModel, models.Model):
    """One execution record per (run, step, iteration)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELED = "canceled"

    # Reads only: step records are written by the engine's store (workflows/engine/store/).
    objects = StoreOnlyManager()

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    step_id = models.CharField(max_length=64)
    # "" outside loops; "3" for the 4th item; "3.0" for nested loops.
    iteration = models.CharField(max_length=40, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Counted when an attempt starts, so an attempt that kills its worker still counts.
    attempts = models.PositiveSmallIntegerField(default=0)
    idempotency_key = models.CharField(max_length=200)
    params = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    # {"type", "message", "retryable"}
    error = models.JSONField(null=True, blank=True)
    # One entry per failed attempt: {"attempt", "type", "message", "retryable", "at"}
    attempt_errors = models.JSONField(default=list, blank=True)
    # Every attempt with its own timing, across restarts:
    # [{"attempt", "restart", "status", "started_at", "finished_at", "error"}]
    attempt_log = models.JSONField(default=list, blank=True)
    branch_chosen = models.CharField(max_length=200, blank=True)
    # [{"object": "customer", "id": "cus_…", "before": {...}, "after": {...}}]
    changed_objects = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step_id", "iteration"], name="step_run_unique_iteration"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.step_id}/{self.iteration}"


class Delivery(StoreOnlyModel, models.Model):
    """One outgoing message (e-mail, HTTP call) per idempotency key, so it is sent once.

    Actions with side effects outside the database claim their key here before sending and
    mark it sent after; executing the same key again returns the stored output instead of
    sending again (workflows/actions/delivery.py).
    """

    class Kind(models.TextChoices):
        EMAIL = "email"
        HTTP = "http"
        SLACK = "slack"

    class Status(models.TextChoices):
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    # Reads only: send records are written by the engine's store (workflows/engine/store/).
    objects = StoreOnlyManager()

    kind = models.CharField(max_length=10, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING)
    attempts = models.PositiveSmallIntegerField(default=1)
    message_id = models.CharField(max_length=255, blank=True)
    # What the action returned when it was sent; returned again on a repeat.
    output = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "idempotency_key"], name="delivery_unique_kind_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key} ({self.status})"


def api_key_actor(api_key: ApiKey) -> str:
    """An API key named as the actor of a run transition (no user acts through the API)."""
    return f"API key {api_key.name} ({api_key.prefix}…, {api_key.environment})"


class RunAudit(models.Model):
    """Who (a user or an API key) started, restarted or canceled a run, and when (run page)."""

    class Action(models.TextChoices):
        START = "start"
        RESTART = "restart"
        BULK_RESTART = "bulk_restart"
        CANCEL = "cancel"
        BULK_CANCEL = "bulk_cancel"
        RESOLVE = "resolve"
        APPROVE = "approve"
        REJECT = "reject"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="audits")
    action = models.CharField(max_length=14, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set instead of `user` when the action came through the API (a key has no user).
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    # Free text: the bulk restart's filter, a reason.
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["run", "at", "id"]

    def __str__(self) -> str:
        return f"{self.action} run {self.run_id}"

    @property
    def actor(self) -> str:
        """Who did it, for the run page's history."""
        if self.api_key is not None:
            return api_key_actor(self.api_key)
        return getattr(self.user, "get_username", lambda: "")() or "the system"


class Approval(models.Model):
    """One request for a decision: an approval step reached in one restart of a run.

    Created with the run's running -> waiting move (one transaction), so a re-walk of the step
    finds it instead of asking again; unique per (run, step, iteration, restart), so a restart
    asks anew. Decided once: a conditional UPDATE on `decision = pending`
    (`workflows/engine/approvals.py`).
    """

    class Decision(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        # Nobody decided by `due_at`: `on_timeout` was applied.
        TIMED_OUT = "timed_out"

    class OnTimeout(models.TextChoices):
        REJECT = "reject"
        APPROVE = "approve"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    step_id = models.CharField(max_length=64)
    iteration = models.CharField(max_length=40, blank=True, default="")
    restart = models.PositiveIntegerField(default=0)
    # The step's approvers when it was reached: user names and role names.
    approvers = models.JSONField(default=list)
    message = models.TextField(blank=True)
    due_at = models.DateTimeField()
    on_timeout = models.CharField(max_length=7, choices=OnTimeout.choices)
    decision = models.CharField(max_length=9, choices=Decision.choices, default=Decision.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set instead of `decided_by` when decided through the API (a key has no user).
    decided_by_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who decided, in words, kept when the person or key is deleted later.
    decided_by_name = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Set by whoever sends the approvers' e-mail, before sending: it is sent once.
    notified_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "created", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step_id", "iteration", "restart"],
                name="approval_unique_step_attempt",
            )
        ]

    def __str__(self) -> str:
        return f"approval {self.step_id} of run {self.run_id} ({self.decision})"

    @property
    def applied(self) -> str:
        """What the request came to: approved or rejected (a timeout applies `on_timeout`)."""
        if self.decision == self.Decision.TIMED_OUT:
            return (
                self.Decision.APPROVED if self.on_timeout == "approve" else self.Decision.REJECTED
            )
        return self.decision


class RunNote(models.Model):
    """A note on a run (any status), by a person or an API key; a resolution is a note too."""

    class Kind(models.TextChoices):
        NOTE = "note"
        # Written with the failed -> resolved transition, in its transaction.
        RESOLUTION = "resolution"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NOTE)
    body = models.TextField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "created", "id"]

    def __str__(self) -> str:
        return f"{self.kind} on run {self.run_id}"

    @property
    def actor(self) -> str:
        if self.api_key is not None:
            return api_key_actor(self.api_key)
        return getattr(self.user, "get_username", lambda: "")() or "the system"


class RunBatch(models.Model):
    """A bulk restart or cancel, applied by a background job on the workers.

    The runs are listed in `RunBatchItem` rows (a list of runs when the batch is created, a
    filter by the job, in chunks, until `resolved_at` is set), so the job's progress survives
    a worker crash, and each item is applied in the transaction that marks it done: a run is
    never restarted or canceled twice by one batch.
    """

    class Action(models.TextChoices):
        RESTART = "restart"
        CANCEL = "cancel"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    mode = models.CharField(max_length=20, choices=RestartMode.choices, blank=True)
    # What was asked: {"runs": [ids]} or {"filter": {...}}, as given.
    selection = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # {reason: count} for skipped and failed items (the summary at the end).
    reasons = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Set once every run of the selection has its item (a filter is resolved by the job).
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Renewed while a worker applies the batch; a stale one is picked up again by the sweep.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "run batches"

    def __str__(self) -> str:
        return f"{self.action} batch {self.pk} ({self.status})"


class RunBatchItem(models.Model):
    """One run of a batch and what the batch did to it."""

    class Outcome(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        SKIPPED = "skipped"
        FAILED = "failed"

    batch = models.ForeignKey(RunBatch, on_delete=models.CASCADE, related_name="items")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    message = models.CharField(max_length=300, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "id"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "run"], name="run_batch_item_unique")
        ]
        indexes = [models.Index(fields=["batch", "outcome", "id"])]

    def __str__(self) -> str:
        return f"batch {self.batch_id} run {self.run_id} ({self.outcome})"


class GuardrailTotal(models.Model):
    """A running total a money guardrail is checked against (workflows/engine/guardrails.py).

    `scope` says what is counted: `run` (money moved by one run, `bucket` its id), `day` (money
    moved by the workflow on a UTC day, `bucket` the date), `hour` (runs that moved money in a
    UTC hour, `currency` empty) and `step` (a non-transactional step already counted, `bucket`
    its idempotency key). Only ever changed by one conditional upsert, so two workers cannot
    both take the last unit of a cap.
    """

    class Scope(models.TextChoices):
        RUN = "run"
        DAY = "day"
        HOUR = "hour"
        STEP = "step"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=4, choices=Scope.choices)
    bucket = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, blank=True)
    total = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "scope", "bucket", "currency"], name="guardrail_total_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} {self.scope} {self.bucket} {self.currency}: {self.total}"


class NotificationSubscription(models.Model):
    """A team member who wants an e-mail when a run fails (one workflow, or all of them)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    # Null: every workflow of the environment.
    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["environment", "user", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "environment", "workflow"],
                condition=Q(workflow__isnull=False),
                name="notification_sub_unique_workflow",
            ),
            models.UniqueConstraint(
                fields=["user", "environment"],
                condition=Q(workflow__isnull=True),
                name="notification_sub_unique_all",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} -> {self.workflow_id or 'all'}"


class FailureDigest(models.Model):
    """One notification sent for a workflow in one time window (`bucket`).

    The unique (workflow, bucket) is the race guard: whoever creates the row sends; everyone
    else leaves their failures for the next window's digest.
    """

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    bucket = models.BigIntegerField()
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "bucket"], name="failure_digest_unique")
        ]

    def __str__(self) -> str:
        return f"digest {self.workflow_id}/{self.bucket}"


class FailureNotice(models.Model):
    """Outbox row: written in the transaction that fails the run, claimed by one digest."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    # A restarted run that fails again is a new failure (Run.restart_count at the time).
    restart = models.PositiveIntegerField(default=0)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    digest = models.ForeignKey(
        FailureDigest, null=True, blank=True, on_delete=models.SET_NULL, related_name="notices"
    )

    class Meta:
        indexes = [models.Index(fields=["workflow", "digest"])]
        constraints = [
            models.UniqueConstraint(fields=["run", "restart"], name="failure_notice_unique")
        ]

    def __str__(self) -> str:
        return f"failure of run {self.run_id}"


# --- system workflows (workflows/system/catalogue.py) ---------------------------------------------


class SystemWorkflowSettings(models.Model):
    """What an environment configured inside one system workflow: wording, recipients, steps.

    The steps themselves are fixed in code; an empty subject or body means the default template.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    system_key = models.CharField(max_length=60)
    # Step ids turned off; each is recorded as skipped (with the reason) when a run reaches it.
    disabled_steps = models.JSONField(default=list, blank=True)
    email_subject = models.CharField(max_length=200, blank=True)
    email_body = models.TextField(blank=True)
    # Usernames or e-mail addresses of back-office users (the `team.email` rule).
    team_recipients = models.JSONField(default=list, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "system workflow settings"
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "system_key"], name="system_settings_unique_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system_key} settings"


class SystemStatistic(models.Model):
    """One counted billing fact (a subscription started, a payment failed…).

    Insert-only, one row per step idempotency key, so a step executed again counts nothing twice;
    the statistics are sums over these rows.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=60)
    object_id = models.CharField(max_length=60, blank=True)
    amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["environment", "metric", "created"])]

    def __str__(self) -> str:
        return f"{self.metric} {self.object_id}"


class ProviderNotification(models.Model):
    """What the payment provider was told (the simulator keeps it; an adapter would send it)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    topic = models.CharField(max_length=80)
    object_id = models.CharField(max_length=60, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.topic} {self.object_id}"


class PaymentRetry(models.Model):
    """A due-date row: pay this invoice again at `due_at` (claimed by `payment_retries_run`)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    invoice_id = models.CharField(max_length=60)
    attempt = models.PositiveSmallIntegerField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    result = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"retry {self.invoice_id} #{self.attempt}"


class Backtest(models.Model):
    """A workflow version (or its draft, as it was) replayed against stored events, recording
    what it would do and writing nothing to billing (workflows/backtests/, docs/workflows.md
    "Backtests").

    The job walks the events of the range in keyset chunks of (created, id); each chunk's
    counts are added to the totals in the transaction that moves the cursor past it, so a
    worker that dies mid-chunk leaves neither, and the next one counts the chunk once.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="backtests")
    # The number of the published version replayed; null for the draft.
    version_number = models.PositiveIntegerField(null=True, blank=True)
    # The definition walked, as it was when the backtest was asked for.
    definition = models.JSONField()
    since = models.DateTimeField()
    until = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    events_total = models.PositiveIntegerField(null=True, blank=True)
    events_scanned = models.PositiveIntegerField(default=0)
    would_start = models.PositiveIntegerField(default=0)
    # {path key: runs}, {step id: {"would_run": n, "amounts": {currency: minor units}}}
    paths = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=dict, blank=True)
    # [{"event", "created", "route", "path", "steps"}], a few per route.
    samples = models.JSONField(default=list, blank=True)
    # The last event counted (keyset: created, then id); the next chunk starts after it.
    cursor_created = models.DateTimeField(null=True, blank=True)
    cursor_event = models.CharField(max_length=40, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Renewed after each chunk; a stale one lost its worker and the sweep enqueues it again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"backtest {self.pk} of workflow {self.workflow_id} ({self.status})"

    @property
    def version_label(self) -> str:
        return "draft" if self.version_number is None else str(self.version_number)
