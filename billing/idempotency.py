"""Service-level idempotency keys and the wrapper every mutating service goes through.

`@billing_service("customer_create")` makes a service one transaction and, when it is given
an `idempotency_key`, stores "key -> (service, hash of the parameters, resulting object)" in
that same transaction. A repeat with the same key and parameters returns the stored object,
re-fetched, and writes nothing; the same key with other parameters, or for another service,
raises `IdempotencyError`. Keys are per environment and used as given (the workflow engine
passes `run/step/iteration`; the API keeps its own `api:`-prefixed rows in the same table).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.db import connection, models, transaction

from backoffice.inserts import insert_unless_taken
from billing.errors import IdempotencyError, ProviderError
from billing.events import event_request
from billing.models import Environment, IdempotencyRecord, StripeObject
from billing.provider import use_up_fault_after_rollback
from billing.snapshots import RENDERERS

P = ParamSpec("P")
R = TypeVar("R", bound=StripeObject)

MODELS_BY_OBJECT = {model.OBJECT: model for model in RENDERERS}
# Arguments that say who asks, not what is asked: a replay may differ in them.
NOT_FINGERPRINTED = {"idempotency_key", "request_id"}


def _canonical(value: Any) -> Any:
    if isinstance(value, models.Model):
        return f"{type(value).__name__}:{value.pk}"
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def fingerprint(params: dict[str, Any]) -> str:
    canonical = {k: _canonical(v) for k, v in params.items() if k not in NOT_FINGERPRINTED}
    blob = json.dumps(canonical, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _environment_of(params: dict[str, Any]) -> Environment:
    if isinstance(params.get("environment"), Environment):
        return params["environment"]
    target = _target(params)
    if target is not None:
        return target.environment
    raise TypeError("an idempotent service needs an environment or a billing object argument")


def _claim(
    *, environment: Environment, key: str, scope: str, digest: str, target: StripeObject | None
) -> tuple[IdempotencyRecord, bool]:
    """Insert the key first (True: it is ours), so a concurrent call with the same key waits
    on the unique index until this transaction ends, then finds the stored result instead of
    doing the work twice.

    One statement, no savepoint: `ON CONFLICT DO NOTHING` (PostgreSQL and SQLite) instead of
    catching the unique violation. `target` (the object the service acts on, if any) is stored
    at once, so a service that returns it needs no second write.
    """
    record = IdempotencyRecord(
        environment=environment,
        key=key,
        scope=scope,
        fingerprint=digest,
        object_type=target.OBJECT if target is not None else "",
        object_id=target.pk if target is not None else "",
    )
    if not insert_unless_taken(record, unique=("environment", "key")):
        return IdempotencyRecord.objects.get(environment=environment, key=key), False
    return record, True


def _target(params: dict[str, Any]) -> StripeObject | None:
    for value in params.values():
        if isinstance(value, StripeObject):
            return value
    return None


def _replay(record: IdempotencyRecord, *, scope: str, digest: str) -> StripeObject:
    if record.scope != scope or record.fingerprint != digest:
        raise IdempotencyError(
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{record.key}' if you meant to "
            "execute a different request.",
            param="idempotency_key",
        )
    model = MODELS_BY_OBJECT.get(record.object_type)
    if model is None or not record.object_id:
        raise IdempotencyError(
            f"The idempotency key '{record.key}' is in use by another request.",
            code="idempotency_key_in_use",
            param="idempotency_key",
        )
    return model.objects.get(pk=record.object_id)


# Set by `no_savepoint()` for the next service call only (see there).
_SPARE_SAVEPOINT: ContextVar[bool] = ContextVar("billing_spare_savepoint", default=False)


@contextlib.contextmanager
def no_savepoint() -> Iterator[None]:
    """For a caller inside a transaction that any error of the service ends as a whole (a
    workflow step's): the service it calls next opens no savepoint, two round trips fewer.

    Only that outermost call: the services it calls in turn keep their savepoints, since a
    service may catch another's error and carry on in the same transaction.
    """
    token = _SPARE_SAVEPOINT.set(True)
    try:
        yield
    finally:
        _SPARE_SAVEPOINT.reset(token)


def billing_service(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = bound.arguments
            key = params.get("idempotency_key") or ""
            request_id = params.get("request_id") or ""
            savepoint = not _SPARE_SAVEPOINT.get()
            spare = _SPARE_SAVEPOINT.set(False)  # nested services keep their savepoints
            try:
                with (
                    transaction.atomic(savepoint=savepoint),
                    event_request(request_id=request_id, idempotency_key=key),
                ):
                    if not key:
                        return fn(*args, **kwargs)
                    digest = fingerprint(params)
                    record, ours = _claim(
                        environment=_environment_of(params),
                        key=key,
                        scope=scope,
                        digest=digest,
                        target=_target(params),
                    )
                    if not ours:
                        return _replay(record, scope=scope, digest=digest)  # type: ignore[return-value]
                    result = fn(*args, **kwargs)
                    if (record.object_type, record.object_id) != (result.OBJECT, result.pk):
                        record.object_type = result.OBJECT
                        record.object_id = result.pk
                        record.save(update_fields=["object_type", "object_id"])
                    return result
            except ProviderError as error:
                # Without a savepoint nothing is rolled back yet: the caller's rollback is, and
                # the caller counts again then (the transaction refuses queries until it does).
                if not connection.needs_rollback:
                    use_up_fault_after_rollback(error)
                raise
            finally:
                _SPARE_SAVEPOINT.reset(spare)

        return wrapper

    return decorate
