"""`python manage.py bench_engine --events N`: what the engine costs and how fast it is.

Run it on PostgreSQL. It starts its own `qcluster` (2 worker processes by default), makes two
fresh sandbox environments, and measures the same 5-step work four ways:

1. engine, burst: N `customer.created` events, each starting a 5-step workflow (a condition,
   three `customers.update` billing actions, one `team.email` to the locmem backend); from the
   first dispatch to the last run finished -> runs/s and steps/s, and the CPU the whole
   machine spent per run meanwhile (Linux);
2. engine, paced: events at `--rate` per second -> p50/p95 from event commit to run finished;
3. (a) direct: the same condition and actions called one after the other in this process,
   without the engine (no leases, no step records) -> the cost of durability;
4. (b) async_chain: the same five steps as a plain django-q2 chain, one task per step, on the
   same cluster -> what a team would write without Billflow;
5. (a') the engine again, dispatching and executing in this one process without the queue:
   its per-run cost against (a), a figure that a busy shared machine disturbs much less than
   the wall-clock ratios.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Max
from django_q.tasks import async_chain

from billing import services as billing
from billing.events import event_envelope
from billing.models import Customer, Environment, Event
from workflows import services as workflow_services
from workflows.actions import registry
from workflows.actions.registry import ActionContext
from workflows.engine.conditions import evaluate
from workflows.engine.dispatch import event_dispatch
from workflows.models import Delivery, Run, Workflow
from workflows.operations.bench import (
    BenchCluster,
    clusters_stop,
    machine_cpu_seconds,
    percentile,
)

OPS_USER = "bench-ops"
CONDITION = {"all": [{"field": "trigger.data.object.email", "op": "exists"}]}
STEPS_PER_RUN = 5


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


def _step_work(step: dict, environment: Environment, envelope: dict, key: str) -> None:
    """One step's work without the engine: resolve, call the action."""
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


def chain_step(index: int, environment_id: int, event_id: str, prefix: str) -> None:
    """One link of the async_chain baseline (runs in a worker)."""
    environment = Environment.objects.get(pk=environment_id)
    envelope = event_envelope(Event.objects.select_related("environment").get(pk=event_id))
    step = DEFINITION["steps"][index]
    _step_work(step, environment, envelope, f"{prefix}/{event_id}/{step['id']}")


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


class Command(BaseCommand):
    help = "Benchmark the workflow engine against direct calls and a plain async_chain."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--events", type=int, default=300, help="events per burst phase")
        parser.add_argument("--rate", type=float, default=20.0, help="paced events per second")
        parser.add_argument("--paced-seconds", type=float, default=10.0)
        parser.add_argument("--workers", type=int, default=2, help="worker processes")
        parser.add_argument("--timeout", type=float, default=300.0, help="per phase, seconds")

    def handle(self, *args, **options) -> None:
        self.n = options["events"]
        self.timeout = options["timeout"]
        if connection.vendor != "postgresql":
            self.stderr.write("Figures are only meaningful on PostgreSQL (DATABASE_URL).")
        # The direct baseline sends its e-mail in this process: keep it in memory, like workers.
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        stamp = int(time.time())
        engine_env = self._environment(f"bench-{stamp}")
        plain_env = self._environment(f"bench-{stamp}-plain")
        self._ops_user()
        workflow = workflow_services.workflow_create(environment=engine_env, definition=DEFINITION)
        workflow_services.workflow_publish(workflow=workflow)
        workflow_services.workflow_activate(workflow=workflow)

        cluster = BenchCluster(options["workers"])
        try:
            self._warm_up(engine_env, workflow)
            burst, cpu_per_run, steal_per_run = self._engine_burst(engine_env, workflow)
            paced = self._engine_paced(
                engine_env, workflow, options["rate"], options["paced_seconds"]
            )
            chain = self._chain(plain_env)
        finally:
            clusters_stop([cluster])
        direct = self._direct(plain_env)
        inline = self._engine_in_process(engine_env, workflow)

        steps = self.n * STEPS_PER_RUN
        self.stdout.write("")
        self.stdout.write(
            f"events per burst: {self.n}; workers: {options['workers']}; "
            f"queue broker: {settings.QUEUE_BROKER}"
        )
        cpu = ""
        if cpu_per_run is not None:
            cpu = (
                f"  machine CPU {cpu_per_run * 1000:.1f} ms per run"
                f" (+{steal_per_run * 1000:.1f} ms taken by the host)"
            )
        self.stdout.write(
            f"engine burst:   {burst:.2f} s  {self.n / burst:.1f} runs/s  "
            f"{steps / burst:.0f} steps/s{cpu}"
        )
        self.stdout.write(
            f"engine paced:   {paced['count']} events at {options['rate']:.0f}/s  "
            f"p50 {paced['p50'] * 1000:.0f} ms  p95 {paced['p95'] * 1000:.0f} ms  "
            f"max {paced['max'] * 1000:.0f} ms (event commit -> run finished)"
        )
        self.stdout.write(
            f"(a) direct:     {direct:.2f} s  {steps / direct:.0f} steps/s (1 process, no engine)"
        )
        self.stdout.write(
            f"(b) async_chain:{chain:.2f} s  {steps / chain:.0f} steps/s (one task per step)"
        )
        self.stdout.write(
            f"(a') engine in this process: {inline:.2f} s  {steps / inline:.0f} steps/s "
            "(dispatch + run_execute, no queue, 1 process)"
        )
        self.stdout.write(f"overhead (a) engine/direct: {burst / direct:.2f}x  (target <= 2.0x)")
        self.stdout.write(f"overhead (a') per run, 1 process each: {inline / direct:.2f}x")
        self.stdout.write(f"chain/engine (b):           {chain / burst:.2f}x  (target > 1.0x)")

    # --- setup -----------------------------------------------------------------------------

    def _environment(self, slug: str) -> Environment:
        return Environment.objects.create(slug=slug, name=slug, kind=Environment.Kind.SANDBOX)

    def _ops_user(self) -> None:
        user, _ = User.objects.get_or_create(
            username=OPS_USER, defaults={"email": f"{OPS_USER}@example.com", "is_staff": True}
        )
        group, _ = Group.objects.get_or_create(name="Admin")
        user.groups.add(group)

    def _wait(self, done, what: str) -> None:
        # Timings come from the rows' timestamps, not from when this loop notices: it looks
        # twice a second so that watching does not take CPU from the workers it measures.
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise CommandError(f"timed out waiting for {what}")
            time.sleep(0.5)

    def _customers(self, environment: Environment, count: int, tag: str) -> list[str]:
        """Customers whose `customer.created` events are not dispatched yet; their event ids."""
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

    def _finished(self, workflow: Workflow, event_ids: list[str]):
        runs = Run.objects.filter(workflow=workflow, event_id__in=event_ids)

        def check() -> bool:
            failed = runs.filter(status=Run.Status.FAILED).first()
            if failed is not None:
                raise CommandError(f"run {failed.pk} failed: {failed.error}")
            return runs.filter(status=Run.Status.SUCCEEDED).count() == len(event_ids)

        return check

    # --- phases ----------------------------------------------------------------------------

    def _warm_up(self, environment: Environment, workflow: Workflow) -> None:
        event_ids = self._customers(environment, 10, "warm")
        for event_id in event_ids:
            event_dispatch(event_id=event_id)
        self._wait(self._finished(workflow, event_ids), "the warm-up runs")

    def _engine_burst(
        self, environment: Environment, workflow: Workflow
    ) -> tuple[float, float | None, float | None]:
        """Seconds from the first dispatch to the last run finished, and the machine's CPU per
        run meanwhile: its own, and what its host took (steal)."""
        event_ids = self._customers(environment, self.n, "burst")
        before = machine_cpu_seconds()
        started = time.time()
        for event_id in event_ids:
            event_dispatch(event_id=event_id)
        self._wait(self._finished(workflow, event_ids), "the burst runs")
        after = machine_cpu_seconds()
        last = Run.objects.filter(event_id__in=event_ids).aggregate(m=Max("finished_at"))["m"]
        elapsed = last.timestamp() - started
        if before is None or after is None:
            return elapsed, None, None
        # The wait notices the end up to half a second late: CPU is counted over that too.
        return elapsed, (after[0] - before[0]) / self.n, (after[1] - before[1]) / self.n

    def _engine_paced(
        self, environment: Environment, workflow: Workflow, rate: float, seconds: float
    ) -> dict:
        count = max(1, int(rate * seconds))
        ids = []
        begin = time.monotonic()
        for i in range(count):
            target = begin + i / rate
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            ids.append(
                billing.customer_create(environment=environment, email=f"paced-{i}@example.com").pk
            )
        event_ids = list(
            Event.objects.filter(type="customer.created", object_id__in=ids).values_list(
                "pk", flat=True
            )
        )
        self._wait(self._finished(workflow, event_ids), "the paced runs")
        latencies = [
            _seconds(run.event.created, run.finished_at)
            for run in Run.objects.filter(event_id__in=event_ids).select_related("event")
        ]
        return {
            "count": count,
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
        }

    def _engine_in_process(self, environment: Environment, workflow: Workflow) -> float:
        """The engine's own cost without the queue: dispatch and execute here, one by one."""
        from workflows.engine.executor import run_execute

        event_ids = self._customers(environment, self.n, "inline")
        started = time.time()
        for event_id in event_ids:
            for run_id in event_dispatch(event_id=event_id):
                run_execute(run_id=run_id)
        elapsed = time.time() - started
        if not self._finished(workflow, event_ids)():
            raise CommandError("in-process runs did not all succeed")
        return elapsed

    def _direct(self, environment: Environment) -> float:
        event_ids = self._customers(environment, self.n, "direct")
        started = time.time()
        for event in Event.objects.filter(pk__in=event_ids).select_related("environment"):
            envelope = event_envelope(event)
            for step in DEFINITION["steps"]:
                _step_work(step, environment, envelope, f"direct/{event.pk}/{step['id']}")
        return time.time() - started

    def _chain(self, environment: Environment) -> float:
        event_ids = self._customers(environment, self.n, "chain")
        prefix = f"chain{int(time.time())}"
        started = time.time()
        for event_id in event_ids:
            async_chain(
                [
                    (f"{__name__}.chain_step", (index, environment.pk, event_id, prefix))
                    for index in range(STEPS_PER_RUN)
                ]
            )
        emails = Delivery.objects.filter(
            idempotency_key__startswith=f"{prefix}/", sent_at__isnull=False
        )
        self._wait(lambda: emails.count() == self.n, "the async_chain runs")
        last = emails.aggregate(m=Max("sent_at"))["m"]
        updated = Customer.objects.filter(environment=environment, metadata__has_key="tag_c")
        assert updated.count() == self.n, "every chain must have run its three updates"
        return last.timestamp() - started
