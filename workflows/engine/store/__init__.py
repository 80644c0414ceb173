"""The engine's store: the only code that changes runs, step records, deliveries and the queue.

Every write of `Run`, `StepRun`, `Delivery`, the queue's rows (`django_q.OrmQ`) and an event's
`dispatched_at` goes through one of the named operations here; the models' default managers
refuse writes anywhere else (`guard.py`). The SQL is built once per shape from the models'
`_meta` (`statements.py`), so a field added with a default needs no change here, and the
PostgreSQL/SQLite difference lives in one module (`dialect.py`).

| module | job |
| --- | --- |
| `guard.py` | the read-only default managers, and the store's permission to write |
| `dialect.py` | the one PostgreSQL/SQLite seam |
| `commits.py` | commits that need not wait for the disk (PostgreSQL) |
| `reconnect.py` | a statement that replaces a connection found dead, once |
| `statements.py` | columns, rows -> instances, UPDATE by shape, INSERT (ON CONFLICT DO NOTHING) |
| `runs.py` | create, claim (and load), renew, defer, wait, wake, finish, restart, cancel, prune |
| `steps.py` | a step's records: one upsert that checks the lease; reset on restart |
| `deliveries.py` | claim, mark sent or failed, a send's record |
| `guardrails.py` | the money guardrails' totals: a conditional add, a step's once-only mark |
| `events.py` | take an event for dispatch (`dispatched_at`) |
| `active_workflows.py` | the reads an event is matched with (signature, candidates) |
| `queue.py` | django-q2's ORM broker: enqueue, one-statement claim and acknowledgement |
| `forcing.py` | for tests only: force a state no operation makes (an expired lease, …) |

Nothing is imported here, so that `workflows.models` can import `guard` without a cycle.
"""
