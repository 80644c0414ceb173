"""The builder's Python-drawn widgets draw exactly what Django's template-drawn widgets draw."""

from __future__ import annotations

import pytest
from django import forms
from django.utils.safestring import mark_safe

from workflows.builder import widgets

ATTRS = [
    None,
    {"class": "wf-input", "data-picker": "1", "placeholder": 'say "hi" <b>'},
    {"required": True, "disabled": False, "aria-invalid": "true", "rows": 3},
]
VALUES = [None, "", "0", "{{ trigger.data.object.id }}", 'a <b> & "c"', 42, mark_safe("<i>")]


@pytest.mark.parametrize("attrs", ATTRS)
@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize(
    "ours, django", [(widgets.TextInput, forms.TextInput), (widgets.Textarea, forms.Textarea)]
)
def test_it_draws_what_django_draws(ours, django, value, attrs):
    own = {"class": "wf-input", "rows": 2}
    assert ours(attrs=own).render("p_customer", value, attrs=attrs) == django(attrs=own).render(
        "p_customer", value, attrs=attrs
    )


def test_a_bound_field_draws_the_same(db):
    class Ours(forms.Form):
        text = forms.CharField(widget=widgets.TextInput(attrs={"class": "wf-input"}))
        area = forms.CharField(widget=widgets.Textarea(attrs={"rows": 2}))

    class Djangos(forms.Form):
        text = forms.CharField(widget=forms.TextInput(attrs={"class": "wf-input"}))
        area = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))

    data = {"text": "", "area": "x = y"}
    ours, djangos = Ours(data), Djangos(data)
    assert not ours.is_valid() and not djangos.is_valid()  # required: aria-invalid is drawn
    assert str(ours["text"]) == str(djangos["text"])
    assert str(ours["area"]) == str(djangos["area"])
