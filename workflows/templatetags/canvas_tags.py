"""`{% canvas_add add_url parent path_index position %}`: a `+` insertion point of the canvas
(`{% load canvas_tags %}` first).

A tag rather than an included template: a 12-step canvas draws about twenty of them, and an
include (with its context push and a dozen variable lookups) costs ten times as much.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def canvas_add(add_url: str, parent: str, path_index: int | str | None, position: int) -> str:
    path = "" if path_index is None else path_index
    url = f"{add_url}?parent={parent}&path={path}&position={position}"
    where = format_html(" in {}", parent) if parent else ""
    return format_html(
        '<li class="wf-insert"><a class="wf-add" href="{url}" hx-get="{url}" '
        'hx-target="#wf-panel" hx-swap="outerHTML" title="Add a step here" '
        'aria-label="Add a step here{where} at position {number}" data-parent="{parent}" '
        'data-path="{path}" data-position="{position}">+</a></li>',
        url=url,
        where=where,
        number=position + 1,
        parent=parent,
        path=path,
        position=position,
    )


@register.filter
def event_label(event_type: str) -> str:
    """`{{ "customer.created"|event_label }}` -> "Customer created" (Stripe's Dashboard name)."""
    from workflows.definition.event_types import event_label as label

    return label(str(event_type or ""))
