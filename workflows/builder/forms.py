"""Builder forms: a step's form generated from its action's declared inputs, the condition
editor (shared by trigger conditions, condition steps and branch paths), the trigger form.

Forms turn posted text into the JSON form of a step; the engine's validation then judges the
whole definition, and its errors are put back next to the field they name (`attach_errors`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from django import forms
from django.conf import settings
from django.utils.html import conditional_escape

from backoffice.json_input import JsonTooDeep, loads_limited
from workflows.actions import registry
from workflows.actions.registry import Action, InputField
from workflows.builder import widgets
from workflows.definition import event_types, money
from workflows.definition.validation import MANUAL_INPUT_TYPES, validate_manual_input
from workflows.engine.conditions import OPERATORS, UNARY_OPERATORS, operator_words

REFERENCE = re.compile(r"{{.*?}}")
JSON_TYPES = {"object", "list", "rows"}
LIST_TYPES = {"email_list", "user_list"}


# --- values: JSON <-> text in an input ----------------------------------------------------------


def value_to_text(value: Any) -> str:
    """A typed condition value as the operator types it: `100`, `true`, `"100"` (a string
    that would read as a number keeps its quotes, so the round trip is lossless)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return json.dumps(value) if not isinstance(parsed, str) else value
    if isinstance(value, list) and all(
        isinstance(v, str) and "," not in v and value_to_text(v) == v for v in value
    ):
        return ", ".join(value)
    return json.dumps(value)


def text_to_value(text: str, *, as_list: bool = False) -> Any:
    text = text.strip()
    if as_list and not text.startswith("["):
        return [text_to_value(part) for part in text.split(",") if part.strip()]
    if REFERENCE.search(text):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def param_to_text(input_field: InputField, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    kind = input_field.type
    if kind == "metadata" and isinstance(value, dict):
        return "\n".join(f"{k} = {'' if v is None else v}" for k, v in value.items())
    if kind in LIST_TYPES and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def text_to_param(input_field: InputField, text: str) -> Any:
    """The param value for the posted text (None: leave the param out). Raises ValueError
    with a message for text that cannot be read (invalid JSON)."""
    text = text.strip()
    if text == "":
        return None
    kind = input_field.type
    if REFERENCE.fullmatch(text) or (kind in {"string", "text", "url"}):
        return text
    if kind == "metadata":
        if text.startswith("{"):
            return _json(text)
        pairs: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"Write each metadata entry as key = value (got '{line}')")
            pairs[key.strip()] = value.strip()
        return pairs
    if kind in LIST_TYPES:
        if text.startswith("["):
            return _json(text)
        return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind in {"integer", "number"}:
        try:
            number = float(text)
        except ValueError:
            return text  # validation names the type in the engine's words
        return int(number) if kind == "integer" and number.is_integer() else number
    if kind in JSON_TYPES:
        return _json(text)
    return text_to_value(text)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"This is not valid JSON: {exc.args[0]}") from None


# --- the condition editor ------------------------------------------------------------------------


@dataclass
class ConditionRow:
    field: str = ""
    op: str = "eq"
    value: str = ""
    errors: list[str] = dc_field(default_factory=list)
    # Where this leaf sits in the JSON tree ("all[1]"), for attaching validation errors.
    path: str = ""
    # The field's type in the event catalogue (None: unknown, the value is read as JSON).
    ftype: event_types.FieldType | None = None
    # Money rows: the currency the amount is typed in, and the stored minor units.
    currency: str = ""
    stored: Any = None
    # The stored value as it came from the tree (before it is shown as text).
    initial: Any = None

    @property
    def kind(self) -> str:
        return self.ftype.kind if self.ftype else ""

    @property
    def name(self) -> str:
        return self.field.rsplit(".", 1)[-1] or "this condition"

    @property
    def is_list(self) -> bool:
        return self.op in ("in", "not_in")

    @property
    def placeholder(self) -> str:
        kind = self.kind
        if kind == "money":
            return "1,000.00; 2,500.00" if self.is_list else "1,000.00"
        if kind in {"integer", "timestamp"}:
            return "1, 2, 3" if self.is_list else "1700000000" if kind == "timestamp" else "10"
        if kind == "number":
            return "1.5"
        if kind == "boolean":
            return "true or false"
        if kind == "enum" and self.ftype:
            return ", ".join(self.ftype.choices[:3]) + ("…" if len(self.ftype.choices) > 3 else "")
        return "value (lists: US, CA)"

    @property
    def hint(self) -> str:
        """What the value means, shown beside it: money with its stored minor units."""
        kind = self.kind
        if kind == "money":
            if isinstance(self.stored, int):
                shown = money.format_money(self.stored, self.currency)
                return f"{shown} · stored as {self.stored} (minor units)"
            if isinstance(self.stored, list):
                stored = ", ".join(str(v) for v in self.stored)
                return f"in {self.currency.upper()} · stored as {stored} (minor units)"
            return f"an amount in {self.currency.upper()}; stored in minor units"
        if kind == "timestamp":
            return "unix seconds (UTC)"
        if kind == "enum" and self.ftype and len(self.ftype.choices) <= 12:
            return "one of " + ", ".join(self.ftype.choices)
        return self.ftype.label if self.ftype and kind in {"integer", "number", "boolean"} else ""

    @property
    def options(self) -> tuple[str, ...]:
        """Suggested values (a choice list) for enum and boolean fields."""
        if self.kind == "boolean":
            return ("true", "false")
        return self.ftype.choices if self.ftype and self.kind == "enum" else ()


@dataclass
class ConditionGroup:
    match: str = "all"
    rows: list[ConditionRow] = dc_field(default_factory=list)


class ConditionEditor:
    """Field, operator and value rows in groups of all/any, under a top-level all/any.

    Group 0 holds the top level's own rows; groups 1.. are nested groups. Trees nested deeper
    than that are edited as JSON (`raw`), so no condition the JSON form allows is lost.
    Posted names: `<prefix>-match`, `<prefix>-groups`, `<prefix>-g<g>-match`,
    `<prefix>-g<g>-rows`, `<prefix>-g<g>-r<r>-field|op|value`, `<prefix>-raw`.
    """

    operators = [(op, operator_words(op)) for op in OPERATORS]
    unary = UNARY_OPERATORS
    currencies = event_types.CURRENCIES

    def __init__(self, prefix: str, tree: Any = None, *, data: Any = None, event: str = "") -> None:
        self.prefix = prefix
        # The trigger's event type: its catalogue types the values of `trigger.…` fields.
        self.event = event
        self.errors: list[str] = []
        # True when a row's value was refused (tree() marks it; nothing is saved then).
        self.refused = False
        self.raw = ""
        self.match = "all"
        self.groups: list[ConditionGroup] = []
        if data is not None:
            self._from_post(data)
        else:
            self._from_tree(tree)
        if not self.groups:
            self.groups = [ConditionGroup()]
        if not self.raw and not self.groups[0].rows:
            # An empty editor offers one blank row to fill in (blank rows are not saved).
            self.groups[0].rows.append(ConditionRow())
        self._type_rows(from_tree=data is None)

    def _rows(self) -> list[ConditionRow]:
        return [row for group in self.groups for row in group.rows]

    def _type_rows(self, *, from_tree: bool) -> None:
        """Give each row its field's type; show stored amounts as money."""
        # An amount is typed in the currency a `currency equals …` row of this editor names
        # (else USD): the condition itself stores only the integer.
        default = "usd"
        for row in self._rows():
            if row.field.endswith("currency") and row.op == "eq":
                value = row.initial if from_tree else row.value.strip().lower()
                if isinstance(value, str) and value.lower() in event_types.CURRENCIES:
                    default = value.lower()
        for row in self._rows():
            row.ftype = event_types.field_type(self.event, row.field) if self.event else None
            if row.kind != "money":
                continue
            row.currency = row.currency.lower() or default
            if row.currency not in event_types.CURRENCIES:
                row.currency = default
            if from_tree:
                row.stored = row.initial
                if _is_int(row.initial):
                    row.value = money.format_amount(row.initial, row.currency)
                elif isinstance(row.initial, list) and all(_is_int(v) for v in row.initial):
                    row.value = "; ".join(money.format_amount(v, row.currency) for v in row.initial)
            elif row.value.strip():
                try:
                    row.stored = self._money(row, row.value)
                except ValueError:
                    row.stored = None

    def field_types(self) -> str:
        """JSON of the trigger fields' types, for the value input to follow a typed field."""
        return _field_types_json(self.event)

    # JSON -> rows
    def _from_tree(self, tree: Any) -> None:
        if tree is None:
            return
        if not isinstance(tree, dict) or not any(k in tree for k in ("all", "any")):
            tree = {"all": [tree]}
        self.match = "any" if "any" in tree else "all"
        top = ConditionGroup(match=self.match)
        self.groups = [top]
        for child in tree.get(self.match) or []:
            if isinstance(child, dict) and any(k in child for k in ("all", "any")):
                match = "any" if "any" in child else "all"
                group = ConditionGroup(match=match)
                for leaf in child.get(match) or []:
                    if not isinstance(leaf, dict) or any(k in leaf for k in ("all", "any")):
                        self.raw = json.dumps(tree, indent=2)
                        return
                    group.rows.append(self._row(leaf))
                self.groups.append(group)
            elif isinstance(child, dict):
                top.rows.append(self._row(child))

    @staticmethod
    def _row(leaf: dict) -> ConditionRow:
        value = leaf.get("value")
        return ConditionRow(
            field=str(leaf.get("field", "")),
            op=str(leaf.get("op", "eq")),
            # A stored null reads "null" (an empty value is refused when saved).
            value=("null" if value is None else value_to_text(value)) if "value" in leaf else "",
            initial=value,
        )

    # POST -> rows
    def _from_post(self, data: Any) -> None:
        p = self.prefix
        self.raw = (data.get(f"{p}-raw") or "").strip()
        self.match = data.get(f"{p}-match") if data.get(f"{p}-match") in ("all", "any") else "all"
        count = _int(data.get(f"{p}-groups"), 1)
        for g in range(min(count, 20)):
            match = data.get(f"{p}-g{g}-match")
            group = ConditionGroup(match=match if match in ("all", "any") else "all")
            for r in range(min(_int(data.get(f"{p}-g{g}-rows"), 0), 50)):
                key = f"{p}-g{g}-r{r}"
                if data.get(f"{key}-remove"):
                    continue
                group.rows.append(
                    ConditionRow(
                        field=(data.get(f"{key}-field") or "").strip(),
                        op=data.get(f"{key}-op") or "eq",
                        value=data.get(f"{key}-value") or "",
                        currency=(data.get(f"{key}-currency") or "").strip(),
                    )
                )
            self.groups.append(group)
        if self.groups:
            self.groups[0].match = self.match

    def add_row(self, group: int) -> None:
        if 0 <= group < len(self.groups):
            self.groups[group].rows.append(ConditionRow())

    def add_group(self) -> None:
        self.groups.append(ConditionGroup(match="any", rows=[ConditionRow()]))

    def is_empty(self) -> bool:
        return not self.raw and not any(r.field for g in self.groups for r in g.rows)

    def tree(self) -> dict | None:
        """The JSON tree (None when there are no rows); records each row's JSON path."""
        if self.raw:
            try:
                return json.loads(self.raw)
            except ValueError as exc:
                self.errors.append(f"This is not valid JSON: {exc.args[0]}")
                return None
        children: list[dict] = []
        for row in self.groups[0].rows:
            if self._keeps(row):
                row.path = f"{self.match}[{len(children)}]"
                children.append(self._leaf(row))
        for group in self.groups[1:]:
            leaves = []
            for row in group.rows:
                if self._keeps(row):
                    row.path = f"{self.match}[{len(children)}].{group.match}[{len(leaves)}]"
                    leaves.append(self._leaf(row))
            if leaves:
                children.append({group.match: leaves})
        if not children:
            return None
        return {self.match: children}

    def _keeps(self, row: ConditionRow) -> bool:
        """A row with a field is a condition; one with only a value is refused (it used to be
        dropped without a word); a blank row is left out."""
        if row.field:
            return True
        if row.value.strip():
            row.errors.append(
                f"Choose a field for this condition (its value '{row.value.strip()[:60]}' "
                "compares with nothing)"
            )
            self.refused = True
        return False

    def _money(self, row: ConditionRow, text: str) -> Any:
        if row.is_list:
            return [
                part if REFERENCE.search(part) else money.parse_amount(part, row.currency)
                for part in (p.strip() for p in text.split(";"))
                if part
            ]
        return text.strip() if REFERENCE.search(text) else money.parse_amount(text, row.currency)

    def _typed_value(self, row: ConditionRow) -> Any:
        """The posted text as a value of the row's field type; ValueError naming the field."""
        text = row.value.strip()
        kind = row.kind
        if text == "":
            raise ValueError(
                f"{row.name} needs a value for '{operator_words(row.op)}' "
                "(or choose 'is set' / 'is not set')"
            )
        if text == "null" and row.op in ("eq", "ne"):
            return None
        if kind == "" or REFERENCE.fullmatch(text) or (row.is_list and text.startswith("[")):
            return text_to_value(text, as_list=row.is_list)
        if kind == "money":
            try:
                return self._money(row, text)
            except ValueError as exc:
                raise ValueError(f"{row.name}: {exc}") from None
        parts = [p.strip() for p in text.split(",") if p.strip()] if row.is_list else [text]
        values = [_typed_text(kind, part) for part in parts]
        if kind == "enum" and row.ftype:
            # "USD" for a currency is usd: Stripe's codes are lower case.
            choices = row.ftype.choices
            values = [v.lower() if v not in choices and v.lower() in choices else v for v in values]
        return values if row.is_list else values[0]

    def _leaf(self, row: ConditionRow) -> dict:
        leaf: dict[str, Any] = {"field": row.field, "op": row.op}
        if row.op in UNARY_OPERATORS:
            return leaf
        try:
            value = self._typed_value(row)
        except ValueError as exc:
            row.errors.append(str(exc))
            self.refused = True
            value = row.value
        else:
            # The checks the API runs on the same value (event_types.condition_value_problem).
            problem = event_types.condition_value_problem(
                row.name, row.ftype, row.op, value, example_currency=row.currency or "usd"
            )
            if problem:
                row.errors.append(problem)
                self.refused = True
            if row.kind == "money":
                row.stored = value
        leaf["value"] = value
        return leaf

    def attach(self, suffix: str, message: str) -> None:
        """Put a validation error (`suffix` is the field path below the tree) on its row."""
        for group in self.groups:
            for row in group.rows:
                if row.path and (suffix == row.path or suffix.startswith(row.path + ".")):
                    row.errors.append(message)
                    return
        self.errors.append(message)

    def rows_with_index(self) -> list[tuple[int, ConditionGroup, list[tuple[int, ConditionRow]]]]:
        return [(g, group, list(enumerate(group.rows))) for g, group in enumerate(self.groups)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _typed_text(kind: str, text: str) -> Any:
    """One typed value from its text ("10" for an integer field, "true" for a boolean one);
    text that does not read as the type is returned as it is, for the catalogue's check to
    refuse with the same words as the API."""
    if kind in {"integer", "timestamp"}:
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return text
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if re.fullmatch(r"-?\d+", text) else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind in {"text", "enum"}:
        # The field holds text: "100" stays text; quotes typed around it are taken off.
        if len(text) >= 2 and text[0] == text[-1] == '"':
            return text[1:-1]
        return text
    return text_to_value(text)


def _field_types_json(event: str) -> str:
    return _field_types_cached(event) if event_types.is_known(event) else "{}"


@functools.cache
def _field_types_cached(event: str) -> str:
    from workflows.builder.picker import available_fields  # the picker lists the trigger's fields

    definition = {"trigger": {"type": "event", "event": event}, "steps": []}
    types: dict[str, dict] = {}
    for field in available_fields(definition, step_id="", parent="", position=0, query=""):
        ftype = event_types.field_type(event, field.path)
        if ftype is not None and ftype.kind not in {"object", "list"}:
            types[field.path] = {"kind": ftype.kind, "choices": list(ftype.choices)}
    return json.dumps(types, sort_keys=True)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --- step forms ----------------------------------------------------------------------------


def _input_widget(input_field: InputField) -> forms.Field:
    attrs = {"class": "wf-input", "data-picker": "1"}
    common = {
        "required": False,
        "label": input_field.display_label,
        # Django's field templates render help_text with |safe: escape it where it is built.
        "help_text": conditional_escape(input_field.help),
    }
    if input_field.choices:
        choices = [("", "—")] + [(str(c), str(c)) for c in input_field.choices]
        return forms.ChoiceField(choices=choices, widget=forms.Select(attrs=attrs), **common)
    if input_field.type == "boolean":
        return forms.ChoiceField(
            choices=[("", "—"), ("true", "true"), ("false", "false")],
            widget=forms.Select(attrs=attrs),
            **common,
        )
    if input_field.type in {"text", "object", "list", "rows", "metadata"}:
        rows = 2 if input_field.type == "metadata" else 3
        placeholder = {
            "metadata": "key = value, one per line",
            "rows": '[{"label": "Amount", "value": "{{ … }}"}]',
            "object": '{"key": "value"}',
            "list": '["a", "b"]',
        }.get(input_field.type, "")
        return forms.CharField(
            widget=widgets.Textarea(attrs={**attrs, "rows": rows, "placeholder": placeholder}),
            **common,
        )
    placeholder = {"email_list": "a@example.com, b@example.com", "user_list": "mona, sam"}
    return forms.CharField(
        widget=widgets.TextInput(
            attrs={**attrs, "placeholder": placeholder.get(input_field.type, "")}
        ),
        **common,
    )


class StepForm(forms.Form):
    """The common part of every step's form: its name. Step-kind forms add their own fields."""

    name = forms.CharField(
        required=False,
        max_length=200,
        widget=widgets.TextInput,
        label="Name on the canvas",
        help_text="Optional; the canvas describes the step in plain words when empty.",
    )

    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        self.step = step
        # The workflow's trigger event: it types the values of conditions on its fields.
        self.event: str = kwargs.pop("event", "") or ""
        initial = {"name": step.get("name", "")}
        super().__init__(*args, initial=initial, **kwargs)
        self.step_errors: list[str] = []

    @property
    def picker_names(self) -> list[str]:
        """Fields that take dynamic values: a picker is drawn next to each."""
        return [name for name, f in self.fields.items() if f.widget.attrs.get("data-picker")]

    def params_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("p_")]

    def to_step(self) -> dict:
        """The step's JSON form from the cleaned data (call after is_valid)."""
        step = {"id": self.step["id"], "type": self.step["type"]}
        if self.cleaned_data.get("name"):
            step["name"] = self.cleaned_data["name"]
        return step

    def attach(self, suffix: str, message: str) -> None:
        """A validation error whose field path below the step is `suffix`."""
        match = re.match(r"params\.([A-Za-z0-9_]+)", suffix)
        if match and f"p_{match.group(1)}" in self.fields:
            self.add_error(f"p_{match.group(1)}", message)
        elif suffix in self.fields:
            self.add_error(suffix, message)
        else:
            self.step_errors.append(message)


def _add_param_fields(form: forms.Form, action: Action | None, params: dict) -> None:
    if action is None:
        return
    for input_field in action.inputs:
        form.fields[f"p_{input_field.name}"] = _input_widget(input_field)
        form.fields[f"p_{input_field.name}"].input_spec = input_field  # type: ignore[attr-defined]
        form.initial[f"p_{input_field.name}"] = param_to_text(
            input_field, params.get(input_field.name)
        )


def _clean_params(form: forms.Form, action: Action | None, keep: dict) -> dict:
    """Params from the posted fields; params the action does not declare are kept as they were
    (validation reports them), so no value is silently dropped."""
    if action is None:
        return dict(keep)
    declared = {f.name for f in action.inputs}
    params = {k: v for k, v in keep.items() if k not in declared}
    for input_field in action.inputs:
        text = form.cleaned_data.get(f"p_{input_field.name}") or ""
        try:
            value = text_to_param(input_field, text)
        except ValueError as exc:
            form.add_error(f"p_{input_field.name}", str(exc))
            continue
        if value is not None:
            params[input_field.name] = value
    return params


class ActionStepForm(StepForm):
    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        super().__init__(*args, step=step, **kwargs)
        self.action = registry.get(step.get("action", ""))
        _add_param_fields(self, self.action, step.get("params") or {})

    def to_step(self) -> dict:
        step = super().to_step()
        step["action"] = self.step.get("action", "")
        step["params"] = _clean_params(self, self.action, self.step.get("params") or {})
        return step


class ConditionStepForm(StepForm):
    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        super().__init__(*args, step=step, **kwargs)
        data = args[0] if args else kwargs.get("data")
        self.conditions = ConditionEditor(
            "cond", step.get("condition"), data=data, event=self.event
        )

    def to_step(self) -> dict:
        step = super().to_step()
        step["condition"] = self.conditions.tree() or {"all": []}
        return step

    def attach(self, suffix: str, message: str) -> None:
        if suffix.startswith("condition"):
            self.conditions.attach(suffix[len("condition.") :], message)
        else:
            super().attach(suffix, message)


class BranchStepForm(StepForm):
    """A branch: its paths, each with a name and a condition; the else path has none."""

    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        super().__init__(*args, step=step, **kwargs)
        data = args[0] if args else kwargs.get("data")
        self.paths: list[dict] = []
        stored = step.get("paths") or []
        if data is not None:
            count = min(_int(data.get("paths"), len(stored)), 20)
            for index in range(count):
                if data.get(f"path{index}-remove"):
                    continue
                self.paths.append(
                    {
                        "index": index,
                        "name": (data.get(f"path{index}-name") or "").strip(),
                        "is_else": bool(data.get(f"path{index}-else")),
                        "editor": ConditionEditor(f"path{index}", data=data, event=self.event),
                        "errors": [],
                        # Steps follow their path by its original position.
                        "steps": stored[index].get("steps", []) if index < len(stored) else [],
                    }
                )
        else:
            for index, path in enumerate(stored):
                self.paths.append(
                    {
                        "index": index,
                        "name": path.get("name", ""),
                        "is_else": path.get("when") is None,
                        "editor": ConditionEditor(
                            f"path{index}", path.get("when"), event=self.event
                        ),
                        "errors": [],
                        "steps": path.get("steps", []),
                    }
                )

    def add_path(self) -> None:
        index = max((p["index"] for p in self.paths), default=-1) + 1
        position = next((i for i, p in enumerate(self.paths) if p["is_else"]), len(self.paths))
        self.paths.insert(
            position,
            {
                "index": index,
                "name": f"Path {len(self.paths) + 1}",
                "is_else": False,
                "editor": ConditionEditor(f"path{index}", None, event=self.event),
                "errors": [],
                "steps": [],
            },
        )

    @property
    def path_slots(self) -> int:
        return max((p["index"] for p in self.paths), default=-1) + 1

    def to_step(self) -> dict:
        step = super().to_step()
        # Evaluation order as listed, with the else path moved last (the engine requires it).
        ordered = [p for p in self.paths if not p["is_else"]] + [
            p for p in self.paths if p["is_else"]
        ]
        self.paths = ordered
        step["paths"] = [
            {
                "name": p["name"],
                "when": None if p["is_else"] else (p["editor"].tree() or {"all": []}),
                "steps": p["steps"],
            }
            for p in ordered
        ]
        return step

    def attach(self, suffix: str, message: str) -> None:
        match = re.match(r"paths\[(\d+)\]\.?(.*)", suffix)
        if match and int(match.group(1)) < len(self.paths):
            path = self.paths[int(match.group(1))]
            rest = match.group(2)
            if rest.startswith("when."):
                path["editor"].attach(rest[len("when.") :], message)
            elif not rest.startswith("steps"):
                path["errors"].append(message)
            return
        super().attach(suffix, message)


class ForeachStepForm(StepForm):
    source = forms.ChoiceField(
        label="Items from",
        required=False,
        help_text="A list action pages through all its results; or give a list field.",
    )
    items = forms.CharField(
        required=False,
        label="List field",
        help_text="Exactly one {{ reference }} to a list, e.g. an earlier step's output.",
        widget=widgets.TextInput(attrs={"class": "wf-input", "data-picker": "1"}),
    )
    max_items = forms.IntegerField(
        required=False,
        min_value=1,
        label="At most this many items",
        help_text="The run fails instead of looping over more (leave empty for the default).",
    )

    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        super().__init__(*args, step=step, **kwargs)
        list_actions = [a for a in registry.all_actions() if a.is_list_source]
        self.fields["source"].choices = [("", "A list field (below)")] + [
            (a.key, a.label) for a in list_actions
        ]
        self.initial.update(
            source=step.get("action", ""),
            items=step.get("items") or "",
            max_items=step.get("max_items"),
        )
        data = args[0] if args else kwargs.get("data")
        chosen = (data.get("source") if data is not None else None) or step.get("action", "")
        self.action = registry.get(chosen) if chosen else None
        _add_param_fields(self, self.action, step.get("params") or {})

    def to_step(self) -> dict:
        step = super().to_step()
        if self.cleaned_data.get("source"):
            step["action"] = self.cleaned_data["source"]
            same = self.step.get("action") == step["action"]
            keep = (self.step.get("params") or {}) if same else {}
            step["params"] = _clean_params(self, self.action, keep)
        else:
            step["items"] = self.cleaned_data.get("items", "").strip()
        if self.cleaned_data.get("max_items"):
            step["max_items"] = self.cleaned_data["max_items"]
        step["steps"] = self.step.get("steps") or []
        return step


class DelayStepForm(StepForm):
    """Wait a number of seconds, or until a time: `until` when it is filled in."""

    seconds = forms.IntegerField(
        required=False,
        label="Wait this many seconds",
        help_text="E.g. 259200 for three days; the run holds no worker while it waits.",
    )
    until = forms.CharField(
        required=False,
        label="Or wait until",
        help_text="An ISO timestamp (2026-12-24T09:00:00Z) or a {{ reference }} to one; "
        "a time already past goes on at once. Leave empty to wait the seconds above.",
        widget=widgets.TextInput(attrs={"class": "wf-input", "data-picker": "1"}),
    )

    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        super().__init__(*args, step=step, **kwargs)
        self.initial.update(seconds=step.get("seconds"), until=step.get("until") or "")

    def to_step(self) -> dict:
        step = super().to_step()
        until = (self.cleaned_data.get("until") or "").strip()
        if until:
            step["until"] = until
        elif self.cleaned_data.get("seconds") is not None:
            step["seconds"] = self.cleaned_data["seconds"]
        return step


class ApprovalStepForm(StepForm):
    """Who approves, what they are told, how long they have and what a timeout decides."""

    approvers = forms.CharField(
        required=False,
        label="Approvers",
        help_text="User names or roles (Account Manager, Developer, Admin), separated by "
        "commas; any one of them decides.",
        widget=widgets.TextInput(attrs={"class": "wf-input"}),
    )
    message = forms.CharField(
        required=False,
        label="Message to the approvers",
        help_text="Sent by e-mail with a link to the run; may hold {{ references }}.",
        widget=widgets.TextInput(attrs={"class": "wf-input", "data-picker": "1"}),
    )
    timeout_hours = forms.FloatField(
        required=False,
        label="Hours to decide",
        help_text="More than 0, at most 720; fractions allowed (0.5 is half an hour).",
    )
    on_timeout = forms.ChoiceField(
        choices=[("reject", "Reject"), ("approve", "Approve")],
        label="When nobody decides in time",
    )

    def __init__(self, *args: Any, step: dict, **kwargs: Any) -> None:
        super().__init__(*args, step=step, **kwargs)
        self.initial.update(
            approvers=", ".join(step.get("approvers") or []),
            message=step.get("message") or "",
            timeout_hours=step.get("timeout_hours"),
            on_timeout=step.get("on_timeout") or "reject",
        )

    def to_step(self) -> dict:
        step = super().to_step()
        names = (self.cleaned_data.get("approvers") or "").split(",")
        step["approvers"] = [name.strip() for name in names if name.strip()]
        step["message"] = (self.cleaned_data.get("message") or "").strip()
        hours = self.cleaned_data.get("timeout_hours")
        if hours is not None:
            step["timeout_hours"] = int(hours) if float(hours).is_integer() else hours
        step["on_timeout"] = self.cleaned_data.get("on_timeout") or "reject"
        return step


STEP_FORMS: dict[str, type[StepForm]] = {
    "action": ActionStepForm,
    "condition": ConditionStepForm,
    "branch": BranchStepForm,
    "foreach": ForeachStepForm,
    "delay": DelayStepForm,
    "approval": ApprovalStepForm,
}


def step_form(step: dict, data: Any = None, *, event: str = "") -> StepForm:
    """The form of `step`; `event` is the workflow's trigger event ("" for others)."""
    form_class = STEP_FORMS[step["type"]]
    if data is not None:
        return form_class(data, step=step, event=event)
    return form_class(step=step, event=event)


# --- new steps -----------------------------------------------------------------------------


def new_step(kind: str, action_key: str = "") -> dict:
    """A fresh step of `kind`, its id a hint the service makes unique."""
    if kind == "action":
        noun, _, verb = action_key.rpartition(".")
        base = f"{verb}_{noun.rstrip('s')}" if noun else (verb or "action")
        return {"id": base, "type": "action", "action": action_key, "params": {}}
    if kind == "condition":
        return {"id": "check", "type": "condition", "condition": {"all": []}}
    if kind == "branch":
        return {
            "id": "branch",
            "type": "branch",
            "paths": [
                {"name": "Path 1", "when": {"all": []}, "steps": []},
                {"name": "Otherwise", "when": None, "steps": []},
            ],
        }
    if kind == "foreach":
        return {"id": "loop", "type": "foreach", "items": "", "steps": []}
    if kind == "delay":
        return {"id": "wait", "type": "delay", "seconds": 3600}
    if kind == "approval":
        return {
            "id": "approval",
            "type": "approval",
            "approvers": ["Account Manager"],
            "message": "",
            "timeout_hours": 48,
            "on_timeout": "reject",
        }
    raise ValueError(f"Unknown step type {kind!r}")


class AddStepForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[
            ("action", "Action"),
            ("condition", "Condition"),
            ("branch", "Branch"),
            ("foreach", "Loop"),
            ("delay", "Delay"),
            ("approval", "Approval"),
        ]
    )
    action = forms.ChoiceField(required=False)
    parent = forms.CharField(required=False)
    path = forms.CharField(required=False)
    position = forms.IntegerField(min_value=0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "—")] + [
            (a.key, f"{a.label} ({a.key})")
            for a in registry.all_actions()
            if a.group != SYSTEM_GROUP
        ]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("kind") == "action" and not data.get("action"):
            self.add_error("action", "Choose the action this step runs")
        return data

    @property
    def path_index(self) -> int | None:
        raw = self.cleaned_data.get("path")
        return int(raw) if raw not in (None, "") and str(raw).isdigit() else None


# Actions of this group are the fixed steps of system workflows; automations do not offer them.
SYSTEM_GROUP = "System"


def action_groups() -> list[tuple[str, list[Action]]]:
    groups: dict[str, list[Action]] = {}
    for action in registry.all_actions():
        # The system workflows' own steps (workflows/system/catalogue.py) are not offered.
        if action.group == SYSTEM_GROUP:
            continue
        groups.setdefault(action.group or "Other", []).append(action)
    return sorted(groups.items())


# --- trigger -----------------------------------------------------------------------------------


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else ""


class TriggerForm(forms.Form):
    workflow_name = forms.CharField(max_length=200, label="Workflow name")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    type = forms.ChoiceField(
        label="Starts",
        choices=[
            ("event", "When an event happens"),
            ("manual", "By hand (from the builder or the API)"),
            ("schedule", "On a schedule"),
        ],
    )
    event = forms.ChoiceField(
        required=False,
        label="Event",
        help_text="The workflow starts once for each event of this type.",
    )
    accounts = forms.ChoiceField(
        required=False,
        label="Accounts",
        choices=[
            ("platform", "Platform events"),
            ("connected", "Connected-account events"),
            ("all", "Both"),
        ],
    )
    serialize_by = forms.ChoiceField(
        required=False,
        label="Run one at a time per",
        choices=[("", "— no limit —"), ("customer", "Customer"), ("object", "Object")],
        help_text="Runs for the same customer (or object) wait for each other, in event order.",
    )
    serialize_max_wait_minutes = forms.CharField(
        required=False,
        label="A failed run holds the others back for (minutes)",
        help_text="Then the next run goes ahead unless the failed one is restarted. Empty: 60.",
    )
    cron = forms.CharField(
        required=False,
        label="Schedule (cron, UTC)",
        help_text="Five fields: minute hour day-of-month month day-of-week, like 0 9 * * 1.",
    )
    inputs = forms.CharField(
        required=False,
        label="Input fields",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "customer: string, required"}),
        help_text="One per line: name: type[, required]. Types: "
        + ", ".join(MANUAL_INPUT_TYPES)
        + ".",
    )

    def __init__(self, *args: Any, definition: dict, **kwargs: Any) -> None:
        trigger = definition.get("trigger") or {}
        initial = {
            "workflow_name": definition.get("name", ""),
            "description": definition.get("description", ""),
            "type": trigger.get("type", "event"),
            "event": trigger.get("event", ""),
            "accounts": trigger.get("accounts", "platform"),
            "serialize_by": trigger.get("serialize_by") or "",
            "serialize_max_wait_minutes": _number_text(trigger.get("serialize_max_wait_minutes")),
            "cron": trigger.get("cron", ""),
            "inputs": "\n".join(
                f"{f.get('name')}: {f.get('type', 'string')}"
                + (", required" if f.get("required") else "")
                for f in trigger.get("input") or []
                if isinstance(f, dict)
            ),
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.definition = definition
        self.fields["event"].choices = [("", "—")] + event_types.event_choices()
        data = args[0] if args else kwargs.get("data")
        # The event chosen in this post types the conditions' values (else the stored one).
        event = (data.get("event") if data is not None else None) or trigger.get("event") or ""
        if (data.get("type") if data is not None else trigger.get("type")) not in (None, "event"):
            event = ""
        self.conditions = ConditionEditor(
            "trig", trigger.get("conditions"), data=data, event=str(event)
        )
        self.step_errors: list[str] = []
        # Extra keys of stored input fields (label, help, choices) survive an edit.
        self._stored_inputs = {
            f.get("name"): f for f in trigger.get("input") or [] if isinstance(f, dict)
        }

    def _inputs(self, text: str) -> list[dict]:
        fields: list[dict] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            name, _, rest = line.partition(":")
            parts = [p.strip() for p in rest.split(",") if p.strip()]
            spec = dict(self._stored_inputs.get(name.strip(), {}))
            spec.update(
                name=name.strip(),
                type=parts[0] if parts else "string",
                required="required" in parts[1:],
            )
            fields.append(spec)
        return fields

    def clean_serialize_max_wait_minutes(self) -> str:
        text = (self.cleaned_data.get("serialize_max_wait_minutes") or "").strip()
        if text and self._max_wait(text) is None:
            raise forms.ValidationError("Enter a number of minutes, like 60 or 0.5.")
        return text

    @staticmethod
    def _max_wait(text: str) -> int | float | None:
        # The validator says whether the number is allowed (positive); this only reads it.
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else number

    def to_definition(self) -> dict:
        d = self.cleaned_data
        definition = dict(self.definition)
        definition["name"] = d["workflow_name"]
        if d.get("description"):
            definition["description"] = d["description"]
        else:
            definition.pop("description", None)
        trigger: dict[str, Any] = {"type": d["type"]}
        if d["type"] == "event":
            trigger["event"] = d.get("event") or ""
            trigger["accounts"] = d.get("accounts") or "platform"
            tree = self.conditions.tree()
            if tree is not None:
                trigger["conditions"] = tree
            if d.get("serialize_by"):
                trigger["serialize_by"] = d["serialize_by"]
            wait = self._max_wait(d.get("serialize_max_wait_minutes") or "")
            if wait is not None:
                trigger["serialize_max_wait_minutes"] = wait
        elif d["type"] == "manual":
            trigger["input"] = self._inputs(d.get("inputs") or "")
        else:
            trigger["cron"] = (d.get("cron") or "").strip()
        definition["trigger"] = trigger
        return definition

    def attach(self, suffix: str, message: str) -> None:
        """`suffix` is a field path from the definition's root (trigger.… or name)."""
        mapping = {
            "name": "workflow_name",
            "trigger.event": "event",
            "trigger.accounts": "accounts",
            "trigger.serialize_by": "serialize_by",
            "trigger.serialize_max_wait_minutes": "serialize_max_wait_minutes",
            "trigger.cron": "cron",
            "trigger.type": "type",
        }
        if suffix in mapping:
            self.add_error(mapping[suffix], message)
        elif suffix.startswith("trigger.conditions"):
            self.conditions.attach(suffix[len("trigger.conditions.") :], message)
        elif suffix.startswith("trigger.input"):
            self.add_error("inputs", message)
        else:
            self.step_errors.append(message)


class WorkflowCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    event = forms.ChoiceField(
        required=False,
        label="Starts on event",
        help_text="Leave empty for a workflow started by hand.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event"].choices = [("", "— started by hand —")] + event_types.event_choices()

    def definition(self) -> dict:
        event = self.cleaned_data.get("event")
        trigger: dict[str, Any] = (
            {"type": "event", "event": event, "accounts": "platform"}
            if event
            else {"type": "manual", "input": []}
        )
        return {"name": self.cleaned_data["name"], "trigger": trigger, "steps": []}


def import_size_limit() -> int:
    """The import's limit: the request body limit every other write has (1 MiB by default)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def import_too_large_message(what: str) -> str:
    limit = import_size_limit()
    shown = f"{limit // 1_048_576} MiB" if limit % 1_048_576 == 0 else f"{limit} bytes"
    return f"{what} is too large: a definition to import is at most {shown} ({limit} bytes)"


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="JSON file")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))

    def clean(self) -> dict:
        data = super().clean()
        raw = ""
        field = "file"
        if data.get("file"):
            # Django streams an upload of any size to disk; the limit is ours to check.
            if data["file"].size > import_size_limit():
                self.add_error("file", import_too_large_message("The JSON file"))
                return data
            raw = data["file"].read().decode("utf-8", errors="replace")
        elif data.get("text"):
            field, raw = "text", data["text"]
            # Pasted text above the limit is refused by Django before the form (see the view);
            # counted here too, so the form holds the rule whatever the settings.
            if len(raw.encode("utf-8", errors="replace")) > import_size_limit():
                self.add_error("text", import_too_large_message("The pasted text"))
                return data
        if not raw.strip():
            raise forms.ValidationError("Choose a JSON file or paste a definition")
        try:
            data["definition"] = loads_limited(raw)
        except JsonTooDeep as exc:
            self.add_error(field, f"This is not valid JSON: {exc}")
        except ValueError as exc:
            self.add_error(field, f"This is not valid JSON: {exc.args[0]}")
        return data


class ManualInputForm(forms.Form):
    """A form built from a manual workflow's declared input fields.

    The boxes hold text; `clean` reads each as its declared type and hands the values to the
    one checker of manual input (`validate_manual_input`, which the API also uses), putting
    each of its errors under the field it names. `values` is the typed input once valid.
    """

    def __init__(self, declared: list[dict], data: Any = None) -> None:
        super().__init__(data)
        self.declared = declared
        self.values: dict[str, Any] = {}
        for spec in declared:
            kind = spec.get("type", "string")
            common: dict[str, Any] = {
                # The checker judges "required" (in the API's words); the browser still
                # marks the box.
                "required": False,
                "label": spec.get("label") or spec["name"].replace("_", " ").capitalize(),
                # A manual input's help is user text (Account Managers, API keys) and Django's
                # field templates render help_text with |safe: escape it here, for every form.
                "help_text": conditional_escape(str(spec.get("help") or "")),
            }
            if spec.get("choices"):
                choices = [("", "—")] + [(json.dumps(c), str(c)) for c in spec["choices"]]
                field: forms.Field = forms.ChoiceField(choices=choices, **common)
            elif kind == "boolean":
                field = forms.ChoiceField(
                    choices=[("", "—"), ("true", "true"), ("false", "false")], **common
                )
            elif kind in {"object", "list"}:
                field = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)
            else:
                field = forms.CharField(**common)
            if spec.get("required"):
                field.widget.attrs["required"] = True
            self.fields[spec["name"]] = field

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values: dict[str, Any] = {}
        for spec in self.declared:
            name, kind = spec["name"], spec.get("type", "string")
            text = (cleaned.get(name) or "").strip()
            if text == "":
                continue  # not given: the checker says whether that is allowed
            if spec.get("choices") or kind in {"integer", "number", "boolean", "object", "list"}:
                try:
                    values[name] = json.loads(text)
                except ValueError:
                    # Not JSON, so text: the checker names the type it should have been.
                    values[name] = text
            else:
                values[name] = text
        for error in validate_manual_input(self.declared, values):
            name = error.field.removeprefix("input.")
            self.add_error(name if name in self.fields else None, error.message)
        self.values = values
        return cleaned
