"""`python manage.py bench_builder [--rounds N]`: server time and queries per builder interaction.

Measures, on a workflow with 12 steps (a branch with three paths, a loop with two body steps,
actions and conditions): open the canvas, add a step, save a step, open the field picker. Each
request goes through the whole Django stack (middleware, session, role, environment) with the
test client. Prints p50/p95 in milliseconds and the queries per request, and the same query
counts on a 3-step workflow: equal counts mean no query per step.

Everything happens inside a transaction that is rolled back: the database is left as it was.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from billing.models import Environment
from workflows import services


class _Rollback(Exception):
    pass


def _update(step_id: str, key: str) -> dict:
    return {
        "id": step_id,
        "type": "action",
        "action": "customers.update",
        "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {key: "yes"}},
    }


def twelve_step_definition(name: str = "Bench: twelve steps") -> dict:
    """12 steps: fetch, check, a 3-path branch (4), a loop with 2 body steps (3), 3 actions."""
    country = "trigger.data.object.address.country"
    return {
        "name": name,
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "fetch",
                "type": "action",
                "action": "customers.retrieve",
                "params": {"customer": "{{ trigger.data.object.id }}"},
            },
            {
                "id": "check",
                "type": "condition",
                "condition": {"all": [{"field": "trigger.data.object.email", "op": "exists"}]},
            },
            {
                "id": "region",
                "type": "branch",
                "paths": [
                    {
                        "name": "North America",
                        "when": {"any": [{"field": country, "op": "in", "value": ["US", "CA"]}]},
                        "steps": [_update("tag_na", "NA")],
                    },
                    {
                        "name": "Europe",
                        "when": {"any": [{"field": country, "op": "in", "value": ["FR", "DE"]}]},
                        "steps": [_update("tag_eu", "EU")],
                    },
                    {"name": "Everyone else", "when": None, "steps": [_update("tag_gl", "GL")]},
                ],
            },
            {
                "id": "each_sub",
                "type": "foreach",
                "action": "subscriptions.list",
                "params": {"customer": "{{ trigger.data.object.id }}"},
                "steps": [
                    {
                        "id": "active_only",
                        "type": "condition",
                        "condition": {
                            "all": [{"field": "item.status", "op": "eq", "value": "active"}]
                        },
                    },
                    {
                        "id": "tag_sub",
                        "type": "action",
                        "action": "subscriptions.update",
                        "params": {"subscription": "{{ item.id }}", "metadata": {"seen": "yes"}},
                    },
                ],
            },
            _update("tag_one", "one"),
            _update("tag_two", "two"),
            _update("tag_three", "three"),
        ],
    }


def three_step_definition() -> dict:
    definition = twelve_step_definition("Bench: three steps")
    definition["steps"] = [*definition["steps"][:2], definition["steps"][-1]]
    return definition


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Bench:
    """Runs each interaction `rounds` times against one workflow; collects times and queries."""

    def __init__(self, client: Client, workflow_id: int, definition: dict) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.definition = definition
        self.base = f"/admin/workflows/{workflow_id}"

    def _measure(self, call) -> tuple[float, float, int]:
        """(wall ms, CPU ms of this process, queries). On a busy machine the wall time includes
        waiting for a core; the CPU time is what the request itself costs."""
        with CaptureQueriesContext(connection) as queries:
            started, cpu = time.perf_counter(), time.process_time()
            response = call()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.content[:500]!r}")
        return elapsed * 1000, cpu * 1000, len(queries)

    def open_canvas(self) -> tuple[float, float, int]:
        return self._measure(lambda: self.client.get(f"{self.base}/"))

    def add_step(self) -> tuple[float, float, int]:
        result = self._measure(
            lambda: self.client.post(
                f"{self.base}/steps/add/",
                {"kind": "action", "action": "customers.update", "position": 1},
                HTTP_HX_REQUEST="true",
            )
        )
        # Put the workflow back to its size (not measured).
        from workflows.models import Workflow

        services.workflow_update(
            workflow=Workflow.objects.get(pk=self.workflow_id),
            definition=self.definition,
            allow_invalid=True,
        )
        return result

    def save_step(self) -> tuple[float, float, int]:
        return self._measure(
            lambda: self.client.post(
                f"{self.base}/steps/tag_three/",
                {"p_customer": "{{ trigger.data.object.id }}", "p_metadata": "three = yes"},
                HTTP_HX_REQUEST="true",
            )
        )

    def open_picker(self) -> tuple[float, float, int]:
        return self._measure(
            lambda: self.client.get(
                f"{self.base}/picker/?step=tag_three&target=id_p_customer",
                HTTP_HX_REQUEST="true",
            )
        )


INTERACTIONS = ("open_canvas", "add_step", "save_step", "open_picker")


def run_bench(rounds: int = 30) -> dict[str, Any]:
    """{"vendor", "rounds", "rows": [{"interaction", "p50", "p95", "cpu_p50", "cpu_p95",
    "queries", "queries_3"}]} (milliseconds; query counts seen on the 12- and 3-step workflows)."""
    out: dict[str, Any] = {"vendor": connection.vendor, "rounds": rounds, "rows": []}
    limits = {**settings.BILLFLOW, "MAX_STEPS_PER_WORKFLOW": 13}
    try:
        # The test client speaks plain HTTP: no redirect to HTTPS while measuring.
        with override_settings(BILLFLOW=limits, SECURE_SSL_REDIRECT=False), transaction.atomic():
            slug = f"bench-{uuid.uuid4().hex[:8]}"
            environment = Environment.objects.create(
                slug=slug, name="Bench", kind=Environment.Kind.SANDBOX
            )
            user = User.objects.create_user(username=slug, password=uuid.uuid4().hex, is_staff=True)
            group, _ = Group.objects.get_or_create(name="Account Manager")
            user.groups.add(group)
            client = Client(HTTP_HOST="127.0.0.1")
            client.force_login(user)
            client.post("/environment/switch/", {"environment": slug})
            big = services.workflow_create(
                environment=environment, definition=twelve_step_definition()
            )
            small = services.workflow_create(
                environment=environment, definition=three_step_definition()
            )
            benches = (
                Bench(client, big.pk, twelve_step_definition()),
                Bench(client, small.pk, three_step_definition()),
            )
            for name in INTERACTIONS:
                getattr(benches[0], name)()  # warm-up: template loading, caches
                times, cpu_times, counts = [], [], set()
                for _ in range(rounds):
                    elapsed, cpu, queries = getattr(benches[0], name)()
                    times.append(elapsed)
                    cpu_times.append(cpu)
                    counts.add(queries)
                small_counts = {getattr(benches[1], name)()[2] for _ in range(3)}
                out["rows"].append(
                    {
                        "interaction": name,
                        "p50": statistics.median(times),
                        "p95": _percentile(times, 0.95),
                        "cpu_p50": statistics.median(cpu_times),
                        "cpu_p95": _percentile(cpu_times, 0.95),
                        "queries": sorted(counts),
                        "queries_3": sorted(small_counts),
                    }
                )
            raise _Rollback
    except _Rollback:
        pass
    return out


class Command(BaseCommand):
    help = "Time the builder's interactions on a 12-step workflow (rolled back afterwards)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=30)

    def handle(self, *args, rounds: int, **options) -> None:
        result = run_bench(rounds=rounds)
        self.stdout.write(
            f"Builder interactions on a 12-step workflow, {result['vendor']}, "
            f"{result['rounds']} rounds each"
        )
        self.stdout.write(
            f"{'interaction':<14}{'p50 ms':>9}{'p95 ms':>9}{'cpu p50':>9}{'cpu p95':>9}"
            "  queries (12 steps)  queries (3 steps)"
        )
        for row in result["rows"]:
            self.stdout.write(
                f"{row['interaction']:<14}{row['p50']:>9.1f}{row['p95']:>9.1f}"
                f"{row['cpu_p50']:>9.1f}{row['cpu_p95']:>9.1f}  "
                f"{'/'.join(map(str, row['queries'])):<18}  {'/'.join(map(str, row['queries_3']))}"
            )
