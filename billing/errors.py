"""Billing errors carrying Stripe's error shape: `type`, `code`, `message`, `param`.

The API turns them into `{"error": {...}}` with `http_status`; the workflow engine reads
`retryable` to decide whether a step is retried.
"""

from __future__ import annotations


class BillingError(Exception):
    type = "invalid_request_error"
    code = ""
    http_status = 400
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str = "",
        http_status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        # Instance values override the class defaults only when given.
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict:
        return {"type": self.type, "code": self.code, "message": self.message, "param": self.param}


class InvalidRequestError(BillingError):
    code = "parameter_invalid"


class NotFoundError(BillingError):
    code = "resource_missing"
    http_status = 404


class IdempotencyError(BillingError):
    """The key was already used with other parameters. Stripe answers 400 with type
    `idempotency_error`; a key still in flight elsewhere uses code `idempotency_key_in_use`."""

    type = "idempotency_error"
    code = "idempotency_error"


class CardError(BillingError):
    """A decline. Services do not raise it for declines (they record the failure); the
    provider hands it to them, and the API may raise it where Stripe answers 402."""

    type = "card_error"
    code = "card_declined"
    http_status = 402

    def __init__(self, message: str, *, decline_code: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.decline_code = decline_code

    def to_dict(self) -> dict:
        return {**super().to_dict(), "decline_code": self.decline_code}


class ProviderError(BillingError):
    """A transient failure of the payment provider: retry later."""

    type = "api_error"
    code = "provider_unavailable"
    http_status = 503
    retryable = True
