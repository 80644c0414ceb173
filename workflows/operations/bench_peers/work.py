"""The 5-step work every benchmarked system does, and what measuring one system means.

Per `customer.created` event: a condition on the event (the customer has an e-mail), three
`customers.update` billing actions (each reads the customer under lock, writes its metadata and
records a `customer.updated` event, in one transaction), and one `team.email` (a delivery row
claimed, the mail sent to the in-memory backend, the row marked sent). Billflow runs them as a
workflow; the peers call `step_work` with the same step definitions, so every system makes the
same billing service calls per step and only the machinery around them differs.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import CommandError
from django.db import transaction

from billing import services as billing
from billing.events import event_envelope
from billing.models import Customer, Environment, Event
from workflows.actions import registry
from workflows.actions.registry import ActionContext
from workflows.engine.conditions import evaluate
from workflows.models import Delivery
from workflows.operations.bench import machine_cpu_seconds, percentile

OPS_USER = "bench-ops"
CONDITION = {"all": [{"field": "trigger.data.object.email", "op": "exists"}]}
STEPS_PER_RUN = 5
WARM_UP_EVENTS = 10


def _update_params(name: str) -> dict:
    return {"customer": "{{ trigger.data.object.id }}", "metadata": {name: "done"}}


EMAIL_PARAMS = {
    "recipients": [OPS_USER],
    "subject": "New customer {{ trigger.data.object.id }}",
    "body": "Customer {{ trigger.data.object.id }} ({{ trigger.data.object.email }}) signed up.",
}

DEFINITION = {
    "name": "Benchmark: onboard customer",
    "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
    "steps": [
        {"id": "has_email", "type": "condition", "condition": CONDITION},
        *(
            {
                "id": name,
                "type": "action",
                "action": "customers.update",
                "params": _update_params(name),
            }
            for name in ("tag_a", "tag_b", "tag_c")
        ),
        {"id": "notify", "type": "action", "action": "team.email", "params": EMAIL_PARAMS},
    ],
}
LAST_STEP = DEFINITION["steps"][-1]["id"]


def step_work(step: dict, environment: Environment, envelope: dict, key: str) -> None:
    """One step's work without the engine: resolve, call the action (in a transaction unless
    the action manages its own, as `team.email` does)."""
    from workflows.engine.templating import resolve

    context = {"trigger": envelope}
    if step["type"] == "condition":
        if not evaluate(step["condition"], context):
            raise RuntimeError("benchmark condition unexpectedly false")
        return
    action = registry.get(step["action"])
    ctx = ActionContext(environment=environment, idempotency_key=key)
    params = resolve(step["params"], context)
    if getattr(action, "transactional", True):
        with transaction.atomic():
            action.execute(ctx, params)
    else:
        action.execute(ctx, params)


def step_key(prefix: str, event_id: str, index: int) -> str:
    return f"{prefix}/{event_id}/{DEFINITION['steps'][index]['id']}"


def chain_step(index: int, environment_id: int, event_id: str, prefix: str) -> None:
    """Step `index` of one event's work, by ids: what a peer's job or task runs."""
    environment = Environment.objects.get(pk=environment_id)
    envelope = event_envelope(Event.objects.select_related("environment").get(pk=event_id))
    step_work(DEFINITION["steps"][index], environment, envelope, step_key(prefix, event_id, index))


def ops_user() -> None:
    """The `team.email` recipient."""
    user, _ = User.objects.get_or_create(
        username=OPS_USER, defaults={"email": f"{OPS_USER}@example.com", "is_staff": True}
    )
    group, _ = Group.objects.get_or_create(name="Admin")
    user.groups.add(group)


def events_undispatched(environment: Environment, count: int, tag: str) -> list[str]:
    """`count` new customers whose `customer.created` events no workflow has seen; event ids."""
    dispatcher = settings.BILLING_EVENT_DISPATCHER
    settings.BILLING_EVENT_DISPATCHER = ""
    try:
        ids = [
            billing.customer_create(
                environment=environment, email=f"{tag}-{i}@example.com", name=f"{tag} {i}"
            ).pk
            for i in range(count)
        ]
    finally:
        settings.BILLING_EVENT_DISPATCHER = dispatcher
    return list(
        Event.objects.filter(type="customer.created", object_id__in=ids)
        .order_by("created")
        .values_list("pk", flat=True)
    )


def emails_sent(prefix: str) -> dict[str, datetime]:
    """When each event's last step (the e-mail) was sent, by event id, for one system's round."""
    rows = Delivery.objects.filter(
        idempotency_key__startswith=f"{prefix}/",
        idempotency_key__endswith=f"/{LAST_STEP}",
        sent_at__isnull=False,
    ).values_list("idempotency_key", "sent_at")
    return {key.split("/")[1]: sent_at for key, sent_at in rows}


@dataclass
class Figures:
    """One system's round: a burst of `events` and the paced latencies."""

    events: int
    burst_seconds: float
    cpu_seconds: float | None  # the whole machine's, over the burst
    latencies: list[float] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.events * STEPS_PER_RUN / self.burst_seconds

    @property
    def cpu_ms_per_event(self) -> float | None:
        if self.cpu_seconds is None:
            return None
        return self.cpu_seconds * 1000 / self.events


class System:
    """A way to run the 5-step work on worker processes. Subclasses start and stop the workers
    on a fresh state, start one event's work (`begin`) and say which events have finished."""

    name = ""
    requires: tuple[str, ...] = ()  # modules that must be importable

    def missing(self) -> bool:
        return any(importlib.util.find_spec(module) is None for module in self.requires)

    def start(self, workers: int, prefix: str) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def prepare(self, environment: Environment) -> None:
        """Anything the environment needs before its first event (Billflow: the workflow)."""

    def begin(self, environment: Environment, event_ids: list[str]) -> None:
        raise NotImplementedError

    def finished(self, event_ids: list[str]) -> dict[str, datetime]:
        raise NotImplementedError

    def paced_event(self, environment: Environment, tag: str) -> str:
        """One paced event: a customer created, then its work begun at once."""
        (event_id,) = events_undispatched(environment, 1, tag)
        self.begin(environment, [event_id])
        return event_id

    def log_tail(self) -> str:
        return ""

    # --- one round -------------------------------------------------------------------------

    def measure(
        self, *, events: int, rate: float, paced_seconds: float, workers: int, timeout: float
    ) -> Figures:
        stamp = f"{self.name}-{time.time_ns()}"
        environment = Environment.objects.create(
            slug=stamp, name=stamp, kind=Environment.Kind.SANDBOX
        )
        self.prepare(environment)
        self.start(workers, prefix=stamp)
        try:
            warm = events_undispatched(environment, WARM_UP_EVENTS, "warm")
            self.begin(environment, warm)
            self._wait(warm, timeout, "the warm-up")
            figures = self._burst(environment, events, timeout)
            figures.latencies = self._paced(environment, rate, paced_seconds, timeout)
        finally:
            self.stop()
        updated = Customer.objects.filter(environment=environment, metadata__has_key="tag_c")
        expected = WARM_UP_EVENTS + events + len(figures.latencies)
        if updated.count() != expected:
            raise CommandError(f"{self.name}: {updated.count()} of {expected} customers updated")
        return figures

    def _burst(self, environment: Environment, events: int, timeout: float) -> Figures:
        event_ids = events_undispatched(environment, events, "burst")
        before = machine_cpu_seconds()
        started = time.time()
        self.begin(environment, event_ids)
        ends = self._wait(event_ids, timeout, "the burst")
        after = machine_cpu_seconds()
        elapsed = max(ends.values()).timestamp() - started
        cpu = None if before is None or after is None else after[0] - before[0]
        return Figures(events=events, burst_seconds=elapsed, cpu_seconds=cpu)

    def _paced(
        self, environment: Environment, rate: float, seconds: float, timeout: float
    ) -> list[float]:
        count = max(1, int(rate * seconds))
        event_ids = []
        begin = time.monotonic()
        for i in range(count):
            pause = begin + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            event_ids.append(self.paced_event(environment, f"paced-{i}"))
        ends = self._wait(event_ids, timeout, "the paced events")
        created = dict(Event.objects.filter(pk__in=event_ids).values_list("pk", "created"))
        return [(ends[pk] - created[pk]).total_seconds() for pk in event_ids]

    def _wait(self, event_ids: list[str], timeout: float, what: str) -> dict[str, datetime]:
        # Timings come from the rows' timestamps, not from when this loop notices: it looks
        # twice a second so that watching does not take CPU from the workers it measures.
        deadline = time.monotonic() + timeout
        while True:
            ends = self.finished(event_ids)
            if len(ends) == len(event_ids):
                return ends
            if time.monotonic() > deadline:
                raise CommandError(
                    f"{self.name}: timed out waiting for {what} "
                    f"({len(ends)} of {len(event_ids)} finished){self.log_tail()}"
                )
            time.sleep(0.5)


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def latency_percentiles(figures: list[Figures]) -> tuple[float, float]:
    """p50 and p95 of all paced events of all rounds together."""
    latencies = [value for round_figures in figures for value in round_figures.latencies]
    return percentile(latencies, 0.5), percentile(latencies, 0.95)
