"""Text inputs and text areas drawn in Python, for the builder's step forms.

A step form has a field per input of its action, and Django draws each widget by rendering a
template: most of the time of drawing the side panel. These draw the same HTML as Django's own
`TextInput` and `Textarea` (tests/builder/test_builder_widgets.py compares them).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


def _attrs(attrs: dict[str, Any]) -> SafeString:
    """`django/forms/widgets/attrs.html`: ` name="value"`, ` name` for True, nothing for False."""
    return mark_safe(
        "".join(
            format_html(" {}", name) if value is True else format_html(' {}="{}"', name, value)
            for name, value in attrs.items()
            if value is not False
        )
    )


class TextInput(forms.TextInput):
    def render(self, name: str, value: Any, attrs: dict | None = None, renderer=None) -> SafeString:
        value = self.format_value(value)
        html = format_html('<input type="{}" name="{}"', self.input_type, name)
        if value is not None:
            html += format_html(' value="{}"', value)
        return mark_safe(html + _attrs(self.build_attrs(self.attrs, attrs)) + ">")


class Textarea(forms.Textarea):
    def render(self, name: str, value: Any, attrs: dict | None = None, renderer=None) -> SafeString:
        value = self.format_value(value)
        attributes = _attrs(self.build_attrs(self.attrs, attrs))
        body = format_html("{}", value) if value else ""
        return format_html('<textarea name="{}"{}>\n{}</textarea>', name, attributes, body)
