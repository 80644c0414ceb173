"""Dynamic fields: `{{ path }}` references resolved against a run's context.

A path is a dotted name with optional integer indexes (`steps.get_customer.output.items.0.id`).
It is resolved only through dict keys and list indexes, never attributes, methods or settings,
so operator-written text can read data and nothing else.

* A string that is exactly one reference keeps the referenced value's type.
* Any other string is interpolated: `None` becomes "", dicts and lists become JSON.
* A `null` met on the way resolves to `None` (like optional chaining): a customer without an
  address gives `None` for `trigger.data.object.address.country`, not an error.
* An unknown key or an index out of range raises `TemplateError(path, message)`.
"""

from __future__ import annotations

import json
import re
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


def parse_path(text: str) -> list[str]:
    """The segments of a reference's path; TemplateError when it is not a plain dotted path."""
    path = text.strip()
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
        return lookup(single, context)
    return REFERENCE.sub(lambda m: _as_text(lookup(m.group(1), context)), value)


def references(value: Any) -> list[str]:
    """Every reference path in `value` (stripped, in order, duplicates kept once)."""
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
                if path not in found:
                    found.append(path)

    walk(value)
    return found


def is_single_reference(value: Any) -> bool:
    """True when `value` is a string that is exactly one `{{ path }}` (it keeps its type)."""
    return isinstance(value, str) and _single_reference(value) is not None
