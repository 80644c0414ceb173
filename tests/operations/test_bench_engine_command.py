"""bench_engine: with only the product's dependencies it measures Billflow on real workers and
lists the optional peers as not installed, never failing on them; bad options are named."""

from __future__ import annotations

import importlib.util
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Customer

OPTIONAL_PEERS = ("procrastinate", "dbos")


@pytest.mark.postgres
@pytest.mark.workers
def test_it_measures_billflow_and_lists_missing_peers_as_not_installed(transactional_db):
    if any(importlib.util.find_spec(peer) for peer in OPTIONAL_PEERS):
        pytest.skip("the bench extra is installed: this test is about an environment without it")
    out = StringIO()
    call_command(
        "bench_engine",
        peers="billflow,procrastinate,dbos",
        rounds=1,
        events=3,
        rate=4,
        paced_seconds=0.5,
        skip_overhead=True,
        timeout=120,
        stdout=out,
    )
    text = out.getvalue()

    assert re.search(r"^round 1/1 billflow: \d+ steps/s burst, paced p95 \d+ ms$", text, re.M)
    assert re.search(r"^billflow\s+1\s+(\d+) / \1 / \1\s+[\d.-]+\s+\d+ / \d+ ms$", text, re.M)
    for peer in OPTIONAL_PEERS:
        assert re.search(rf"^{peer}\s+not installed \(pip install -e \.\[bench\]\)$", text, re.M)
        assert f"round 1/1 {peer}" not in text
    assert "billflow / best peer: needs billflow and at least one peer measured" in text
    # The work really ran: warm-up, burst and paced customers all got their three updates.
    assert Customer.objects.filter(metadata__has_key="tag_c").count() == 10 + 3 + 2


@pytest.mark.django_db
def test_an_unknown_peer_is_named():
    with pytest.raises(CommandError, match=r"--peers: unknown celery; choose among billflow"):
        call_command("bench_engine", peers="billflow,celery", stdout=StringIO())
