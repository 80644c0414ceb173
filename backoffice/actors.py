"""Who is acting: a person, an API key, a workflow run or the system, and the request id.

The history triggers (history/trackers.py) read the actor from two PostgreSQL settings,
`pghistory.context_id` and `pghistory.context_metadata`, the ones django-pghistory's triggers
read. `pghistory.context()` sets them by putting a `SELECT set_config(…);` in front of every
statement, which PostgreSQL refuses with server-side parameter binding (our default,
config/env.py: "cannot insert multiple commands into a prepared statement"). So they are set
here instead, lazily: when a statement that can write (INSERT, UPDATE, DELETE, WITH, MERGE) is
about to run on a connection whose settings do not say the current actor, one `set_config`
statement goes first. A read-only request, or a run whose steps all act as the same run on one
connection, pays nothing more.

The settings are session-level, so they also cover statements outside a transaction. Set inside
a transaction, PostgreSQL undoes them when it (or a savepoint) rolls back; a marker callback
registered with `on_commit` tells whether that happened, and the next write sets them again.
Without any actor the triggers record the system (empty settings). Nothing happens on SQLite,
which has no triggers. This module imports Django only: the engine and the services of every
floor call it (so it lives on the ground floor), while the `history` app (event tables,
API, panel) sits above them.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps

from django.db import connection as default_connection

ACTOR_TYPES = ("user", "api_key", "workflow_run", "system")
# Statements that may write a tracked row; reads never need the actor.
_WRITE_PREFIXES = ("insert", "update", "delete", "with", "merge")
_SET_SQL = (
    "SELECT set_config('pghistory.context_id', %s, false), "
    "set_config('pghistory.context_metadata', %s, false)"
)


@dataclass(frozen=True)
class Actor:
    """Who made a change. `id` is the user's, key's or run's primary key as a string."""

    type: str
    id: str | None = None
    name: str = ""

    def as_dict(self) -> dict:
        return {"type": self.type, "id": self.id, "name": self.name}


SYSTEM = Actor("system", None, "System")


def user_actor(user) -> Actor:
    return Actor("user", str(user.pk), user.get_username())


def api_key_actor(key) -> Actor:
    return Actor("api_key", str(key.pk), f"{key.name} ({key.prefix}…)")


def run_actor(run) -> Actor:
    """`run` is a Run or its id; the workflow is named only when already read (no query)."""
    if isinstance(run, int):
        return Actor("workflow_run", str(run), f"Run {run}")
    workflow = run._state.fields_cache.get("workflow")
    name = f"Run {run.pk}" + (f" of {workflow.name}" if workflow is not None else "")
    return Actor("workflow_run", str(run.pk), name)


@dataclass
class _Frame:
    """One `acting_as` block: its actor (or a function that finds it, for requests whose
    caller is known only once the view ran its authentication) and the request id."""

    actor: Actor | Callable[[], Actor]
    request_id: str = ""
    context_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _settings: tuple[str, str] | None = None
    _settings_for: Actor | None = None

    def current_actor(self) -> Actor:
        return self.actor() if callable(self.actor) else self.actor

    def settings(self) -> tuple[str, str]:
        actor = self.current_actor()
        if self._settings is None or actor != self._settings_for:
            metadata = {"actor": actor.as_dict(), "request_id": self.request_id}
            self._settings = (self.context_id, json.dumps(metadata, separators=(",", ":")))
            self._settings_for = actor
        return self._settings


_frame: ContextVar[_Frame | None] = ContextVar("history_frame", default=None)
_NOTHING = ("", "")  # a fresh session: no actor set, the triggers record the system
_UNKNOWN = ("?", "?")  # rolled back: whatever the session holds, set it again


@contextlib.contextmanager
def acting_as(actor: Actor | Callable[[], Actor], *, request_id: str | None = None) -> Iterator:
    """Changes made inside are recorded as `actor`'s; the request id is kept from an outer
    block unless given."""
    outer = _frame.get()
    if request_id is None:
        request_id = outer.request_id if outer is not None else ""
    token = _frame.set(_Frame(actor=actor, request_id=request_id))
    try:
        yield
    finally:
        _frame.reset(token)


def acting_as_user(user, *, request_id: str | None = None):
    """As `user` when it is a signed-in person; otherwise the current actor stays."""
    if user is None or not getattr(user, "is_authenticated", False):
        return contextlib.nullcontext()
    return acting_as(user_actor(user), request_id=request_id)


def acting_as_api_key(key, *, request_id: str | None = None):
    return acting_as(api_key_actor(key), request_id=request_id)


def acting_as_run(run):
    """A workflow step's changes are the run's: the executor runs a run's steps inside this
    (`run` is the Run or its id)."""
    return acting_as(run_actor(run))


def acting_as_party(party):
    """As `party`: a signed-in user or an API key (billing.ApiKey, known by its hashed key:
    this module imports no app, so the engine and services of any floor may use it); None
    keeps the current actor."""
    if party is not None and hasattr(party, "hashed_key"):
        return acting_as_api_key(party)
    return acting_as_user(party)


def records_actor(argument: str) -> Callable:
    """A service decorator: its keyword `argument` (`activated_by=request.user`) is the actor
    of the changes the service makes."""

    def decorate(service: Callable) -> Callable:
        @wraps(service)
        def with_actor(*args, **kwargs):
            with acting_as_party(kwargs.get(argument)):
                return service(*args, **kwargs)

        return with_actor

    return decorate


def current_actor() -> Actor:
    frame = _frame.get()
    return frame.current_actor() if frame is not None else SYSTEM


# --- the connection side ------------------------------------------------------------------------


@dataclass
class _Applied:
    """What one session's settings hold, as far as this process knows."""

    connection: object  # the psycopg connection they were set on
    settings: tuple[str, str]
    marker: Callable | None = None  # set inside a transaction: committed once this ran
    committed: bool = True


def _applied(db) -> tuple[str, str]:
    state: _Applied | None = getattr(db, "_history_applied", None)
    if state is None or state.connection is not db.connection:
        return _NOTHING  # a new session starts with no actor
    if not state.committed and not any(entry[1] is state.marker for entry in db.run_on_commit):
        return _UNKNOWN  # its transaction or savepoint rolled back, and the setting with it
    return state.settings


def _apply(db, cursor, settings: tuple[str, str]) -> None:
    cursor.execute(_SET_SQL, settings)
    state = _Applied(connection=db.connection, settings=settings)
    if db.in_atomic_block:
        state.committed = False

        def marker() -> None:
            state.committed = True

        state.marker = marker
        db.on_commit(marker)
    db._history_applied = state


def _hand_actor_to_triggers(execute, sql, params, many, context):
    # Reads first and cheaply: finding a request's caller may itself read (its session).
    if sql.lstrip()[:6].lower().startswith(_WRITE_PREFIXES):
        db = context["connection"]
        frame = _frame.get()
        wanted = frame.settings() if frame is not None else _NOTHING
        if wanted != _applied(db):
            _apply(db, context["cursor"].cursor, wanted)
    return execute(sql, params, many, context)


def install_on_connection(sender, connection, **kwargs) -> None:
    """`connection_created`: PostgreSQL connections pass the actor on before writes. First in
    the list, so it stays put when blocks that add their own wrappers remove them."""
    if connection.vendor != "postgresql":
        return
    if _hand_actor_to_triggers not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _hand_actor_to_triggers)


def recorded_here(db=default_connection) -> bool:
    """Whether this database records history (PostgreSQL); SQLite has no triggers."""
    return db.vendor == "postgresql"
