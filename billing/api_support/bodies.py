"""Request bodies and query strings, read the way Stripe's SDKs and curl examples send them:
JSON, or a form in Stripe's bracket notation (`metadata[plan]=pro`), both giving the same dict;
strings no database can store are refused naming the field."""

from __future__ import annotations

import re
import types
import typing
from typing import Any
from urllib.parse import parse_qsl

from django.http import HttpRequest
from ninja.parser import Parser
from pydantic import BaseModel

from backoffice.json_input import MAX_JSON_DEPTH, JsonTooDeep, loads_limited
from billing.api_support.errors import ApiError


def _unstorable_string_param(value: Any, path: str = "") -> str | None:
    """The param of the first string no database can store: a NUL character (PostgreSQL refuses
    it) or a lone surrogate (not UTF-8). None when every string is fine."""
    if isinstance(value, str):
        if "\x00" in value:
            return path or "body"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        items = ((f"{path}[{key}]" if path else str(key), key, item) for key, item in value.items())
        for child_path, key, item in items:
            bad = _unstorable_string_param(key, child_path) or _unstorable_string_param(
                item, child_path
            )
            if bad:
                return bad
    if isinstance(value, list):
        for index, item in enumerate(value):
            bad = _unstorable_string_param(item, f"{path}[{index}]")
            if bad:
                return bad
    return None


def _refuse_unstorable(data: Any) -> Any:
    param = _unstorable_string_param(data)
    if param:
        raise ApiError(
            400,
            "invalid_request_error",
            "parameter_invalid_string",
            f"Invalid string for {param}: NUL characters and lone surrogates are not allowed.",
            param=param,
        )
    return data


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# `metadata[plan]`, `items[0][price]`, `expand[]`: a name, then any number of `[segment]`s.
FORM_KEY = re.compile(r"^(?P<name>[^\[\]]+)(?P<segments>(?:\[[^\[\]]*\])*)$")
FORM_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
MAX_FORM_FIELDS = 1000
INDEXED_QUERY_KEY = re.compile(r"^(?P<name>[^\[\]]+)\[\d+\]$")


class FormData(dict):
    """A dict parsed from a form body. Its values are all strings (forms have no other type), so
    the request schemas turn them into the integers and booleans their fields ask for
    (`coerce_form_values`); a JSON body stays strict."""


def _bad_form(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", "parameter_invalid", message, param=param)


def parse_form(body: str) -> FormData:
    """`a=1&metadata[plan]=pro&items[0][price]=price_1&expand[]=customer` ->
    `{"a": "1", "metadata": {"plan": "pro"}, "items": {"0": {"price": "price_1"}},
    "expand": ["customer"]}`. Values stay strings, and `items[0]` stays a key until the schema
    says `items` is a list (`coerce_form_values`): `metadata[1]` is a key, not an index."""
    try:
        pairs = parse_qsl(
            body, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:
        raise _bad_form(f"A form body may have at most {MAX_FORM_FIELDS} fields.") from None
    data = FormData()
    for key, value in pairs:
        match = FORM_KEY.match(key)
        if match is None:
            raise _bad_form(f"Invalid form field name {key!r}: use name[key][0] notation.", key)
        path = [match["name"], *FORM_SEGMENT.findall(match["segments"])]
        if len(path) > MAX_JSON_DEPTH:
            raise _bad_form(f"Form field {key!r} nests too deeply.", key)
        node: dict = data
        for segment in path[:-1]:
            if segment == "":
                raise _bad_form(f"In {key!r}, `[]` may only end a field name.", key)
            child = node.setdefault(segment, FormData())
            if not isinstance(child, dict):
                raise _bad_form(f"Form field {key!r} is both a value and an object.", key)
            node = child
        last = path[-1]
        if last == "":  # `expand[]=a&expand[]=b`: append in order
            items = node.setdefault("__list__", [])
            items.append(value)
        elif isinstance(node.get(last), dict):
            raise _bad_form(f"Form field {key!r} is both a value and an object.", key)
        else:
            node[last] = value
    return _appended_lists(data)


def _appended_lists(value: Any) -> Any:
    """Replace each `{"__list__": [...]}` made by `name[]=` keys with its list."""
    if isinstance(value, dict):
        if "__list__" in value:
            if len(value) > 1:
                raise _bad_form("A form field uses both `[]` and `[key]`.")
            return value["__list__"]
        for key, item in value.items():
            value[key] = _appended_lists(item)
    return value


def _scalar_kind(annotation: Any) -> type | None:
    """int, bool or list when a field (maybe Optional, maybe Annotated) takes one, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = {_scalar_kind(arg) for arg in typing.get_args(annotation)} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    if origin is list or annotation is list:
        return list
    if annotation is bool or annotation is int:
        return annotation
    return None


def _indexed_list(value: dict) -> list | dict:
    """`{"0": a, "1": b}` (from `items[0]=a&items[1]=b`) as `[a, b]`; other dicts unchanged."""
    if value and all(key.isdigit() for key in value):
        return [value[key] for key in sorted(value, key=int)]
    return value


def coerce_form_values(model: type[BaseModel], data: Any) -> Any:
    """A form body's strings as the integers and booleans `model`'s fields take: Stripe's SDKs
    send `amount=2500` and `confirm=true`. Only form bodies (`FormData`) are touched, so JSON
    keeps refusing `"250"` for an amount. Nested schemas coerce their own fields."""
    if not isinstance(data, FormData):
        return data
    coerced = FormData(data)
    for name, field in model.model_fields.items():
        key = field.alias or name
        value = coerced.get(key)
        kind = _scalar_kind(field.annotation)
        if kind is list and isinstance(value, dict):
            coerced[key] = _indexed_list(value)
        if not isinstance(value, str):
            continue
        if kind is int and re.fullmatch(r"-?\d{1,18}", value):
            coerced[key] = int(value)
        elif kind is bool and value in ("true", "false"):
            coerced[key] = value == "true"
    return coerced


class BillflowParser(Parser):
    """One parser for every body: JSON, or a form in Stripe's bracket notation (what Stripe's
    SDKs and curl examples send), both giving the same dict. Strings we could not store are a
    400 naming the field instead of a database error; JSON nested too deeply is `invalid_json`.
    Query strings accept arrays as `expand[]=a` and as the SDKs' `expand[0]=a`."""

    def parse_body(self, request: HttpRequest) -> dict:
        if _is_form(request):
            return _refuse_unstorable(parse_form(_form_text(request)))
        try:
            data = loads_limited(request.body)
        except JsonTooDeep as exc:
            raise ApiError(
                400,
                "invalid_request_error",
                "invalid_json",
                f"The request body is not valid JSON: {exc}.",
            ) from None
        return _refuse_unstorable(data)

    def parse_querydict(self, data, list_fields: list[str], request: HttpRequest) -> dict:
        result: dict = {}
        for key in data.keys():
            indexed = INDEXED_QUERY_KEY.match(key)
            name = f"{indexed['name']}[]" if indexed else key
            if name in list_fields:
                result.setdefault(name, []).extend(data.getlist(key))
            else:
                result[name] = data[key]
        return _refuse_unstorable(result)


def _is_form(request: HttpRequest) -> bool:
    """A form body, by its Content-Type; `curl -d '{…}'` labels JSON as a form, so a body that
    starts like a JSON object is still read as JSON."""
    if request.content_type != FORM_CONTENT_TYPE:
        return False
    return not request.body.lstrip()[:1] == b"{"


def _form_text(request: HttpRequest) -> str:
    try:
        return request.body.decode(request.encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise _bad_form("The form body is not valid UTF-8.") from None
