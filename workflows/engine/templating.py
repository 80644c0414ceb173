"""Dynamic fields: `{{ path }}` references resolved against a run's context.

A path is a dotted name with optional integer indexes (`steps.get_customer.output.items.0.id`).
It is resolved only through dict keys and list indexes, never attributes, methods or settings,
so operator-written text can read data and nothing else.

* A string that is exactly one reference keeps the referenced value's type.
* Any other string is interpolated: `None` becomes "", dicts and lists become JSON.
* A `null` met on the way resolves to `None` (like optional chaining): a customer without an
  address gives `None` for `trigger.data.object.address.country`, not an error.
* An unknown key or an index out of range raises `TemplateError(path, message)`.

Formatters present a value for people, from a fixed set (no filters, attributes or code):

* `{{ trigger.data.object.amount | money }}` -> "1,500.00 USD": an amount in minor units with
  the `currency` beside it in the same object; `| money:"jpy"` names the currency instead.
* `{{ trigger.created | date }}` -> "2026-12-07 10:15 UTC": a unix timestamp, in UTC.

A null formats as "". An unknown formatter, a value of the wrong type or a missing currency
raise TemplateError; the validator refuses an unknown formatter when the workflow is saved.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

# A reference's text stops at the next "{{" or "}}": the scan stays linear, where a lazy `.*?`
# rescanned to the end of the string from every "{{" (minutes for 60 kB of "{{").
REFERENCE = re.compile(r"\{\{((?:(?!\{\{|\}\}).)*)\}\}", re.DOTALL)
SEGMENT = r"(?:[A-Za-z_][A-Za-z0-9_\-]*|\d+)"
PATH = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]*(?:\.{SEGMENT})*$")


class TemplateError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return self.message


FORMATTERS = ("money", "date")
# `money`, `money:"usd"`, `money:usd`, `date`: anchored, no nested repetition (linear time).
FORMATTER = re.compile(r'^\s*([A-Za-z_]+)\s*(?::\s*"?([A-Za-z]{3})"?)?\s*$')


def _formatter(text: str, reference: str) -> tuple[str, str]:
    """(name, argument) of the text after `|`; TemplateError naming what is wrong."""
    match = FORMATTER.match(text)
    name = match.group(1) if match else text.strip().split(":", 1)[0].strip()
    if name not in FORMATTERS:
        raise TemplateError(
            reference,
            f"Unknown formatter '{name[:40]}' in '{{{{ {reference[:120]} }}}}': use money "
            '(an amount with its currency, or money:"usd") or date (a unix timestamp)',
        )
    if not match:
        raise TemplateError(
            reference,
            f"'{{{{ {reference[:120]} }}}}': write the formatter as | money, "
            '| money:"usd" or | date',
        )
    argument = (match.group(2) or "").lower()
    if name == "date" and argument:
        raise TemplateError(reference, f"'{{{{ {reference[:120]} }}}}': date takes no argument")
    if argument:
        from workflows.definition.event_types import CURRENCIES

        if argument not in CURRENCIES:
            raise TemplateError(
                reference,
                f"'{{{{ {reference[:120]} }}}}': '{argument}' is not a currency Billflow "
                "knows (a lower-case ISO code such as usd)",
            )
    return name, argument


def split_reference(text: str) -> tuple[str, str, str]:
    """(path, formatter, argument) of a reference's text (`amount | money:"usd"`); the
    formatter is "" when there is none. TemplateError for an unknown or malformed one."""
    path, bar, rest = text.partition("|")
    if not bar:
        return text.strip(), "", ""
    name, argument = _formatter(rest, text.strip())
    return path.strip(), name, argument


def parse_path(text: str) -> list[str]:
    """The segments of a reference's path; TemplateError when it is not a plain dotted path."""
    path = text.strip()
    if "|" in path:
        # Reached with the whole reference when its formatter is wrong (references() keeps
        # it whole so the validator says so), or for a formatter where only a path works.
        split_reference(path)
        raise TemplateError(
            path,
            f"'{{{{ {path[:120]} }}}}': a formatter works where text is written, not in a "
            "field path",
        )
    if not PATH.match(path):
        raise TemplateError(
            path,
            f"'{{{{ {path} }}}}' is not a valid reference: use dotted names and integer "
            "indexes, like steps.get_customer.output.email",
        )
    return path.split(".")


def lookup(path: str, context: dict) -> Any:
    """The value at `path` in `context` (dict keys and list indexes only)."""
    path = path.strip()
    segments = parse_path(path)
    current: Any = context
    walked: list[str] = []
    for segment in segments:
        if current is None and walked:
            return None
        if isinstance(current, dict):
            if segment not in current:
                where = ".".join(walked) or "the run context"
                raise TemplateError(path, f"Unknown field '{segment}' in {where} (for {path})")
            current = current[segment]
        elif isinstance(current, list):
            if not segment.isdigit():
                where = ".".join(walked)
                raise TemplateError(
                    path, f"{where} is a list: use an integer index, not '{segment}' (for {path})"
                )
            index = int(segment)
            if index >= len(current):
                where = ".".join(walked)
                raise TemplateError(
                    path, f"{where} has {len(current)} item(s); index {index} is out of range"
                )
            current = current[index]
        else:
            where = ".".join(walked)
            raise TemplateError(
                path, f"{where} is a {type(current).__name__}, it has no field '{segment}'"
            )
        walked.append(segment)
    return current


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _evaluate(text: str, context: dict) -> Any:
    """The value of one reference's text: a path, optionally formatted."""
    path, name, argument = split_reference(text)
    value = lookup(path, context)
    if not name:
        return value
    if value is None:
        return ""
    from workflows.definition import money  # the one table of currency exponents

    if name == "date":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TemplateError(path, f"{path} is not a unix timestamp, | date cannot format it")
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise TemplateError(path, f"{path} is out of the range of dates") from None
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    if not isinstance(value, int) or isinstance(value, bool):
        raise TemplateError(
            path, f"{path} is not an amount in minor units (an integer), | money cannot format it"
        )
    currency = argument
    if not currency:
        segments = path.split(".")
        sibling = ".".join(segments[:-1] + ["currency"])
        try:
            found = lookup(sibling, context) if len(segments) > 1 else None
        except TemplateError:
            found = None
        if not isinstance(found, str) or not found:
            raise TemplateError(
                path,
                f'{path} has no currency beside it: name one, like {{{{ {path} | money:"usd" }}}}',
            )
        currency = found
    return money.format_money(value, currency)


def _single_reference(text: str) -> str | None:
    match = REFERENCE.fullmatch(text)
    if match and "{{" not in match.group(1) and "}}" not in match.group(1):
        return match.group(1)
    return None


def resolve(value: Any, context: dict) -> Any:
    """`value` with every reference replaced, recursively through dicts and lists."""
    if isinstance(value, dict):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    single = _single_reference(value)
    if single is not None:
        return _evaluate(single, context)
    return REFERENCE.sub(lambda m: _as_text(_evaluate(m.group(1), context)), value)


def references(value: Any) -> list[str]:
    """Every reference path in `value` (stripped, in order, duplicates kept once; a known
    formatter is left off, a reference with a wrong one is kept whole)."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for sub in item.values():
                walk(sub)
        elif isinstance(item, list):
            for sub in item:
                walk(sub)
        elif isinstance(item, str) and "{{" in item:
            for match in REFERENCE.finditer(item):
                path = match.group(1).strip()
                try:
                    path = split_reference(path)[0]
                except TemplateError:
                    pass  # kept whole: parse_path names the wrong formatter
                if path not in found:
                    found.append(path)

    walk(value)
    return found


def is_single_reference(value: Any) -> bool:
    """True when `value` is a string that is exactly one `{{ path }}` (it keeps its type)."""
    return isinstance(value, str) and _single_reference(value) is not None
