"""The typed workflow definition: pydantic models of the JSON form (docs/workflows.md).

The models say what a definition looks like (its shape): the keys each object takes, the
types of their values, step ids, the step and trigger types, condition trees. What a
definition means (known event types and actions, references that resolve, scopes, limits,
billing ids) is checked by `workflows.definition.validation`, by hand, so its messages can explain.

The JSON form does not change: `Definition.model_validate(d)` then `to_json()` gives back
`d` exactly (keys that were left out stay out), so the model can stand in for the dict
anywhere. The models are strict (no coercion: `"1"` is not an integer, `1` is not `true`)
and refuse unknown keys, as the import always did.

A draft may be incomplete (an action step without an action yet, a loop without items), so
fields the builder fills in later are optional here; publishing checks they are there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    create_model,
)

from workflows.engine.conditions import OPERATORS

STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
STEP_TYPES = ("action", "condition", "branch", "foreach", "delay", "approval")
TRIGGER_TYPES = ("event", "manual", "schedule")
ACCOUNT_SCOPES = ("platform", "connected", "all")
SERIALIZE_BY = ("customer", "object")
MANUAL_INPUT_TYPES = ("string", "integer", "number", "boolean", "object", "list")
NAME_MAX_LENGTH = 200
# Like the billing API's descriptions: a description is a few sentences, not a document.
DESCRIPTION_MAX_LENGTH = 5_000

StepId = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN)]
Operator = Literal[OPERATORS]  # type: ignore[valid-type]  # the engine's fixed table


def _no_default(schema: dict) -> None:
    # An optional key whose absence means something of its own (a leaf without a value, a loop
    # capped by the settings): the schema shows no default rather than a made-up one.
    schema.pop("default", None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def to_json(self) -> dict:
        """The JSON form, exactly as it came in: keys left out stay out."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- conditions ------------------------------------------------------------------------------


class ConditionLeaf(_Model):
    """`{"field", "op", "value"}`: `value` is left out for `exists`, `not_exists`, `changed`."""

    field: str = Field(description="A path like a dynamic field's, without braces")
    op: Operator
    value: Any = Field(
        None,
        description="Any JSON value, or a {{ reference }}; left out for unary operators",
        json_schema_extra=_no_default,
    )


class AllOf(_Model):
    all: list[ConditionTree] = Field(description="True when every condition is (empty: true)")


class AnyOf(_Model):
    any: list[ConditionTree] = Field(description="True when one condition is (empty: false)")


def _condition_kind(node: Any) -> str | None:
    if isinstance(node, dict):
        return "all" if "all" in node else "any" if "any" in node else "leaf"
    if isinstance(node, BaseModel):
        return "all" if isinstance(node, AllOf) else "any" if isinstance(node, AnyOf) else "leaf"
    return None


ConditionTree = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[ConditionLeaf, Tag("leaf")],
    Discriminator(_condition_kind),
]


# --- triggers --------------------------------------------------------------------------------


class InputField(_Model):
    """One field of a manual trigger's input form."""

    name: Annotated[str, StringConstraints(pattern=INPUT_NAME_PATTERN)]
    type: Literal[MANUAL_INPUT_TYPES] = "string"  # type: ignore[valid-type]
    required: bool = False
    label: str = ""
    help: str = ""
    choices: list[Any] = Field(default_factory=list)


class EventTrigger(_Model):
    type: Literal["event"]
    event: str = Field(description="A known event type, like customer.created")
    accounts: Literal[ACCOUNT_SCOPES] = "platform"  # type: ignore[valid-type]
    conditions: ConditionTree | None = None
    # Runs sharing the key execute one at a time in event order (docs/workflows.md, "One at a
    # time per customer"); a failed run holds its key at most this long.
    serialize_by: Literal[SERIALIZE_BY] | None = Field(  # type: ignore[valid-type]
        None, description="customer or object", json_schema_extra=_no_default
    )
    serialize_max_wait_minutes: float | int | None = Field(
        None, description="How long a failed run holds its key", json_schema_extra=_no_default
    )


class ManualTrigger(_Model):
    type: Literal["manual"]
    input: list[InputField] = Field(default_factory=list)


class ScheduleTrigger(_Model):
    type: Literal["schedule"]
    cron: str = Field(description="Five cron fields, like '0 9 * * 1'")


Trigger = Annotated[EventTrigger | ManualTrigger | ScheduleTrigger, Field(discriminator="type")]


# --- steps -----------------------------------------------------------------------------------


class _Step(_Model):
    # The fields in the JSON form's order: id, type, name, then the type's own.
    id: StepId = Field(description="Unique in the whole workflow, nested steps included")
    type: str
    name: str = ""


class ActionStep(_Step):
    type: Literal["action"]
    action: str = Field("", description="A registered action key, like customers.update")
    params: dict[str, Any] = Field(default_factory=dict, description="The action's inputs")


class ConditionStep(_Step):
    type: Literal["condition"]
    condition: ConditionTree | None = Field(None, description="False stops the run")


class BranchPath(_Model):
    name: str = ""
    when: ConditionTree | None = Field(None, description="null: the else path (last)")
    steps: list[Step] = Field(default_factory=list)


class BranchStep(_Step):
    type: Literal["branch"]
    paths: list[BranchPath] = Field(
        min_length=1, description="Tried in order; the first whose `when` holds runs"
    )


class ForeachStep(_Step):
    type: Literal["foreach"]
    items: str = Field("", description="Exactly one {{ reference }} to a list")
    action: str = Field("", description="Or a list action, paged through by the engine")
    params: dict[str, Any] = Field(default_factory=dict)
    max_items: int = Field(
        None,  # type: ignore[assignment]  # left out: the configured FOREACH_MAX_ITEMS
        ge=1,
        description="1 to the configured FOREACH_MAX_ITEMS (the default)",
        json_schema_extra=_no_default,
    )
    steps: list[Step] = Field(default_factory=list, description="Run once per item")


class DelayStep(_Step):
    """Wait, holding no worker: `seconds` from when the step is reached, or `until` a time."""

    type: Literal["delay"]
    seconds: int = Field(
        None,  # type: ignore[assignment]  # left out: the step waits `until` instead
        description="Seconds to wait (a positive whole number); or give `until`",
        json_schema_extra=_no_default,
    )
    until: str = Field(
        None,  # type: ignore[assignment]  # left out: the step waits `seconds` instead
        description="An ISO timestamp or a {{ reference }} to one; a time past resumes at once",
        json_schema_extra=_no_default,
    )


class ApprovalStep(_Step):
    """Wait, holding no worker, until one of the approvers approves or rejects, or the time
    runs out (`on_timeout` is applied then)."""

    type: Literal["approval"]
    approvers: list[str] = Field(
        default_factory=list,
        description="Back-office user names or role names (Account Manager, Developer, Admin)",
    )
    message: str = Field("", description="Sent to the approvers; may hold {{ references }}")
    timeout_hours: int | float = Field(
        None,  # type: ignore[assignment]  # a draft may leave it out; publishing needs it
        description="Hours to wait for a decision (more than 0, at most 720; fractions allowed)",
        json_schema_extra=_no_default,
    )
    on_timeout: str = Field(
        None,  # type: ignore[assignment]  # a draft may leave it out; publishing needs it
        description="What a timeout decides: reject or approve",
        json_schema_extra=_no_default,
    )


Step = Annotated[
    ActionStep | ConditionStep | BranchStep | ForeachStep | DelayStep | ApprovalStep,
    Field(discriminator="type"),
]


# --- the definition --------------------------------------------------------------------------


class Definition(_Model):
    """A workflow's JSON form."""

    model_config = ConfigDict(title="WorkflowDefinition")

    name: Annotated[str, StringConstraints(pattern=r"\S", max_length=NAME_MAX_LENGTH)]
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH)] = ""
    trigger: Trigger
    steps: list[Step]
    # Workflow-wide settings, checked in detail by workflows.definition.guardrails (the
    # validator names the field): shape here is only "an object", so a draft keeps them.
    guardrails: dict[str, Any] | None = Field(
        None,
        description=(
            "Money guardrails: max_amount_per_run and max_amount_per_day ({currency: amount "
            "in the minor unit}), max_runs_per_hour (runs that move money)"
        ),
        json_schema_extra=_no_default,
    )
    auto_deactivate: dict[str, Any] | None = Field(
        None,
        description=(
            "Circuit breaker: failure_rate (0 < x <= 1), min_runs, window_minutes; the workflow "
            "is deactivated when its failure rate over the window reaches the rate"
        ),
        json_schema_extra=_no_default,
    )


for _model in (AllOf, AnyOf, BranchPath, ForeachStep, Definition):
    _model.model_rebuild()


def parse(data: Any) -> Definition:
    """The typed definition of a JSON form; raises pydantic's ValidationError."""
    return Definition.model_validate(data)


def definition_schema() -> dict:
    """The JSON Schema of the JSON form (served at `GET /api/v1/workflows/schema`)."""
    return Definition.model_json_schema()


# --- the same models, with the nesting written out (for OpenAPI documents) --------------------

# Steps nested deeper than this are shown as plain objects in the written-out schema; the
# validator still checks them (the step limit keeps real workflows far shallower).
WRITTEN_OUT_STEP_LEVELS = 4
# The validator refuses conditions nested deeper (validation.MAX_CONDITION_DEPTH).
WRITTEN_OUT_CONDITION_LEVELS = 5


def _condition_levels(levels: int) -> list[Any]:
    """Condition tree types by depth: index k is the tree allowed k groups deep."""
    trees: list[Any] = [None] * (levels + 1)
    trees[levels] = ConditionLeaf  # a group this deep could hold nothing valid
    for level in range(levels - 1, -1, -1):
        inner = trees[level + 1]
        all_of = create_model(
            f"AllOfL{level}",
            __base__=AllOf,
            all=(list[inner], Field(description=AllOf.model_fields["all"].description)),
        )
        any_of = create_model(
            f"AnyOfL{level}",
            __base__=AnyOf,
            any=(list[inner], Field(description=AnyOf.model_fields["any"].description)),
        )
        trees[level] = Annotated[
            Annotated[all_of, Tag("all")]
            | Annotated[any_of, Tag("any")]
            | Annotated[ConditionLeaf, Tag("leaf")],
            Discriminator(_condition_kind),
        ]
    return trees


def written_out_models() -> type[BaseModel]:
    """`Definition` and its parts with the recursion (steps in branches and loops, conditions
    in groups) written out level by level, for tools that cannot follow a recursive schema
    (OpenAPI test generators build their strategies by recursing into it).

    The model takes what `Definition` takes (deeper steps as plain objects) and gives the same
    JSON back; API schemas extend it for their OpenAPI document.
    """
    tree = _condition_levels(WRITTEN_OUT_CONDITION_LEVELS)[0]
    condition_step = create_model(
        "ConditionStepDoc", __base__=ConditionStep, condition=(tree | None, Field(None))
    )
    event_trigger = create_model(
        "EventTriggerDoc", __base__=EventTrigger, conditions=(tree | None, Field(None))
    )
    step: Any = dict[str, Any]  # below the written-out levels: any object
    for level in range(WRITTEN_OUT_STEP_LEVELS - 1, -1, -1):
        inner = step
        path = create_model(
            f"BranchPathL{level}",
            __base__=BranchPath,
            when=(tree | None, Field(None, description="null: the else path (last)")),
            steps=(list[inner], Field(default_factory=list)),
        )
        branch = create_model(
            f"BranchStepL{level}",
            __base__=BranchStep,
            paths=(list[path], Field(min_length=1)),
        )
        loop = create_model(
            f"ForeachStepL{level}",
            __base__=ForeachStep,
            steps=(list[inner], Field(default_factory=list, description="Run once per item")),
        )
        step = Annotated[ActionStep | condition_step | branch | loop, Field(discriminator="type")]
    trigger = Annotated[
        event_trigger | ManualTrigger | ScheduleTrigger, Field(discriminator="type")
    ]
    definition = create_model(
        "WorkflowDefinitionDoc",
        __base__=Definition,
        trigger=(trigger, ...),
        steps=(list[step], ...),
    )
    return definition
