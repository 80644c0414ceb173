"""`python -m workflows.operations.bench_peers.worker <peer>`: one worker process of a peer,
started by the benchmark. Django is set up before the peer's module (and its models) loads."""

from __future__ import annotations

import importlib
import os
import sys

PEERS = {
    "procrastinate": "workflows.operations.bench_peers.procrastinate_peer",
    "dbos": "workflows.operations.bench_peers.dbos_peer",
}

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()
    importlib.import_module(PEERS[sys.argv[1]]).run_worker()
