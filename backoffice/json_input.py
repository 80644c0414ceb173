"""JSON from outside (API bodies, the builder's import): parsed with a nesting limit.

Python's JSON decoder gives up with `RecursionError` (not `ValueError`) around 1,000 levels, and
code that walks a parsed document recursively can fail well before that. Every entry point
parses with `loads_limited`, so hostile nesting is one clear error, the same everywhere.
"""

from __future__ import annotations

import json
from typing import Any

# Far above what any resource needs (a workflow definition is refused past 32 levels, with its
# own message naming the step) and far below Python's recursion limit, so nothing that walks a
# parsed document recursively can raise RecursionError on it.
MAX_JSON_DEPTH = 200


class JsonTooDeep(ValueError):
    """Objects and lists nested more than `MAX_JSON_DEPTH` levels."""

    def __init__(self) -> None:
        super().__init__(f"objects and lists may be nested at most {MAX_JSON_DEPTH} levels deep")


def json_depth(value: Any, *, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deeply objects and lists nest in `value` (a scalar is 0), without recursion; stops
    counting once past `stop_after`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > stop_after:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(value: Any) -> Any:
    """`value`, or `JsonTooDeep` when it nests more than `MAX_JSON_DEPTH` levels."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JsonTooDeep()
    return value


def loads_limited(raw: str | bytes) -> Any:
    """`json.loads`, raising `JsonTooDeep` (a ValueError) for nesting past the limit."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep() from None
    return check_depth(value)
