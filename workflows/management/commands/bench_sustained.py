"""`python manage.py bench_sustained`: sustained load on PostgreSQL, optionally with crashes.

It makes a fresh sandbox environment with the 5-step workflow of `bench_engine` (customer.created
-> a condition, three `customers.update`, one `team.email` to the in-memory mail backend),
installs the project's schedules as a deploy does (the sweep recovers runs of killed clusters;
the every-minute retention prune keeps 90 days, so it deletes none of these runs), starts
`--clusters` `qcluster` processes and, after a warm-up, creates customers at `--rate` per second for
`--minutes` from this one process, paced by the wall clock: a lagging engine does not slow the
producer, and a producer that cannot keep up says so.

Every minute it prints the events produced, runs finished per second, p50/p95/p99 from event
commit to run finished (runs finished in that minute), the lag of the oldest run not yet
terminal and how many runs are not finished. `--kill-every M` SIGKILLs one whole cluster every
M minutes (taking turns) and starts it again at once. Then it waits (at most `--drain-minutes`)
for the backlog, reports the drain time, the overall figures and the database and run-table
sizes at start and end, and audits the ledger: every event has its run, every run succeeded,
every effect happened once. Any miss is a FAILED line and a non-zero exit.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.db.models import Max, Min
from django.utils import timezone
from django_q.brokers import get_broker

from billing import services as billing
from billing.models import Environment, Event
from workflows import services as workflow_services
from workflows.management.commands.bench_engine import DEFINITION, OPS_USER
from workflows.models import Delivery, Run, StepRun, Workflow
from workflows.operations.bench import BenchCluster, clusters_stop, percentile, table_sizes
from workflows.operations.health import clusters_status
from workflows.operations.schedules import schedules_install

TERMINAL = (Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED)
UNFINISHED = (Run.Status.PENDING, Run.Status.RUNNING)
# bench_engine's five steps (a condition, three updates, an e-mail), or the same with one update:
# a lighter but still complete automation (check, billing change, e-mail to the team).
WORKFLOWS = {
    "five-step": DEFINITION,
    "three-step": {
        **DEFINITION,
        "name": "Benchmark: tag and announce a customer",
        "steps": [s for s in DEFINITION["steps"] if s["id"] in ("has_email", "tag_a", "notify")],
    },
}
EMAIL_STEP = "notify"


def updates_per_run(definition: dict) -> int:
    return sum(1 for s in definition["steps"] if s.get("action") == "customers.update")


WINDOW_SECONDS = 60.0
SAMPLE_SECONDS = 5.0
# A row is computed this long after its minute ends, so runs finished at the edge have committed.
ROW_GRACE_SECONDS = 1.0


@dataclass
class Kill:
    at: float  # seconds since production started
    cluster: int
    old_pid: int
    new_pid: int


@dataclass
class Load:
    """What the producer and the supervisor share while the load runs."""

    workflow: Workflow
    started: float  # time.time() when production started
    produced: list[float] = field(default_factory=list)  # time.time() of each event's commit
    production_over: threading.Event = field(default_factory=threading.Event)
    kills: list[Kill] = field(default_factory=list)
    max_lag: float = 0.0

    @property
    def since(self) -> datetime:
        return _at(self.started)

    def runs(self):
        """The runs of the produced events (the warm-up's are older)."""
        return Run.objects.filter(workflow=self.workflow, created__gte=self.since)

    def produced_between(self, a: float, b: float) -> int:
        return sum(1 for t in list(self.produced) if a <= t < b)


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.get_current_timezone())


def latencies(runs) -> list[float]:
    """Seconds from each event's commit to its run's finish."""
    return [
        (finished - created).total_seconds()
        for finished, created in runs.filter(finished_at__isnull=False).values_list(
            "finished_at", "event__created"
        )
    ]


def oldest_unfinished_lag(load: Load) -> float:
    """now - created of the oldest run not yet terminal (0 when every run is done)."""
    oldest = (
        Run.objects.filter(workflow=load.workflow, status__in=UNFINISHED)
        .aggregate(m=Min("created"))
        .get("m")
    )
    return max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0


def not_finished(load: Load) -> int:
    """Produced events whose run is not terminal yet (including events not dispatched yet)."""
    return len(load.produced) - load.runs().filter(status__in=TERMINAL).count()


def _ms(seconds: float) -> str:
    """Milliseconds, or "-" for a minute in which no run finished."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def figures_line(values: list[float]) -> str:
    return (
        f"p50 {_ms(percentile(values, 0.50))} ms  p95 {_ms(percentile(values, 0.95))} ms  "
        f"p99 {_ms(percentile(values, 0.99))} ms  max {_ms(max(values, default=float('nan')))} ms"
    )


def ledger_audit(
    *,
    environment: Environment,
    runs,
    since: datetime,
    produced: int,
    updates_each: int = updates_per_run(DEFINITION),
) -> list[str]:
    """The ledger of the load: every event has its run, every run succeeded, every effect once.

    `runs` are the runs of the `produced` customer.created events committed since `since` in
    `environment`; returns one line per problem, none when nothing was lost.
    """
    problems = []
    events = Event.objects.filter(
        environment=environment, type="customer.created", created__gte=since
    )
    if events.count() != produced:
        problems.append(f"{produced} events produced but {events.count()} recorded")
    orphans = events.filter(runs__isnull=True).count()
    if orphans:
        problems.append(f"{orphans} events have no run")
    by_status = {s: runs.filter(status=s).count() for s in Run.Status.values}
    unfinished = sum(by_status[s] for s in UNFINISHED)
    if unfinished:
        problems.append(f"{unfinished} runs are not terminal")
    failed = runs.exclude(status__in=(*UNFINISHED, Run.Status.SUCCEEDED))
    if failed.exists():
        first = failed.first()
        problems.append(
            f"{failed.count()} runs did not succeed; run {first.pk}: {first.status} "
            f"{first.stop_reason or first.error}"
        )
    succeeded = by_status[Run.Status.SUCCEEDED]
    updates = Event.objects.filter(
        environment=environment, type="customer.updated", created__gte=since
    ).count()
    if updates != updates_each * succeeded:
        problems.append(
            f"{updates} customer updates for {succeeded} succeeded runs "
            f"(expected {updates_each} each)"
        )
    email_keys = StepRun.objects.filter(
        run__in=runs, step_id=EMAIL_STEP, status=StepRun.Status.SUCCEEDED
    ).values("idempotency_key")
    sent = Delivery.objects.filter(
        kind=Delivery.Kind.EMAIL, status=Delivery.Status.SENT, idempotency_key__in=email_keys
    ).count()
    if sent != succeeded:
        problems.append(f"{sent} e-mails sent for {succeeded} succeeded runs")
    return problems


ROW_HEADER = (
    f"{'minute':>7} {'events':>7} {'runs/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
    f"{'oldest pending s':>17} {'not finished':>13} {'load':>5}  kills"
)
ROW_NOTE = (
    "(runs/s and p50/p95/p99: runs finished in that minute; oldest pending: the largest age "
    "of a run not yet terminal, sampled every 5 s; not finished: at the row's time; "
    "* = partial minute)"
)


class Supervisor(threading.Thread):
    """Samples the lag, prints a row per minute and, during production, kills clusters.

    It runs beside the producer, so the producer's pacing never waits for a report query.
    """

    def __init__(
        self, load: Load, clusters: list[BenchCluster], kill_every: float | None, write
    ) -> None:
        super().__init__(name="bench-supervisor", daemon=True)
        self.load = load
        self.clusters = clusters
        self.kill_every = kill_every
        self.write = write
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            connections.close_all()  # this thread's connection, so the database can be dropped

    def _loop(self) -> None:
        load = self.load
        window_start = load.started
        window_lag = 0.0
        next_sample = load.started
        next_kill = load.started + self.kill_every if self.kill_every else None
        kills_seen = 0
        self.write(ROW_NOTE)
        self.write(ROW_HEADER)
        while True:
            now = time.time()
            stopping = self.stopping.is_set()
            if next_kill is not None and now >= next_kill and not load.production_over.is_set():
                self._kill(now)
                next_kill += self.kill_every
            if now >= next_sample or stopping:
                lag = oldest_unfinished_lag(load)
                window_lag = max(window_lag, lag)
                load.max_lag = max(load.max_lag, lag)
                next_sample = now + SAMPLE_SECONDS
            window_end = window_start + WINDOW_SECONDS
            if now >= window_end + ROW_GRACE_SECONDS or stopping:
                end = min(window_end, now)
                kills = load.kills[kills_seen:]
                kills_seen = len(load.kills)
                self._row(window_start, end, window_lag, kills)
                window_start, window_lag = window_end, 0.0
            if stopping:
                return
            self.stopping.wait(0.2)

    def _kill(self, now: float) -> None:
        index = len(self.load.kills) % len(self.clusters)
        cluster = self.clusters[index]
        old_pid = cluster.pid
        cluster.restart()
        kill = Kill(now - self.load.started, index + 1, old_pid, cluster.pid)
        self.load.kills.append(kill)
        self.write(
            f"  kill at {kill.at / 60:.2f} min: cluster {kill.cluster} SIGKILLed "
            f"(pid {kill.old_pid}), restarted as pid {kill.new_pid}"
        )

    def _row(self, a: float, b: float, lag: float, kills: list[Kill]) -> None:
        load = self.load
        finished = load.runs().filter(finished_at__gte=_at(a), finished_at__lt=_at(b))
        values = latencies(finished)
        seconds = max(b - a, 1e-9)
        minute = (a - load.started) / 60 + 1
        label = f"{minute:.0f}" if b - a >= WINDOW_SECONDS else f"{minute:.0f}*"
        kill_text = ", ".join(f"c{k.cluster}@{k.at / 60:.2f}m" for k in kills) or "-"
        self.write(
            f"{label:>7} {load.produced_between(a, b):>7} {len(values) / seconds:>7.1f} "
            f"{_ms(percentile(values, 0.50)):>8} {_ms(percentile(values, 0.95)):>8} "
            f"{_ms(percentile(values, 0.99)):>8} {lag:>17.1f} {not_finished(load):>13} "
            # The machine's 1-minute load average: other work on it shows in the figures.
            f"{os.getloadavg()[0]:>5.1f}  {kill_text}"
        )


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def _quiet_queue_log():
    """django-q logs every enqueue at INFO: one line per event would bury the report."""
    logger = logging.getLogger("django-q")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class Command(BaseCommand):
    help = "Sustained load on PostgreSQL: N clusters, a steady event rate, optional crashes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--minutes", type=float, default=30.0, help="production time")
        parser.add_argument("--rate", type=float, default=50.0, help="events per second")
        parser.add_argument("--clusters", type=int, default=2, help="qcluster processes")
        parser.add_argument("--workflow", choices=sorted(WORKFLOWS), default="five-step")
        parser.add_argument("--workers", type=int, default=2, help="worker processes each")
        parser.add_argument(
            "--kill-every",
            type=float,
            default=None,
            metavar="MINUTES",
            help="SIGKILL one cluster (in turn) this often, and start it again at once",
        )
        parser.add_argument(
            "--drain-minutes", type=float, default=10.0, help="bound on the wait for the backlog"
        )

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_sustained needs PostgreSQL (DATABASE_URL=postgres://...).")
        if options["rate"] <= 0 or options["minutes"] <= 0 or options["clusters"] < 1:
            raise CommandError("--rate and --minutes must be positive, --clusters at least 1.")
        if options["kill_every"] is not None and options["kill_every"] <= 0:
            raise CommandError("--kill-every must be positive.")
        self.options = options
        # SIGTERM unwinds like Ctrl-C, so the clusters this command started are stopped too.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        with _quiet_queue_log():
            self._bench()

    def _bench(self) -> None:
        options = self.options
        environment, workflow = self._setup()
        self._say(
            f"sustained load: {options['rate']:g} events/s for {options['minutes']:g} min, "
            f"{options['clusters']} cluster(s) x {options['workers']} workers, "
            + (
                f"one cluster killed every {options['kill_every']:g} min"
                if options["kill_every"]
                else "no kills"
            )
        )
        clusters = [BenchCluster(options["workers"]) for _ in range(options["clusters"])]
        supervisor = None
        try:
            self._wait_ready(clusters)
            self._warm_up(environment, workflow)
            sizes_start = table_sizes()
            load = Load(workflow=workflow, started=time.time())
            supervisor = Supervisor(load, clusters, self._kill_seconds(), self._say)
            supervisor.start()
            producer = self._produce(environment, load)
            load.production_over.set()
            production_end = time.time()
            unfinished_at_end = not_finished(load)
            drained = self._drain(load)
            queue_left = get_broker().queue_size()
        finally:
            if supervisor is not None:
                supervisor.stopping.set()
                supervisor.join(timeout=60)
            clusters_stop(clusters)
        if supervisor.error is not None:
            raise CommandError(f"the supervisor failed: {supervisor.error!r}")
        sizes_end = table_sizes()
        self._report(load, producer, production_end, unfinished_at_end, drained)
        # Duplicate messages (the sweep re-announces runs pending for over 30 s) that the
        # clusters had not consumed yet; each would only find its run done.
        self._say(f"queue: {queue_left} messages still waiting in the broker after the drain")
        self._report_sizes(sizes_start, sizes_end)
        problems = (
            []
            if drained
            else [f"the backlog did not drain within {options['drain_minutes']:g} min"]
        )
        problems += ledger_audit(
            environment=environment,
            runs=load.runs(),
            since=load.since,
            produced=len(load.produced),
            updates_each=updates_per_run(WORKFLOWS[options["workflow"]]),
        )
        for problem in problems:
            self._say(f"FAILED: {problem}")
        if problems:
            raise CommandError(f"sustained load lost or broke work: {len(problems)} problem(s)")
        runs = load.runs().count()
        self._say(
            f"OK: nothing lost: {len(load.produced)} events, {runs} runs, all succeeded, "
            "each update and e-mail once"
        )

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _kill_seconds(self) -> float | None:
        every = self.options["kill_every"]
        return every * 60 if every else None

    # --- setup -----------------------------------------------------------------------------

    def _setup(self) -> tuple[Environment, Workflow]:
        slug = f"sustained-{int(time.time())}"
        environment = Environment.objects.create(
            slug=slug, name=slug, kind=Environment.Kind.SANDBOX
        )
        user, _ = User.objects.get_or_create(
            username=OPS_USER, defaults={"email": f"{OPS_USER}@example.com", "is_staff": True}
        )
        user.groups.add(Group.objects.get_or_create(name="Admin")[0])
        definition = WORKFLOWS[self.options["workflow"]]
        self._say(f"workflow: {self.options['workflow']} ({len(definition['steps'])} steps)")
        workflow = workflow_services.workflow_create(environment=environment, definition=definition)
        workflow_services.workflow_publish(workflow=workflow)
        workflow_services.workflow_activate(workflow=workflow)
        # As a deploy does: the sweep is what hands a killed cluster's runs to another one.
        schedules = schedules_install()
        self._say("schedules: " + ", ".join(f"{k} {v}" for k, v in schedules.items()))
        return environment, workflow

    def _wait_ready(self, clusters: list[BenchCluster]) -> None:
        """Until every cluster's heartbeat shows all its workers (a slow start is not load)."""
        deadline = time.monotonic() + 120
        wanted = {c.pid for c in clusters}
        while True:
            ready = {
                c["pid"]
                for c in clusters_status()
                if c["alive"] and c["workers"] == self.options["workers"]
            }
            if wanted <= ready:
                return
            if time.monotonic() > deadline:
                raise CommandError(f"clusters not ready after 120 s: {sorted(wanted - ready)}")
            time.sleep(0.5)

    def _warm_up(self, environment: Environment, workflow: Workflow) -> None:
        for i in range(10):
            billing.customer_create(environment=environment, email=f"warm-{i}@example.com")
        deadline = time.monotonic() + 120
        while Run.objects.filter(workflow=workflow, status=Run.Status.SUCCEEDED).count() < 10:
            if time.monotonic() > deadline:
                raise CommandError("the warm-up runs did not finish within 120 s")
            time.sleep(0.1)

    # --- load ------------------------------------------------------------------------------

    def _produce(self, environment: Environment, load: Load) -> dict:
        """One customer (one customer.created event) every 1/rate s until the time is up.

        The schedule is the wall clock: an event that is late goes out at once, without
        moving the ones after it, and production stops at the end whatever was produced.
        """
        rate = self.options["rate"]
        seconds = self.options["minutes"] * 60
        begin = time.monotonic()
        end = begin + seconds
        worst_late = 0.0
        i = 0
        while True:
            target = begin + i / rate
            now = time.monotonic()
            if target >= end or now >= end:
                break
            if target > now:
                time.sleep(target - now)
            else:
                worst_late = max(worst_late, now - target)
            # Recorded and dispatched to its run here, as a web process does.
            billing.customer_create(
                environment=environment, email=f"load-{i}@example.com", name=f"Load {i}"
            )
            load.produced.append(time.time())
            i += 1
        return {"seconds": time.monotonic() - begin, "worst_late": worst_late}

    def _drain(self, load: Load) -> bool:
        """Wait, bounded, until every produced event has a terminal run."""
        deadline = time.monotonic() + self.options["drain_minutes"] * 60
        while time.monotonic() < deadline:
            runs = load.runs()
            if (
                runs.count() == len(load.produced)
                and not runs.filter(status__in=UNFINISHED).exists()
            ):
                return True
            time.sleep(0.5)
        return False

    # --- report ----------------------------------------------------------------------------

    def _report(
        self,
        load: Load,
        producer: dict,
        production_end: float,
        unfinished_at_end: int,
        drained: bool,
    ) -> None:
        rate = self.options["rate"]
        produced = len(load.produced)
        achieved = produced / producer["seconds"]
        runs = load.runs()
        values = latencies(runs)
        during = runs.filter(finished_at__lt=_at(production_end)).count()
        last = runs.aggregate(m=Max("finished_at"))["m"]
        self._say("")
        self._say(
            f"overall: events produced {produced} in {producer['seconds']:.1f} s = "
            f"{achieved:.1f}/s (target {rate:g}/s); producer at most "
            f"{producer['worst_late'] * 1000:.0f} ms behind schedule"
        )
        if achieved < 0.95 * rate:
            self._say(
                f"overall: the producer did not keep the rate ({achieved:.1f}/s of {rate:g}/s): "
                "this machine could not create events faster"
            )
        self._say(
            f"overall: runs finished {len(values)}; {during / producer['seconds']:.1f} runs/s "
            "while producing"
            + (
                f", {len(values) / (last.timestamp() - load.started):.1f} runs/s "
                "from the start to the last run"
                if last
                else ""
            )
        )
        self._say(f"overall: event commit -> run finished: {figures_line(values)}")
        self._say(
            f"overall: oldest pending run at most {load.max_lag:.1f} s old; "
            f"{unfinished_at_end} runs not finished when production ended"
        )
        if drained:
            drain = max(0.0, (last.timestamp() - production_end) if last else 0.0)
            self._say(f"drain: backlog of {unfinished_at_end} runs drained in {drain:.1f} s")
        else:
            self._say(
                f"drain: NOT drained within {self.options['drain_minutes']:g} min: "
                f"{not_finished(load)} runs not finished"
            )
        if load.kills:
            for kill in load.kills:
                self._say(
                    f"kill: at {kill.at / 60:.2f} min cluster {kill.cluster} "
                    f"(pid {kill.old_pid} -> {kill.new_pid})"
                )
        else:
            self._say("kill: none")

    def _report_sizes(self, start: dict[str, int], end: dict[str, int]) -> None:
        self._say(f"sizes (MB): {'table':<24} {'start':>9} {'end':>9} {'delta':>9}")
        for name in sorted(set(start) | set(end), key=lambda n: (n != "database", n)):
            a, b = start.get(name, 0) / 2**20, end.get(name, 0) / 2**20
            self._say(f"sizes (MB): {name:<24} {a:>9.2f} {b:>9.2f} {b - a:>+9.2f}")
