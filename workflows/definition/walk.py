"""The one walk over a definition's steps: iterate, find, parent, lineage, count, insert, move,
remove.

Steps nest in two places: a branch's paths (`step["paths"][i]["steps"]`) and a loop's body
(`step["steps"]`). Every piece of code that needs "each step", "the step with this id", "the
step around this one" or "the field path of this step" asks this module instead of walking the
JSON form by hand, so a new kind of nesting is taught here once.

It works on the JSON form (plain dicts: what is stored, sent and edited); the reading functions
also take the typed model (`model.Definition`, whose steps are models). It tolerates a
definition that is not well shaped (a step that is not an object, `steps` that is not a list
are skipped), so validation can walk what it is about to reject. The walk is iterative: no
input nests deep enough to exhaust Python's stack.

The changing functions (`insert`, `move`, `remove`) change the given definition in place;
callers that must keep the original copy it first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# A step: a dict of the JSON form, or a step model of `model.Definition`.
Node = dict[str, Any] | BaseModel


@dataclass(frozen=True)
class Place:
    """Where a step is: its list, its index in it, the step around it and its field path."""

    step: Node
    container: list
    index: int
    field: str  # "steps[0].paths[1].steps[2]", as in validation errors
    parent: Node | None  # the enclosing branch or loop; None at the top level
    path_index: int | None  # which of the parent branch's paths holds the step
    ancestors: tuple[Node, ...]  # enclosing steps, outermost first

    @property
    def depth(self) -> int:
        return len(self.ancestors)


def _get(node: Any, key: str) -> Any:
    """`node[key]` of the JSON form, or the attribute of a typed model (model.Definition)."""
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, BaseModel):
        return getattr(node, key, None)
    return None


def _is_step(node: Any) -> bool:
    return isinstance(node, (dict, BaseModel))


def _top(definition: Any) -> list:
    if isinstance(definition, list):
        return definition
    steps = _get(definition, "steps")
    return steps if isinstance(steps, list) else []


def children(step: Any, field: str) -> list[tuple[list, str, int | None]]:
    """The lists of steps directly inside `step`: (list, its field path, path index)."""
    kind = _get(step, "type")
    if kind == "branch":
        paths = _get(step, "paths")
        found = []
        for p_index, path in enumerate(paths if isinstance(paths, list) else []):
            steps = _get(path, "steps")
            if isinstance(steps, list):
                found.append((steps, f"{field}.paths[{p_index}].steps", p_index))
        return found
    if kind == "foreach":
        steps = _get(step, "steps")
        return [(steps, f"{field}.steps", None)] if isinstance(steps, list) else []
    return []


def places(definition: Any) -> Iterator[Place]:
    """Every step, depth first in the order they run (a step, then what is inside it), with
    its place. `definition` is the JSON form or a list of steps."""
    # Each entry: (list, field of the list, parent, path index, ancestors); a stack of
    # iterators keeps the order of a recursive walk without recursing.
    stack: list[tuple[Iterator, str, dict | None, int | None, tuple]] = [
        (iter(enumerate(_top(definition))), "steps", None, None, ())
    ]
    lists: list[list] = [_top(definition)]
    while stack:
        iterator, where, parent, path_index, ancestors = stack[-1]
        item = next(iterator, None)
        if item is None:
            stack.pop()
            lists.pop()
            continue
        index, step = item
        if not _is_step(step):
            continue
        field = f"{where}[{index}]"
        yield Place(step, lists[-1], index, field, parent, path_index, ancestors)
        # Pushed in reverse so the first path is walked first.
        for steps, inner, p_index in reversed(children(step, field)):
            stack.append((iter(enumerate(steps)), inner, step, p_index, (*ancestors, step)))
            lists.append(steps)


def steps(definition: Any) -> Iterator[Node]:
    """Every step, depth first."""
    for place in places(definition):
        yield place.step


def count(definition: Any) -> int:
    """Every step counts, nested ones too (branch paths and loop bodies)."""
    return sum(1 for _ in places(definition))


def step_ids(definition: Any) -> list[str]:
    return [_get(place.step, "id") for place in places(definition)]


def find(definition: Any, step_id: str) -> Place | None:
    """The place of the step with `step_id` (ids are unique in a valid definition: the first)."""
    for place in places(definition):
        if _get(place.step, "id") == step_id:
            return place
    return None


def lineage(definition: Any, step_id: str) -> tuple[Place, ...]:
    """The places of the steps around the step and of the step itself, outermost first (empty
    when there is no such step). What runs before a step is what comes before each of these in
    its own list: the picker's scope."""
    chain: list[Place] = []
    for place in places(definition):
        # Depth first: the places above this one's depth are its ancestors' places.
        del chain[place.depth :]
        chain.append(place)
        if _get(place.step, "id") == step_id:
            return tuple(chain)
    return ()


def parent_of(definition: Any, step_id: str) -> Node | None:
    """The branch or loop directly around the step; None at the top level or when not found."""
    place = find(definition, step_id)
    return place.parent if place is not None else None


def field_path(definition: Any, step_id: str) -> str | None:
    """The step's field path in the JSON form (`steps[0].paths[1].steps[0]`)."""
    place = find(definition, step_id)
    return place.field if place is not None else None


class WalkError(ValueError):
    """An edit that names a step or a place that does not exist."""


def _target(definition: Any, parent_id: str | None, path_index: int | None) -> list:
    """The list of steps an edit puts a step into: the top level, a loop's body, or one path
    of a branch."""
    if parent_id is None:
        if isinstance(definition, dict):
            return definition.setdefault("steps", [])
        return definition
    place = find(definition, parent_id)
    if place is None:
        raise WalkError(f"There is no step '{parent_id}'")
    parent = place.step
    if parent.get("type") == "foreach":
        return parent.setdefault("steps", [])
    if parent.get("type") == "branch":
        paths = parent.get("paths") or []
        if path_index is None or not 0 <= path_index < len(paths):
            raise WalkError(f"Branch '{parent_id}' has no path {path_index}")
        return paths[path_index].setdefault("steps", [])
    raise WalkError(f"Step '{parent_id}' holds no steps (only branches and loops do)")


def insert(
    definition: Any,
    step: dict,
    *,
    parent: str | None = None,
    path: int | None = None,
    index: int | None = None,
) -> Place:
    """Put `step` into the top level (`parent=None`), a loop's body or a branch's `path`,
    at `index` (the end when None)."""
    target = _target(definition, parent, path)
    position = len(target) if index is None else max(0, min(index, len(target)))
    target.insert(position, step)
    return find(definition, step.get("id"))  # type: ignore[return-value]


def remove(definition: Any, step_id: str) -> dict:
    """Take the step (and what is inside it) out; returns it."""
    place = find(definition, step_id)
    if place is None:
        raise WalkError(f"There is no step '{step_id}'")
    return place.container.pop(place.index)


def move(
    definition: Any,
    step_id: str,
    *,
    parent: str | None = None,
    path: int | None = None,
    index: int | None = None,
) -> Place:
    """Move a step (with what is inside it) to another place; a step cannot go inside itself."""
    place = find(definition, step_id)
    if place is None:
        raise WalkError(f"There is no step '{step_id}'")
    if parent is not None:
        if parent == step_id or any(a.get("id") == step_id for a in _ancestors(definition, parent)):
            raise WalkError(f"Step '{step_id}' cannot move inside itself")
    step = place.container.pop(place.index)
    try:
        return insert(definition, step, parent=parent, path=path, index=index)
    except WalkError:
        place.container.insert(place.index, step)  # leave the definition as it was
        raise


def _ancestors(definition: Any, step_id: str) -> tuple[dict, ...]:
    place = find(definition, step_id)
    return place.ancestors if place is not None else ()
