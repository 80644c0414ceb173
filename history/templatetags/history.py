"""`{% history_panel_data object as history %}`: what templates/history/panel.html shows."""

from __future__ import annotations

from django import template
from django.db import connection

from backoffice.actors import recorded_here
from backoffice.roles import can
from history import objects
from history.entries import recent

register = template.Library()

PANEL_ENTRIES = 10


@register.simple_tag(takes_context=True)
def history_panel_data(context, obj, limit: int = PANEL_ENTRIES) -> dict:
    """The last entries of `obj`'s history, if the viewer may read them (role check here, on
    the server, like every view), and whether this database records history at all."""
    try:
        subject = objects.for_object(obj)
    except objects.UnknownObject:  # not tracked (an event is itself a record): no panel
        return {"allowed": False}
    request = context.get("request")
    allowed = request is not None and can(request.user, subject.kind.capability)
    recorded = recorded_here(connection)
    entries = recent(subject, limit) if allowed and recorded else []
    return {
        "allowed": allowed,
        "recorded": recorded,
        "entries": entries,
        "reference": subject.reference,
    }
