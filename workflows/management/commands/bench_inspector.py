"""p95 server time of the run inspector's pages (after `generate_runs`).

    python manage.py bench_inspector --environment bench --repeat 30

Each page is requested through Django's whole stack in this process (middleware, view,
selectors, template), logged in as a bench admin in the bench environment, `--repeat` times;
the first request of each page is a warm-up and not counted. Pages: the runs list's first page
and a deep page (a cursor about two thirds back in history) for each filter, and run pages.
Target: under 100 ms each.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models.fields.json import KeyTextTransform
from django.test import Client
from django.urls import reverse
from django.utils.http import urlencode

from backoffice.sessions import ENVIRONMENT_SESSION_KEY as SESSION_KEY
from billing.models import Environment
from workflows.inspector.selectors import RunFilters, cursor_encode, runs_filtered
from workflows.models import Run, StepRun, Workflow

TARGET_MS = 100.0


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


class Command(BaseCommand):
    help = (
        "Measure p95 server time of the runs list (per filter, first and deep page) and run pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", default="bench")
        parser.add_argument("--repeat", type=int, default=30)

    def handle(self, *args, environment: str, repeat: int, **kw) -> None:
        env = Environment.objects.filter(slug=environment).first()
        if env is None or not Run.objects.filter(environment=env).exists():
            raise CommandError(f"No runs in environment {environment!r}; run generate_runs first.")
        client = self._client(env)
        filters = self._filters(env)
        rows: list[tuple[str, float, float]] = []
        for name, query in filters:
            url = f"{reverse('runs:list')}?{urlencode(query)}"
            rows.append((f"list {name}: first page", *self._measure(client, url, repeat)))
            deep = self._deep_cursor(env, query)
            if deep:
                deep_url = f"{reverse('runs:list')}?{urlencode({**query, 'after': deep})}"
                rows.append((f"list {name}: deep page", *self._measure(client, deep_url, repeat)))
        for label, run in self._sample_runs(env):
            url = reverse("runs:detail", args=[run.pk])
            rows.append((f"run page ({label})", *self._measure(client, url, repeat)))

        total_runs = Run.objects.filter(environment=env).count()
        total_steps = StepRun.objects.filter(run__environment=env).count()
        self.stdout.write(f"{total_runs} runs, {total_steps} step runs in {env.slug}")
        self.stdout.write(f"{'page':<46} {'p50 ms':>8} {'p95 ms':>8}")
        worst = 0.0
        for label, p50, p95_ms in rows:
            flag = "" if p95_ms < TARGET_MS else "  (over target)"
            self.stdout.write(f"{label:<46} {p50:>8.1f} {p95_ms:>8.1f}{flag}")
            worst = max(worst, p95_ms)
        self.stdout.write(f"worst p95: {worst:.1f} ms (target < {TARGET_MS:.0f} ms)")

    def _client(self, env: Environment) -> Client:
        user, _ = get_user_model().objects.get_or_create(
            username="bench-inspector",
            defaults={"is_staff": True, "is_superuser": True, "email": "bench@localhost"},
        )
        client = Client(SERVER_NAME="127.0.0.1")
        client.force_login(user)
        session = client.session
        session[SESSION_KEY] = env.slug
        session.save()
        return client

    def _filters(self, env: Environment) -> list[tuple[str, dict]]:
        sample = (
            Run.objects.filter(environment=env, event__isnull=False)
            .annotate(_type=KeyTextTransform("type", "trigger"))
            .order_by("-id")
            .values("event_id", "event__object_id", "_type", "created")
            .first()
        )
        workflow = Workflow.objects.filter(environment=env).order_by("pk").first()
        out: list[tuple[str, dict]] = [("no filter", {})]
        if workflow:
            out.append(("workflow", {"workflow": workflow.pk}))
        out.append(("status=failed", {"status": "failed"}))
        if workflow:
            out.append(("workflow+failed", {"workflow": workflow.pk, "status": "failed"}))
        if sample:
            out.append(("event type", {"event_type": sample["_type"]}))
            out.append(("event id", {"event_id": sample["event_id"]}))
            out.append(("object id", {"object_id": sample["event__object_id"]}))
            day = sample["created"] - timedelta(days=20)
            out.append(
                (
                    "time range (1 day)",
                    {"since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()},
                )
            )
        return out

    def _deep_cursor(self, env: Environment, query: dict) -> str:
        """The cursor of a row about two thirds back in the filtered history."""
        filters = RunFilters.from_query({k: str(v) for k, v in query.items()})
        qs = runs_filtered(environment=env, filters=filters)
        first = qs.values_list("created", flat=True).first()
        last = qs.order_by("created", "id").values_list("created", flat=True).first()
        if first is None or last is None or first == last:
            return ""
        middle = first - (first - last) * 2 / 3
        row = qs.filter(created__lte=middle).only("id", "created").first()
        return cursor_encode(row) if row else ""

    def _sample_runs(self, env: Environment) -> list[tuple[str, Run]]:
        out = []
        for status in (Run.Status.FAILED, Run.Status.SUCCEEDED):
            run = Run.objects.filter(environment=env, status=status).order_by("-id").first()
            if run:
                out.append((status, run))
        return out

    def _measure(self, client: Client, url: str, repeat: int) -> tuple[float, float]:
        response = client.get(url, secure=True)  # warm-up
        if response.status_code != 200:
            raise CommandError(f"{url} answered {response.status_code}")
        samples = []
        for _ in range(max(repeat, 1)):
            started = time.perf_counter()
            client.get(url, secure=True)
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples), p95(samples)
