"""Idempotency keys, and the wrapper every mutating service goes through.

`@billing_service("customer_create")` makes a service one transaction (a savepoint when the
caller has one open) and, when it is given an `idempotency_key`, stores "key -> (service, hash
of the parameters, resulting object)" in that same transaction. A repeat with the same key and
parameters returns the stored object, re-fetched, and writes nothing; the same key with other
parameters, or for another service, raises `IdempotencyError`. Keys are per environment and
used as given (the workflow engine passes `run/step/iteration`; the API keeps its own
`api:`-prefixed rows in the same table, through `claim_key` and `ensure_same_request`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.db import IntegrityError, connection, models, transaction

from billing.errors import IdempotencyError, ProviderError
from billing.events import request_context
from billing.models import Environment, IdempotencyRecord, StripeObject
from billing.provider import use_up_fault_after_rollback
from billing.snapshots import RENDERERS

P = ParamSpec("P")
R = TypeVar("R", bound=StripeObject)

MODELS_BY_OBJECT = {model.OBJECT: model for model in RENDERERS}
# Arguments that say who asks or why, not what is asked: a replay may differ in them.
NOT_FINGERPRINTED = {"idempotency_key", "request_id", "cause"}


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


# --- the two building blocks (the service wrapper below and the API's HTTP idempotency) --------


class _KeyTaken(Exception):
    """The key's INSERT hit the unique index; it leaves the atomic block it broke."""


def _insert_key(**fields: Any) -> IdempotencyRecord:
    """INSERT the key's row, inside an atomic block that `_KeyTaken` will roll back."""
    try:
        return IdempotencyRecord.objects.create(**fields)
    except IntegrityError as error:
        raise _KeyTaken from error


def _holder(environment: Environment, key: str, taken: _KeyTaken) -> IdempotencyRecord:
    existing = IdempotencyRecord.objects.filter(environment=environment, key=key).first()
    if existing is None:  # not the unique key that failed
        raise taken.__cause__ from None
    return existing


def claim_key(
    *,
    environment: Environment,
    key: str,
    scope: str,
    fingerprint: str,
    object_type: str = "",
    object_id: str = "",
) -> tuple[IdempotencyRecord, bool]:
    """Store `key` for this environment, or find the row that already holds it.

    Returns the record and True when the key is ours. The row is inserted first, inside a
    savepoint: a concurrent call with the same key waits on the unique index until the other
    transaction ends, then (its INSERT failing) reads the committed row and replays it; if the
    other transaction rolled back, the INSERT goes through and the key is ours.
    """
    try:
        with transaction.atomic():
            record = _insert_key(
                environment=environment,
                key=key,
                scope=scope,
                fingerprint=fingerprint,
                object_type=object_type,
                object_id=object_id,
            )
        return record, True
    except _KeyTaken as taken:
        return _holder(environment, key, taken), False


def ensure_same_request(
    record: IdempotencyRecord, *, scope: str, fingerprint: str, param: str, shown_key: str
) -> None:
    """A key replays only the request it was first used for (same scope and parameters)."""
    if record.scope != scope or record.fingerprint != fingerprint:
        raise IdempotencyError(
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{shown_key}' if you meant to "
            "execute a different request.",
            param=param,
        )


# --- the service wrapper -----------------------------------------------------------------------


def _target(params: dict[str, Any]) -> StripeObject | None:
    for value in params.values():
        if isinstance(value, StripeObject):
            return value
    return None


def _environment_of(params: dict[str, Any]) -> Environment:
    if isinstance(params.get("environment"), Environment):
        return params["environment"]
    target = _target(params)
    if target is not None:
        return target.environment
    raise TypeError("an idempotent service needs an environment or a billing object argument")


def _stored_result(record: IdempotencyRecord) -> StripeObject:
    model = MODELS_BY_OBJECT.get(record.object_type)
    if model is None or not record.object_id:
        raise IdempotencyError(
            f"The idempotency key '{record.key}' is in use by another request.",
            code="idempotency_key_in_use",
            param="idempotency_key",
        )
    return model.objects.get(pk=record.object_id)


def _store_result(record: IdempotencyRecord, result: StripeObject) -> None:
    if (record.object_type, record.object_id) != (result.OBJECT, result.pk):
        record.object_type, record.object_id = result.OBJECT, result.pk
        record.save(update_fields=["object_type", "object_id"])


def billing_service(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """One transaction per call (a savepoint inside the caller's), keyed by `idempotency_key`.

    Events the service records carry its `request_id`, its key and its `cause` (see
    `billing.events.request_context`); what the call does not give, it inherits from the
    request around it.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = bound.arguments
            key = params.get("idempotency_key") or ""
            context = request_context(
                request_id=params.get("request_id") or "",
                idempotency_key=key,
                cause=params.get("cause"),
            )
            digest = fingerprint(params) if key else ""
            environment = _environment_of(params) if key else None
            try:
                # The service's own savepoint also holds its key's claim (`claim_key` without
                # a second savepoint): a taken key rolls it back before anything else is done.
                with transaction.atomic(), context:
                    if not key:
                        return fn(*args, **kwargs)
                    # The object the service acts on (if any) is stored with the key at once,
                    # so a service that returns it needs no second write.
                    target = _target(params)
                    record = _insert_key(
                        environment=environment,
                        key=key,
                        scope=scope,
                        fingerprint=digest,
                        object_type=target.OBJECT if target is not None else "",
                        object_id=target.pk if target is not None else "",
                    )
                    result = fn(*args, **kwargs)
                    _store_result(record, result)
                    return result
            except _KeyTaken as taken:
                # Another call holds (or held) the key: replay its result.
                record = _holder(environment, key, taken)
                ensure_same_request(
                    record, scope=scope, fingerprint=digest, param="idempotency_key", shown_key=key
                )
                return _stored_result(record)  # type: ignore[return-value]
            except ProviderError as error:
                # Our savepoint rolled back the simulator's fault counter: count it again (unless
                # the caller's transaction is broken; its own rollback counts it then).
                if not connection.needs_rollback:
                    use_up_fault_after_rollback(error)
                raise

        return wrapper

    return decorate
