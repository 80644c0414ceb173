"""bench_builder: the builder's interactions cost a fixed number of queries, whatever the size
of the workflow (12 steps cost what 3 steps cost), and the command leaves no data behind."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from billing.models import Environment
from workflows.management.commands.bench_builder import run_bench
from workflows.models import Workflow


def test_it_makes_no_query_per_step(db):
    result = run_bench(rounds=2)
    assert [row["interaction"] for row in result["rows"]] == [
        "open_canvas",
        "add_step",
        "save_step",
        "open_picker",
    ]
    for row in result["rows"]:
        assert len(row["queries"]) == 1, row  # the same count on every round
        assert row["queries"] == row["queries_3"], row


def test_it_prints_the_figures_and_rolls_back(db):
    out = StringIO()
    call_command("bench_builder", rounds=2, stdout=out)
    assert "open_canvas" in out.getvalue() and "p95 ms" in out.getvalue()
    assert not Workflow.objects.exists()
    assert not Environment.objects.filter(slug__startswith="bench-").exists()
