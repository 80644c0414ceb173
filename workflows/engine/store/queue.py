"""django-q2's ORM broker, with one-statement claims and acknowledgements on PostgreSQL.

The stock ORM broker reads a batch of queued tasks, then takes each with an optimistic
`UPDATE … WHERE lock = <what it read>`: two statements per task, and clusters that share the
queue race for the same first rows (the loser's UPDATE changes nothing and it reads again).
Here one statement claims the oldest due tasks that no one else is claiming at that moment
(`FOR UPDATE SKIP LOCKED`) and returns them.

An acknowledgement is one `DELETE`; the stock one goes through Django's deletion collector
(a transaction of its own: three round trips). Neither a claim nor an acknowledgement waits
for the disk (`commits.py`): if PostgreSQL lost one in a crash, the task would only be
delivered again, and a repeated "look at run N" finds the run claimed or done.

Both skip the connection health check django-q's broker asks Django for before every call (a
`SELECT 1` per task): a connection that died fails the statement instead, and is replaced for
one more try (`reconnect.py`).

An enqueue is the same INSERT as django-q2's, built once (`statements.insert_row`); it joins
the caller's transaction as before. Everything else (visibility timeout, redelivery after
`retry`) is django-q2's. SQLite, which has no row locks, keeps the stock claim and
acknowledgement. Enabled by `Q_CLUSTER["broker_class"]` with the ORM broker
(config/settings/base.py).
"""

from __future__ import annotations

from time import sleep

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from workflows.engine.store import dialect
from workflows.engine.store.commits import NO_WAIT_CTE
from workflows.engine.store.reconnect import once_more_if_disconnected
from workflows.engine.store.statements import column, insert_row, named, table


def _claim_sql(db) -> str:
    pk, key, lock = (column(OrmQ, n, db=db) for n in ("pk", "key", "lock"))
    payload = column(OrmQ, "payload", db=db)
    return f"""
    WITH {NO_WAIT_CTE}
    UPDATE {table(OrmQ, db)} SET {lock} = %s
    FROM no_wait
    WHERE {pk} IN (
        SELECT {pk} FROM {table(OrmQ, db)}
        WHERE {key} = %s AND {lock} < %s
        ORDER BY {pk}
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING {pk}, {payload}
"""


def _ack_sql(db) -> str:
    return f"WITH {NO_WAIT_CTE} DELETE FROM {table(OrmQ, db)} USING no_wait WHERE " + (
        f"{column(OrmQ, 'pk', db=db)} = %s"
    )


class SkipLockedORM(ORM):
    def _connection(self):
        return connections[Conf.ORM]

    def _postgres(self) -> bool:
        return dialect.skips_locked_rows(self._connection())

    def enqueue(self, task):
        # The stock one also asks Django to check the connection outside a transaction.
        package = OrmQ(key=self.list_key or Conf.CLUSTER_NAME, payload=task, lock=timezone.now())
        insert_row(package)
        return package.pk

    def dequeue(self):
        if not self._postgres():
            return super().dequeue()
        db = self._connection()
        sql = named("queue_claim", (), lambda: _claim_sql(db), db)

        def claim() -> list:
            params = [self.timeout(None), self.list_key, timezone.now(), Conf.BULK]
            with self._connection().cursor() as cursor:
                cursor.execute(sql, params)
                return sorted(cursor.fetchall())

        claimed = once_more_if_disconnected(claim)
        if claimed:
            return claimed
        sleep(Conf.POLL)  # an empty queue: wait before asking again, as the stock broker does
        return None

    def acknowledge(self, task_id):
        if not self._postgres():
            return super().acknowledge(task_id)
        db = self._connection()
        sql = named("queue_acknowledge", (), lambda: _ack_sql(db), db)

        def delete() -> None:
            with self._connection().cursor() as cursor:
                cursor.execute(sql, [task_id])

        return once_more_if_disconnected(delete)
