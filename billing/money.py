"""Amounts in minor units, for people: "1,500.00 USD" for 150000, "1,500 JPY" for 1500.

Stripe (and Billflow's API) stores every amount as an integer in the currency's minor unit:
cents for USD, whole yen for JPY (a zero-decimal currency), thousandths for KWD. This module is
the one place that knows each currency's exponent; the builder's money input, the `| money`
formatter of `{{ }}`, the system workflows' e-mails and the back office's amounts all use it.
It lives in billing, the lower layer, so billing's own pages can show money (billing never
imports workflows); `workflows.definition.money` is this module under its older name.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Stripe's zero-decimal currencies: an amount is already in whole units.
ZERO_DECIMAL_CURRENCIES = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
# Stripe's three-decimal currencies.
THREE_DECIMAL_CURRENCIES = frozenset("bhd jod kwd omr tnd".split())

# "1,000.00", "1000", "-12.5", "1 000,00" is not accepted (one notation, no guessing).
_MONEY_TEXT = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


def exponent(currency: str) -> int:
    """How many decimal places the currency's major unit has (2 for most)."""
    code = (currency or "").lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """The number alone, in major units: "1,500.00" (USD), "1,500" (JPY)."""
    places = exponent(currency)
    if places == 0:
        return f"{amount:,}"
    return f"{Decimal(amount).scaleb(-places):,.{places}f}"


def format_money(amount: int, currency: str) -> str:
    """ "1,500.00 USD" for 150000 usd; "1,500 JPY" for 1500 jpy."""
    return f"{format_amount(amount, currency)} {(currency or '').upper()}".strip()


def parse_amount(text: str, currency: str) -> int:
    """The minor units of an amount typed in major units: "1,000.00" USD -> 100000.

    Raises ValueError with a sentence for text that is not an amount of this currency (letters,
    more decimals than the currency has: "10.5" JPY)."""
    cleaned = text.strip().replace(" ", "")
    code = (currency or "").upper()
    if not _MONEY_TEXT.match(cleaned):
        raise ValueError(f"'{text.strip()}' is not an amount: write it like 1,000.00")
    try:
        major = Decimal(cleaned.replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"'{text.strip()}' is not an amount: write it like 1,000.00") from None
    places = exponent(currency)
    minor = major.scaleb(places)
    if minor != minor.to_integral_value():
        if places == 0:
            raise ValueError(f"{code} has no minor unit: write whole {code}, like 1,000")
        raise ValueError(f"{code} amounts have at most {places} decimals")
    return int(minor)


# Integer fields of Stripe's objects that hold an amount in the minor unit of the `currency`
# beside them (back-office summaries of event payloads show these as money).
AMOUNT_FIELDS = frozenset(
    {
        "amount",
        "amount_captured",
        "amount_due",
        "amount_paid",
        "amount_received",
        "amount_refunded",
        "amount_remaining",
        "amount_total",
        "balance",
        "subtotal",
        "total",
        "unit_amount",
    }
)


def format_money_with_minor(amount: int, currency: str) -> str:
    """ "20.00 USD (2000)": money for people, with the stored minor units beside it (detail
    pages); the bare number when there is no currency to read it in."""
    if not currency:
        return str(amount)
    return f"{format_money(amount, currency)} ({amount})"


def amounts_of(obj: dict) -> list[tuple[str, str]]:
    """(field, "20.00 USD (2000)") for each amount of a Stripe object's JSON (an event's
    `data.object`) that has a currency beside it, in field order."""
    currency = obj.get("currency") if isinstance(obj, dict) else None
    if not isinstance(currency, str) or not currency:
        return []
    return [
        (name, format_money_with_minor(value, currency))
        for name, value in obj.items()
        if name in AMOUNT_FIELDS and isinstance(value, int) and not isinstance(value, bool)
    ]
