"""Input checks shared by the billing services. Each raises `InvalidRequestError` (or
`NotFoundError`) naming the parameter, in Stripe's words where Stripe has them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from billing import provider
from billing.errors import InvalidRequestError, NotFoundError
from billing.models import Environment, Price, StripeObject
from billing.selectors import get_object

CURRENCIES = frozenset(
    "usd eur gbp cad aud nzd jpy chf sek nok dkk pln czk huf ron bgn isk "
    "sgd hkd mxn brl inr zar ils aed sar try krw cny thb myr php idr".split()
)
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")
DISPUTE_REASONS = frozenset(
    "bank_cannot_process check_returned credit_not_processed customer_initiated "
    "debit_not_authorized duplicate fraudulent general incorrect_account_details "
    "insufficient_funds product_not_received product_unacceptable subscription_canceled "
    "unrecognized".split()
)


def invalid(message: str, param: str, code: str = "parameter_invalid") -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)


def check_amount(value: Any, *, param: str, minimum: int = 1) -> int:
    # bool is an int in Python; Stripe would never accept `true` as an amount.
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"Invalid integer: {value!r}; {param} must be a whole number.", param)
    if value < minimum:
        raise invalid(f"Invalid {param}: must be at least {minimum}.", param)
    return value


def check_currency(value: Any, *, param: str = "currency") -> str:
    if not isinstance(value, str) or value.lower() not in CURRENCIES:
        raise invalid(
            f"Invalid currency: {value!r}. Use a lower-case ISO 4217 code such as 'usd'.", param
        )
    return value.lower()


def check_text(value: Any, *, param: str, max_length: int = 5000) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {value!r}; {param} must be a string.", param)
    if len(value) > max_length:
        raise invalid(f"Invalid {param}: must be at most {max_length} characters.", param)
    return value


def check_email(value: Any) -> str:
    email = check_text(value, param="email", max_length=512)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise invalid(f"Invalid email address: {email}", "email", "email_invalid") from None
    return email


def check_address(value: Any) -> dict | None:
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise invalid("Invalid address: must be a hash of address fields.", "address")
    for key in value:
        if key not in ADDRESS_FIELDS:
            raise invalid(f"Received unknown parameter: address[{key}]", f"address[{key}]")
    address = {
        f: check_text(value.get(f), param=f"address[{f}]", max_length=200) or None
        for f in ADDRESS_FIELDS
    }
    if address["country"]:
        if len(address["country"]) != 2:
            raise invalid("Invalid country: use a two-letter ISO code.", "address[country]")
        address["country"] = address["country"].upper()
    return address


def optional_payment_method(value: Any, *, param: str) -> str:
    method = check_text(value, param=param, max_length=100)
    if method:
        provider.check_payment_method(method, param=param)
    return method


def _check_metadata_entries(entries: dict) -> None:
    for key, value in entries.items():
        if not isinstance(key, str) or not key:
            raise invalid("Invalid metadata: keys must be non-empty strings.", "metadata")
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise invalid(
                f"Invalid metadata[{key}]: keys can be at most "
                f"{METADATA_MAX_KEY_LENGTH} characters long.",
                f"metadata[{key}]",
            )
        if "[" in key or "]" in key:
            raise invalid(
                f"Invalid metadata[{key}]: keys cannot contain '[' or ']'.", f"metadata[{key}]"
            )
        if not isinstance(value, str):
            raise invalid(
                f"Invalid metadata[{key}]: values must be strings, not {type(value).__name__}.",
                f"metadata[{key}]",
            )
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise invalid(
                f"Invalid metadata[{key}]: values can be at most "
                f"{METADATA_MAX_VALUE_LENGTH} characters long.",
                f"metadata[{key}]",
            )


def merge_metadata(current: dict, updates: Any) -> dict:
    """Stripe's rule: given keys are merged in, a key set to "" is removed, and "" or None
    for the whole map clears it. The result must keep Stripe's limits."""
    if updates is None or updates == "":
        return {}
    if not isinstance(updates, dict):
        raise invalid("Invalid metadata: must be a hash of string keys and values.", "metadata")
    _check_metadata_entries(updates)
    merged = {**current, **updates}
    merged = {key: value for key, value in merged.items() if value != ""}
    if len(merged) > METADATA_MAX_KEYS:
        raise invalid(
            f"Invalid metadata: an object can have at most {METADATA_MAX_KEYS} keys "
            f"(this would make {len(merged)}).",
            "metadata",
        )
    return merged


def check_same_environment(obj: StripeObject | None, environment: Environment, param: str) -> None:
    """Objects passed in must live in the caller's environment; others do not exist for it."""
    if obj is not None and obj.environment_id != environment.pk:
        raise NotFoundError(f"No such {obj.OBJECT}: '{obj.pk}'", param=param)


def reject_unknown(changes: dict, allowed: set[str]) -> None:
    for key in changes:
        if key not in allowed:
            raise invalid(f"Received unknown parameter: {key}", key, "parameter_unknown")


def resolve_price(value: Any, *, environment: Environment, param: str) -> Price:
    """Line items may name a price by object (services) or by id (workflow actions)."""
    if isinstance(value, str):
        value = get_object(Price, environment, value, param=param)
    if not isinstance(value, Price):
        raise invalid(f"Invalid {param}: must be a price.", param)
    check_same_environment(value, environment, param)
    if not value.active:
        raise invalid(f"The price '{value.pk}' is not active.", param)
    return value


def check_quantity(value: Any, *, param: str) -> int:
    return check_amount(1 if value is None else value, param=param)


def price_items(
    items: Any, *, environment: Environment, param: str, recurring: bool
) -> list[tuple[Price, int]]:
    """`[{"price": Price or id, "quantity": n}]` -> [(price, quantity)], all in one currency
    (and, for subscriptions, recurring on one interval)."""
    if not isinstance(items, list) or not items:
        raise invalid(f"Missing required param: {param}.", param, "parameter_missing")
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"Invalid {param}[{i}]: must be a hash.", f"{param}[{i}]")
        price_param = f"{param}[{i}][price]"
        price = resolve_price(item.get("price"), environment=environment, param=price_param)
        if recurring and not price.recurring_interval:
            raise invalid(
                f"The price '{price.pk}' is not recurring; a subscription needs recurring prices.",
                price_param,
            )
        quantity = check_quantity(item.get("quantity"), param=f"{param}[{i}][quantity]")
        parsed.append((price, quantity))
    if len({price.currency for price, _ in parsed}) > 1:
        raise invalid(f"All {param} must have the same currency.", param)
    if (
        recurring
        and len({(p.recurring_interval, p.recurring_interval_count) for p, _ in parsed}) > 1
    ):
        raise invalid(f"All {param} must have the same billing interval.", param)
    return parsed


def invoice_line_rows(lines: Any, *, environment: Environment) -> list[dict]:
    if not isinstance(lines, list) or not lines:
        raise invalid("An invoice needs at least one line.", "lines", "parameter_missing")
    rows = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise invalid(f"Invalid lines[{i}]: must be a hash.", f"lines[{i}]")
        quantity = check_quantity(line.get("quantity"), param=f"lines[{i}][quantity]")
        price = line.get("price")
        if price is not None:
            price = resolve_price(price, environment=environment, param=f"lines[{i}][price]")
            amount, currency = price.unit_amount * quantity, price.currency
            description = line.get("description") or f"{quantity} × {price.product.name}"
        else:
            if line.get("amount") is None:
                raise invalid(
                    f"Missing lines[{i}][amount] (or lines[{i}][price]).",
                    f"lines[{i}][amount]",
                    "parameter_missing",
                )
            amount = check_amount(line["amount"], param=f"lines[{i}][amount]", minimum=0)
            currency = check_currency(line.get("currency"), param=f"lines[{i}][currency]")
            description = line.get("description") or ""
        rows.append(
            {
                "price": price,
                "quantity": quantity,
                "amount": amount,
                "currency": currency,
                "description": check_text(
                    description, param=f"lines[{i}][description]", max_length=500
                ),
            }
        )
    currencies = {row["currency"] for row in rows}
    if len(currencies) > 1:
        raise invalid("All lines of an invoice must have the same currency.", "lines")
    return rows
