"""Workflow definitions (relational, versioned) and their runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from billing.models import Environment, Event


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
    trigger_type = models.CharField(max_length=10, choices=TriggerType.choices)
    trigger_event = models.CharField(max_length=80, blank=True, db_index=True)
    trigger_accounts = models.CharField(
        max_length=10, choices=AccountScope.choices, default=AccountScope.PLATFORM
    )
    trigger_cron = models.CharField(max_length=120, blank=True)
    # Manual trigger: [{"name", "type", "required", ...}]
    trigger_input = models.JSONField(default=list, blank=True)
    step_count = models.PositiveSmallIntegerField(default=0)
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


class Run(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    class TriggerKind(models.TextChoices):
        EVENT = "event"
        MANUAL = "manual"
        SCHEDULE = "schedule"

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
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELED}


class StepRun(models.Model):
    """One execution record per (run, step, iteration)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELED = "canceled"

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
