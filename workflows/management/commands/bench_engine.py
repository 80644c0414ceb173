"""`python manage.py bench_engine`: how fast the engine is, against the peers a team could use.

Run it on PostgreSQL (a database of its own: each round adds rows and, for the peers, their
tables). The same 5-step work (`workflows/operations/bench_peers/work.py`: a condition, three
`customers.update` billing actions, one `team.email` to the in-memory backend) is measured on:

* `billflow`: the engine, one `qcluster` of `--workers` processes;
* `async_chain`: the same steps as a plain django-q2 chain, one task per step, same cluster size;
* `procrastinate`: one job per step, each deferring the next in its own transaction;
* `dbos`: a DBOS Transact workflow per event (three transactions and one step) from a DBOS queue.

Each round measures every system once, in an order that rotates, each with its own worker
processes started for it and a fresh state (a new sandbox environment; Procrastinate's queue
emptied; DBOS's system database made again): a warm-up, a burst of `--events` events (first
hand-off to last e-mail sent -> steps/s, and the machine's CPU per event), then events paced at
`--rate` per second (event commit -> last step done -> p50/p95). A peer whose package is not
installed is listed as such (`pip install -e .[bench]`). See docs/benchmarks.md.

With Billflow measured, two in-process figures follow (not `--skip-overhead`): (a) the same
steps called one after the other without the engine, and (a') the engine dispatching and
executing in this process without the queue: the cost of durability, per run.
"""

from __future__ import annotations

import signal
import statistics
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from billing.events import event_envelope
from billing.models import Environment, Event
from workflows import services as workflow_services
from workflows.engine.dispatch import event_dispatch
from workflows.models import Run
from workflows.operations.bench_peers.rounds import SYSTEMS, run_rounds, table
from workflows.operations.bench_peers.work import (  # noqa: F401 (DEFINITION: bench_sustained's)
    DEFINITION,
    OPS_USER,
    STEPS_PER_RUN,
    events_undispatched,
    ops_user,
    step_work,
)

DEFAULT_PEERS = "billflow,async_chain,procrastinate,dbos"


class Command(BaseCommand):
    help = "Benchmark the workflow engine against async_chain, Procrastinate and DBOS Transact."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--events", type=int, default=300, help="events per burst")
        parser.add_argument("--rate", type=float, default=20.0, help="paced events per second")
        parser.add_argument("--paced-seconds", type=float, default=10.0)
        parser.add_argument("--workers", type=int, default=2, help="worker processes per system")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument(
            "--peers", default=DEFAULT_PEERS, help=f"comma-separated, of: {', '.join(SYSTEMS)}"
        )
        parser.add_argument("--timeout", type=float, default=300.0, help="per phase, seconds")
        parser.add_argument("--skip-overhead", action="store_true")

    def handle(self, *args, **options) -> None:
        names = [name.strip() for name in options["peers"].split(",") if name.strip()]
        unknown = [name for name in names if name not in SYSTEMS]
        if unknown or not names:
            raise CommandError(
                f"--peers: unknown {', '.join(unknown) or '(none given)'}; "
                f"choose among {', '.join(SYSTEMS)}"
            )
        if options["rounds"] < 1 or options["events"] < 1:
            raise CommandError("--rounds and --events must be at least 1")
        if connection.vendor != "postgresql":
            raise CommandError("bench_engine needs PostgreSQL (DATABASE_URL)")
        # The in-process baselines send their e-mail here: keep it in memory, like the workers.
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        ops_user()

        systems = [SYSTEMS[name]() for name in names]
        skipped = [system.name for system in systems if system.missing()]
        measured = [system for system in systems if not system.missing()]
        results = {}
        # A `kill` stops the run like Ctrl-C does: through the `finally` that stops the workers.
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            if measured:
                results = run_rounds(
                    measured,
                    options["rounds"],
                    lambda system: system.measure(
                        events=options["events"],
                        rate=options["rate"],
                        paced_seconds=options["paced_seconds"],
                        workers=options["workers"],
                        timeout=options["timeout"],
                    ),
                    self.stdout.write,
                )
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("")
        self.stdout.write(
            f"events per burst: {options['events']}; rounds: {options['rounds']}; "
            f"workers per system: {options['workers']}; queue broker: {settings.QUEUE_BROKER}"
        )
        for line in table(results, skipped, options["rate"]):
            self.stdout.write(line)
        if "billflow" in results and not options["skip_overhead"]:
            self._overhead(options["events"], results["billflow"])

    # --- the cost of durability, in this process -------------------------------------------

    def _overhead(self, events: int, billflow) -> None:
        stamp = time.time_ns()
        engine_env = self._environment(f"inline-{stamp}")
        plain_env = self._environment(f"direct-{stamp}")
        workflow = workflow_services.workflow_create(environment=engine_env, definition=DEFINITION)
        workflow_services.workflow_publish(workflow=workflow)
        workflow_services.workflow_activate(workflow=workflow)
        direct = self._direct(plain_env, events)
        inline = self._engine_in_process(engine_env, workflow, events)
        burst = statistics.median(f.burst_seconds for f in billflow)
        steps = events * STEPS_PER_RUN
        self.stdout.write(
            f"(a) direct:     {direct:.2f} s  {steps / direct:.0f} steps/s (1 process, no engine)"
        )
        self.stdout.write(
            f"(a') engine in this process: {inline:.2f} s  {steps / inline:.0f} steps/s "
            "(dispatch + run_execute, no queue, 1 process)"
        )
        self.stdout.write(
            f"overhead (a) engine burst (median)/direct: {burst / direct:.2f}x  (target <= 2.0x)"
        )
        self.stdout.write(f"overhead (a') per run, 1 process each: {inline / direct:.2f}x")

    def _environment(self, slug: str) -> Environment:
        return Environment.objects.create(slug=slug, name=slug, kind=Environment.Kind.SANDBOX)

    def _direct(self, environment: Environment, events: int) -> float:
        event_ids = events_undispatched(environment, events, "direct")
        started = time.time()
        for event in Event.objects.filter(pk__in=event_ids).select_related("environment"):
            envelope = event_envelope(event)
            for step in DEFINITION["steps"]:
                step_work(step, environment, envelope, f"direct/{event.pk}/{step['id']}")
        return time.time() - started

    def _engine_in_process(self, environment: Environment, workflow, events: int) -> float:
        """The engine's own cost without the queue: dispatch and execute here, one by one."""
        from workflows.engine.executor import run_execute

        event_ids = events_undispatched(environment, events, "inline")
        started = time.time()
        for event_id in event_ids:
            for run_id in event_dispatch(event_id=event_id):
                run_execute(run_id=run_id)
        elapsed = time.time() - started
        runs = Run.objects.filter(workflow=workflow, event_id__in=event_ids)
        if runs.filter(status=Run.Status.SUCCEEDED).count() != events:
            raise CommandError("in-process runs did not all succeed")
        return elapsed
