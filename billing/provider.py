"""The payment-provider interface and the built-in simulator.

The simulator honours Stripe's test payment methods (docs/billing.md lists them) and can be
told to fail its next N calls in an environment (`ProviderFault`), so retries can be tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import F
from django.utils.module_loading import import_string

from billing.errors import InvalidRequestError, ProviderError
from billing.models import Environment, ProviderFault


@dataclass(frozen=True)
class ChargeResult:
    status: str  # "succeeded", "failed" or "processing" (settled later)
    failure_code: str = ""
    decline_code: str = ""
    message: str = ""

    @property
    def outcome(self) -> dict:
        """Stripe's `charge.outcome`."""
        if self.status == "failed":
            return {
                "network_status": "declined_by_network",
                "reason": self.decline_code,
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }
        return {
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }

    @property
    def last_payment_error(self) -> dict | None:
        """Stripe's `payment_intent.last_payment_error` for a failed charge."""
        if self.status != "failed":
            return None
        return {
            "type": "card_error",
            "code": self.failure_code,
            "decline_code": self.decline_code,
            "message": self.message,
        }


@dataclass(frozen=True)
class RefundResult:
    status: str  # "succeeded" or "failed"


class PaymentProvider(Protocol):
    def charge(
        self,
        *,
        environment: Environment,
        amount: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
    ) -> ChargeResult: ...

    def refund(
        self, *, environment: Environment, charge_id: str, amount: int, idempotency_key: str
    ) -> RefundResult: ...


SUCCEEDING_METHODS = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit"}
# method -> (code, decline_code, message), as Stripe's test cards answer.
DECLINING_METHODS = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedLostCard": ("card_declined", "lost_card", "Your card was declined."),
    "pm_card_chargeDeclinedStolenCard": ("card_declined", "stolen_card", "Your card was declined."),
    "pm_card_chargeDeclinedExpiredCard": (
        "expired_card",
        "expired_card",
        "Your card has expired.",
    ),
}
# Settled later by `checkout_session_settle` (like a bank debit); the name only says what a
# demo intends, the settle call decides.
DELAYED_METHODS = {"pm_delayed_success", "pm_delayed_failure"}
KNOWN_METHODS = SUCCEEDING_METHODS | DECLINING_METHODS.keys() | DELAYED_METHODS


def check_payment_method(payment_method: str, *, param: str = "payment_method") -> None:
    """Stripe answers `resource_missing` for an unknown payment method."""
    if not payment_method:
        raise InvalidRequestError(
            "A payment method is required.", code="parameter_missing", param=param
        )
    if payment_method not in KNOWN_METHODS:
        raise InvalidRequestError(
            f"No such PaymentMethod: '{payment_method}'", code="resource_missing", param=param
        )


class SimulatedProvider:
    def charge(
        self,
        *,
        environment: Environment,
        amount: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
    ) -> ChargeResult:
        check_payment_method(payment_method)
        _fail_if_faulted(environment)
        if payment_method in DECLINING_METHODS:
            code, decline_code, message = DECLINING_METHODS[payment_method]
            return ChargeResult("failed", code, decline_code, message)
        if payment_method in DELAYED_METHODS:
            return ChargeResult("processing")
        return ChargeResult("succeeded")

    def refund(
        self, *, environment: Environment, charge_id: str, amount: int, idempotency_key: str
    ) -> RefundResult:
        _fail_if_faulted(environment)
        return RefundResult("succeeded")


class TransientProviderError(ProviderError):
    """A simulated outage. `count_again_after_rollback` says the used-up failure was counted
    inside the failing call's own transaction, so it must be counted again after it."""

    def __init__(self, message: str, *, environment_id: int, count_again: bool) -> None:
        super().__init__(message, code="provider_unavailable")
        self.environment_id = environment_id
        self.count_again_after_rollback = count_again
        self.counted_at_depth: int | None = None


def _fail_if_faulted(environment: Environment) -> None:
    faults = ProviderFault.objects.filter(environment=environment, remaining_failures__gt=0)
    if not faults.exists():
        return
    if _use_up_on_own_connection(environment.pk):
        count_again = False
    elif faults.update(remaining_failures=F("remaining_failures") - 1):
        count_again = True
    else:
        return
    raise TransientProviderError(
        "The payment provider is temporarily unavailable; try again.",
        environment_id=environment.pk,
        count_again=count_again,
    )


def _use_up_on_own_connection(environment_id: int) -> bool:
    """Count one failure on a separate, autocommitting connection, so it stays counted when
    the failing call's transaction rolls back, and any transaction around it too (a workflow
    step's). PostgreSQL only: a second SQLite writer would wait for the first one's lock.

    Returns False when the switch is not visible there (set inside the caller's still-open
    transaction, as tests do) or the row is busy; the caller then counts it in-transaction.
    """
    if connection.vendor != "postgresql":
        return False
    own = connections.create_connection(DEFAULT_DB_ALIAS)
    table = own.ops.quote_name(ProviderFault._meta.db_table)
    try:
        with own.cursor() as cursor:
            # Never wait long on a row the caller's own transaction may hold.
            cursor.execute("SET lock_timeout = '2s'")
            cursor.execute(
                f"UPDATE {table} SET remaining_failures = remaining_failures - 1 "
                "WHERE environment_id = %s AND remaining_failures > 0",
                [environment_id],
            )
            return cursor.rowcount == 1
    except DatabaseError:
        return False
    finally:
        own.close()


def use_up_fault_after_rollback(error: ProviderError) -> None:
    """Re-count a failure that was counted inside the rolled-back transaction.

    Called by the service wrapper once its own atomic block has rolled back, and by any
    caller that ran the service inside its own transaction, after rolling that back (the API,
    a workflow step). Safe to call at each level: it counts again only where the previous
    count was rolled back.
    """
    if not isinstance(error, TransientProviderError) or not error.count_again_after_rollback:
        return
    # Each count made inside a transaction is undone when the error leaves that transaction;
    # only a caller further out (fewer open atomic blocks) needs to count it again.
    depth = len(connection.atomic_blocks)
    if error.counted_at_depth is not None and depth >= error.counted_at_depth:
        return
    ProviderFault.objects.filter(
        environment_id=error.environment_id, remaining_failures__gt=0
    ).update(remaining_failures=F("remaining_failures") - 1)
    error.counted_at_depth = depth


def set_failures(*, environment: Environment, count: int) -> None:
    ProviderFault.objects.update_or_create(
        environment=environment, defaults={"remaining_failures": count}
    )


def get_provider() -> PaymentProvider:
    path = getattr(settings, "BILLING_PAYMENT_PROVIDER", "billing.provider.SimulatedProvider")
    return import_string(path)()
