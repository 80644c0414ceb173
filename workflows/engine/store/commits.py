"""Commits that need not wait for the disk: the engine's bookkeeping on PostgreSQL.

A commit normally waits until its WAL is flushed to disk (`synchronous_commit = on`), a few
hundred microseconds of CPU and I/O each. Much of what the engine writes around a step only
tells the next worker where to resume: a lease claim, an attempt's start, a run's successful
end, an e-mail step's success (its delivery record is durable). PostgreSQL can skip the wait
for one transaction (`SET LOCAL synchronous_commit = off`): the commit is visible to everyone
at once, and only a crash of PostgreSQL itself within a fraction of a second can lose it.
Such a loss is harmless here (a lost claim or end means the run is claimed or ended again; a
lost attempt start counts one attempt fewer), and it can never reorder history: the WAL is
flushed in order, so every durable commit, such as a billing step's, also makes each earlier
one durable.

A single statement turns it off for its own transaction with the CTE below, which the
statement must reference (a CTE no one reads is not run): `WITH no_wait AS (…) UPDATE t …
FROM no_wait WHERE …`. It is one round trip and works with either parameter binding.
"""

from __future__ import annotations

from workflows.engine.store import dialect

NO_WAIT_CTE = "no_wait AS (SELECT set_config('synchronous_commit', 'off', true) AS off)"


def commit_without_waiting(db, *, durable: bool) -> bool:
    """Whether a statement may carry `NO_WAIT_CTE`: not asked to be durable, on PostgreSQL, and
    in autocommit (inside a transaction the setting would cover the whole transaction, which
    then must wait as usual)."""
    return not durable and dialect.is_postgres(db) and not db.in_atomic_block
