"""The builder's Guardrails panel: a workflow's money caps and circuit breaker as a form.

Amounts are typed in major units, one currency a line (`usd 500.00`), and stored in the minor
unit (`{"usd": 50000}`); the rules are the definition's own
(`workflows.definition.guardrails.guardrail_problems`), whose errors go next to the field they
name. A form left empty removes the guardrails (or the breaker) from the definition.
"""

from __future__ import annotations

from typing import Any

from django import forms

from workflows.definition.guardrails import AMOUNT_CAPS, guardrail_problems
from workflows.definition.money import format_amount, parse_amount

_AMOUNT_HELP = "One currency a line, the amount in major units: usd 5,000.00. Empty: no cap."


def amounts_to_text(amounts: dict[str, int] | None) -> str:
    return "\n".join(
        f"{currency} {format_amount(amount, currency)}"
        for currency, amount in (amounts or {}).items()
    )


def _blank(value: Any) -> bool:
    return value is None or value == ""


class GuardrailsForm(forms.Form):
    max_amount_per_run = forms.CharField(
        label="Most money one run may move",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_AMOUNT_HELP,
    )
    max_amount_per_day = forms.CharField(
        label="Most money the workflow may move per day (UTC)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_AMOUNT_HELP,
    )
    max_runs_per_hour = forms.IntegerField(
        label="Most runs that move money per hour (UTC)", required=False
    )
    failure_rate = forms.DecimalField(
        label="Deactivate at this failure rate",
        required=False,
        help_text="Between 0 and 1: 0.5 is half of the runs failing. Empty: no circuit breaker.",
    )
    min_runs = forms.IntegerField(label="…of at least this many runs", required=False)
    window_minutes = forms.IntegerField(
        label="…that ended within this many minutes", required=False
    )

    BREAKER_FIELDS = ("failure_rate", "min_runs", "window_minutes")

    def __init__(self, data: Any = None, *, definition: dict) -> None:
        g = definition.get("guardrails") or {}
        b = definition.get("auto_deactivate") or {}
        initial = {
            "max_amount_per_run": amounts_to_text(g.get("max_amount_per_run")),
            "max_amount_per_day": amounts_to_text(g.get("max_amount_per_day")),
            "max_runs_per_hour": g.get("max_runs_per_hour"),
            **{key: b.get(key) for key in self.BREAKER_FIELDS},
        }
        super().__init__(data, initial=initial)
        self.definition = definition

    def _amounts(self, name: str) -> dict[str, int] | None:
        amounts: dict[str, int] = {}
        for line in (self.cleaned_data.get(name) or "").splitlines():
            if not line.strip():
                continue
            currency, _, text = line.strip().partition(" ")
            currency = currency.strip()
            try:
                amounts[currency] = parse_amount(text, currency) if text.strip() else 0
            except ValueError as exc:
                self.add_error(name, f"{currency}: {exc}")
        return amounts or None

    def clean(self) -> dict:
        data = super().clean()
        guardrails: dict[str, Any] = {}
        for name in AMOUNT_CAPS:
            amounts = self._amounts(name)
            if amounts:
                guardrails[name] = amounts
        if not _blank(data.get("max_runs_per_hour")):
            guardrails["max_runs_per_hour"] = data["max_runs_per_hour"]
        breaker = {k: data.get(k) for k in self.BREAKER_FIELDS if not _blank(data.get(k))}
        if "failure_rate" in breaker:
            breaker["failure_rate"] = float(breaker["failure_rate"])
        self.guardrails = guardrails or None
        self.auto_deactivate = breaker or None
        for field, message in guardrail_problems(self.settings()):
            # guardrails.max_amount_per_day.usd -> max_amount_per_day; auto_deactivate.x -> x
            parts = field.split(".")
            name = parts[1] if len(parts) > 1 else ""
            where = f"{parts[2]}: " if len(parts) > 2 else ""
            self.add_error(name if name in self.fields else None, f"{where}{message}")
        return data

    def settings(self) -> dict:
        out: dict[str, Any] = {}
        if self.guardrails is not None:
            out["guardrails"] = self.guardrails
        if self.auto_deactivate is not None:
            out["auto_deactivate"] = self.auto_deactivate
        return out

    def to_definition(self) -> dict:
        """The definition with these guardrails and breaker (and without, when left empty)."""
        definition = {
            k: v for k, v in self.definition.items() if k not in ("guardrails", "auto_deactivate")
        }
        return {**definition, **self.settings()}
