"""Amounts in minor units, for people: `billing.money` under the name workflow code imports.

The formatter and the one table of currency exponents live in billing/money.py, because the
billing admin shows amounts too and billing never imports workflows.
"""

from billing.money import (
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    exponent,
    format_amount,
    format_money,
    parse_amount,
)

__all__ = [
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "exponent",
    "format_amount",
    "format_money",
    "parse_amount",
]
