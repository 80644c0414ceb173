"""`once_more_if_disconnected`: a statement that replaces a connection found dead, once.

Worker processes keep their database connection between tasks and skip Django's connection
health check (a `SELECT 1` before every task; config/env.py). A connection that died while
the process was idle (the database restarted, a fail-over, a terminated backend) therefore
fails the first statement of the next task. That statement goes through this function: the
dead connection is closed, and the statement runs once more on a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

T = TypeVar("T")


def once_more_if_disconnected(statement: Callable[[], T]) -> T:
    """Run `statement`; if it failed because the connection is dead, reconnect and run it
    again. Inside a transaction nothing can be retried, and any other error stands."""
    try:
        return statement()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block or connection.is_usable():
            raise
        connection.close()
        return statement()
