"""gunicorn's settings for a Billflow web host (docs/operations.md, "Web hosts").

    gunicorn -c gunicorn.conf.py config.wsgi

Every value here can still be overridden on the command line or in `GUNICORN_CMD_ARGS`.
The environment variables are the application's (README, docs/operations.md): `PORT`,
`WEB_CONCURRENCY`, `LOG_FORMAT`, `LOG_LEVEL`, `PROMETHEUS_MULTIPROC_DIR`.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path

# gunicorn loads this file by path; the project's modules are beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backoffice.logs import FORMATTERS, logging_config  # noqa: E402

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# About 2 x cores + 1 synchronous workers: each request holds one while it waits on PostgreSQL.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
timeout = 30
graceful_timeout = 30
# A worker is replaced after about this many requests (a guard against slow leaks); the jitter
# keeps all workers from restarting at the same moment.
max_requests = 2000
max_requests_jitter = 200

# The access log is on: one line per request, through the same structured formatter as the
# application's logs, with the request's Request-Id (backoffice/logs.py renders the fields).
accesslog = "-"
errorlog = "-"
_log_format = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"
if _log_format not in FORMATTERS:
    sys.exit(f"Environment variable LOG_FORMAT must be one of text, json; got {_log_format!r}.")
_level = os.environ.get("LOG_LEVEL", "INFO")
logconfig_dict = logging_config(
    log_format=_log_format,
    level=_level,
    extra_loggers={
        name: {"level": "INFO", "handlers": ["console"], "propagate": False}
        for name in ("gunicorn.error", "gunicorn.access")
    },
)

# Prometheus request metrics are counted in each worker process; they share this directory so
# that whichever worker answers GET /metrics reports them all (workflows/operations/metrics.py).
# It must be set before a worker imports prometheus_client, i.e. here, in the master.
_made_metrics_dir = ""
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_metrics_dir = tempfile.mkdtemp(prefix="billflow-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_dir


def on_starting(server) -> None:
    # Files left by an earlier run of the master would be counted again: start from zero.
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
