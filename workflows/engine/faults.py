"""Fault points: kill this worker process at a named point of a step, for the fault tests.

Off unless the environment variable `BILLFLOW_FAULTS` names points; production never sets it.
The check is one dict lookup, so the points can stay in the engine's hot path.

    BILLFLOW_FAULTS="after_effect@tag_b,before_ack"   point, optionally "@step id"
    BILLFLOW_FAULT_DIR=/some/dir                       one marker file per kill (see below)
    BILLFLOW_FAULT_EVERY=7                              optional: only runs with id % 7 == 0

With `BILLFLOW_FAULT_DIR`, each (point, run, step, iteration) kills at most once: the marker
file is created with O_EXCL before the kill, so the worker that takes the run over passes the
same point. Without it the point kills every time (a step that always kills its worker).

Points, in the order a step meets them:

* `before_effect`: the attempt is counted, the action has not run;
* `after_effect`: the action ran (its database writes are not committed yet; an e-mail or
  HTTP call has been sent) and the step is not recorded as succeeded;
* `after_commit`: the step's transaction committed, the next step has not started;
* `before_ack`: the run is finished in the database, the django-q task has not returned.

And one of a backtest's job (`workflows/backtests/jobs.py`; the "run" is the backtest's id, the
"step" the number of events counted before the chunk):

* `backtest_chunk`: a chunk of events was replayed, its counts are not committed.
"""

from __future__ import annotations

import os
import signal

POINTS = ("before_effect", "after_effect", "after_commit", "before_ack", "backtest_chunk")


def _parse(raw: str) -> dict[str, set[str]]:
    points: dict[str, set[str]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        point, _, step = item.partition("@")
        if point not in POINTS:
            raise ValueError(f"BILLFLOW_FAULTS: unknown point {point!r}; known: {POINTS}")
        points.setdefault(point, set()).add(step)  # "" means every step
    return points


_ARMED = _parse(os.environ.get("BILLFLOW_FAULTS", ""))


def fault_point(point: str, *, run_id: int, step_id: str = "", iteration: str = "") -> None:
    """Kill this process (SIGKILL, no clean-up) if `point` is armed for this step and run."""
    steps = _ARMED.get(point)
    if not steps or ("" not in steps and step_id not in steps):
        return
    every = int(os.environ.get("BILLFLOW_FAULT_EVERY", "1") or 1)
    if run_id % every:
        return
    directory = os.environ.get("BILLFLOW_FAULT_DIR")
    if directory:
        marker = os.path.join(directory, f"{point}-{run_id}-{step_id}-{iteration or '_'}")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # this point already killed a worker for this step once
    os.kill(os.getpid(), signal.SIGKILL)
