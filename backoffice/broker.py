"""django-q2's ORM broker, with a one-statement claim on PostgreSQL.

The stock ORM broker reads a batch of queued tasks, then takes each with an optimistic
`UPDATE … WHERE lock = <what it read>`: two statements per task, and clusters that share the
queue race for the same first rows (the loser's UPDATE changes nothing and it reads again).
Here one statement claims the oldest due tasks that no one else is claiming at that moment
(`FOR UPDATE SKIP LOCKED`) and returns them. Everything else (enqueue, visibility timeout,
acknowledgement by delete, redelivery after `retry`) is django-q2's. SQLite, which has no row
locks, keeps the stock claim.

Enabled by `Q_CLUSTER["broker_class"]` with the ORM broker (config/settings/base.py).
"""

from __future__ import annotations

from time import sleep

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

_CLAIM_SQL = """
    UPDATE {table} SET lock = %s
    WHERE id IN (
        SELECT id FROM {table}
        WHERE key = %s AND lock < %s
        ORDER BY id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, payload
"""


class SkipLockedORM(ORM):
    def dequeue(self):
        queue = self.get_connection()  # closes stale connections, as the stock broker does
        connection = connections[queue.db]
        if not connection.features.has_select_for_update_skip_locked:
            return super().dequeue()
        now = timezone.now()
        sql = _CLAIM_SQL.format(table=connection.ops.quote_name(OrmQ._meta.db_table))
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.timeout(None), self.list_key, now, Conf.BULK])
            claimed = sorted(cursor.fetchall())
        if claimed:
            return claimed
        sleep(Conf.POLL)  # an empty queue: wait before asking again, as the stock broker does
        return None
