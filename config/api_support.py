"""Plumbing every API router shares: key auth with a role check, Stripe-style errors,
idempotent POSTs and list pagination. Billing and workflow routers both use it.

Requests are accepted the way Stripe's SDKs and curl examples send them: bodies as JSON or
form-encoded in Stripe's bracket notation, the key as a Bearer token or as the Basic-auth user
name, and unknown query parameters refused like unknown body fields.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Annotated, Any
from urllib.parse import parse_qsl

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.params.models import QueryModel
from ninja.parser import Parser
from ninja.security import HttpBearer
from pydantic import BaseModel

from backoffice.json_input import MAX_JSON_DEPTH, JsonTooDeep, loads_limited
from backoffice.roles import ROLE_BY_KEY_ROLE, role_has
from billing.api_keys import api_key_authenticate
from billing.errors import BillingError, IdempotencyError, ProviderError
from billing.events import event_request
from billing.models import ApiKey, IdempotencyRecord, new_id
from billing.provider import use_up_fault_after_rollback

IDEMPOTENCY_HEADER = "Idempotency-Key"
# API keys live beside the services' own keys in one table; the prefix keeps them apart.
IDEMPOTENCY_PREFIX = "api:"
MAX_IDEMPOTENCY_KEY = 255 - len(IDEMPOTENCY_PREFIX)
DEFAULT_LIMIT = 10
MAX_LIMIT = 100

logger = logging.getLogger("billflow.api")

# The range `datetime` can hold (1970-01-01 .. 9999-12-31 23:59:59 UTC). A `created[gte]` or
# `created[lte]` outside it is a 400 naming the param, checked by the schema, so `from_unix`
# never meets a timestamp `datetime.fromtimestamp` would raise on.
MAX_UNIX_TIME = 253_402_300_799
UnixTime = Annotated[
    int, Field(ge=0, le=MAX_UNIX_TIME, description="Unix time (seconds), 0 to 253402300799")
]


def from_unix(value: int) -> datetime:
    """A `UnixTime` filter value as an aware datetime (every list's `created[...]` filters)."""
    return datetime.fromtimestamp(value, UTC)


class CreatedFilters(Schema):
    """Stripe's `created` filters, which every list takes (billing, workflows, runs, webhook
    endpoints): `created` (that second), `created[gt]`, `[gte]`, `[lt]`, `[lte]`."""

    created: UnixTime | None = Field(None, description="Created at exactly this Unix time")
    created_gt: UnixTime | None = Field(None, alias="created[gt]")
    created_gte: UnixTime | None = Field(None, alias="created[gte]")
    created_lt: UnixTime | None = Field(None, alias="created[lt]")
    created_lte: UnixTime | None = Field(None, alias="created[lte]")


def filter_created(queryset: QuerySet, filters: CreatedFilters) -> QuerySet:
    """`queryset` narrowed by the `created` filters the request sent."""
    if filters.created is not None:
        second = from_unix(filters.created)
        # Its last microsecond, not the next second: the largest time has no next second.
        queryset = queryset.filter(
            created__gte=second, created__lte=second + timedelta(microseconds=999_999)
        )
    for value, lookup in (
        (filters.created_gt, "created__gt"),
        (filters.created_gte, "created__gte"),
        (filters.created_lt, "created__lt"),
        (filters.created_lte, "created__lte"),
    ):
        if value is not None:
            queryset = queryset.filter(**{lookup: from_unix(value)})
    return queryset


class ApiError(Exception):
    """An error the API itself raises (auth, roles, routing); billing errors come from services."""

    def __init__(
        self, status: int, type: str, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.param = param


def error_body(type: str, code: str, message: str, param: str | None = None) -> dict:
    return {"error": {"type": type, "code": code, "message": message, "param": param or None}}


def error_response(
    status: int, type: str, code: str, message: str, param: str | None = None
) -> JsonResponse:
    return JsonResponse(error_body(type, code, message, param), status=status)


def billing_error_response(exc: BillingError) -> JsonResponse:
    body = exc.to_dict()
    body["param"] = body.get("param") or None
    return JsonResponse({"error": body}, status=exc.http_status)


# --- the API class ------------------------------------------------------------------------------

IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
    "description": "Replaying a key returns the first response (with `Idempotent-Replayed: true`) "
    "and changes nothing; the same key with another body or path is a 400 idempotency_error.",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "param"],
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}


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


# --- request bodies: JSON, or form-encoded in Stripe's bracket notation -------------------------

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


class BillflowAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document also describes the idempotency header and the error
    envelope, which live in our plumbing rather than in each operation's signature."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> dict:
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error = {
            "description": 'Error: `{"error": {"type", "code", "message", "param"}}`',
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        # The key is also accepted as the Basic-auth user name (`curl -u sk_…:`): either scheme.
        schemes = schema["components"].setdefault("securitySchemes", {})
        if "KeyAuth" in schemes:
            schemes["KeyBasicAuth"] = {
                "type": "http",
                "scheme": "basic",
                "description": "The secret key as the user name, the password empty.",
            }
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if {"KeyAuth": []} in operation.get("security", []):
                    operation["security"].append({"KeyBasicAuth": []})
                responses = operation.setdefault("responses", {})
                for status, when in _error_statuses(path, operation):
                    responses.setdefault(status, {**error, "description": when})
                responses.setdefault("default", error)
                if method in ("post", "delete"):
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
        return schema


def _error_statuses(path: str, operation: dict) -> list[tuple[int, str]]:
    """The error answers an operation can give, each in the error envelope: every one refuses
    a bad or unknown parameter, a keyed one a missing key or a role without the right, and one
    with an id in its path an object the key's environment does not have."""
    statuses = [(400, "A parameter is missing, invalid or unknown (`param` names it).")]
    if operation.get("security"):
        statuses.append((401, "No valid API key."))
        statuses.append((403, "The key's role may not do this."))
    if "{" in path:
        statuses.append((404, "No such object in the key's environment."))
    return statuses


# --- authentication and roles ------------------------------------------------------------------


class KeyAuth(HttpBearer):
    """`Authorization: Bearer sk_…`, or the key as the Basic-auth user name (`curl -u sk_…:`,
    as in Stripe's docs), and the key's role must have `capability`.

    On success `request.auth` is the ApiKey and `request.environment` its environment, which
    scopes every lookup. The role check runs here, before the body is validated, so a key
    without the right gets 403 whatever it sends; unknown query parameters are refused next
    (`refuse_unknown_query_params`), so a wrong key is a 401 whatever the query says.
    """

    openapi_scheme = "bearer"

    def __init__(self, capability: str) -> None:
        super().__init__()
        self.capability = capability

    def __call__(self, request: HttpRequest) -> ApiKey | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.authenticate(request, decoded.partition(":")[0])
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = api_key_authenticate(token)
        if key is None:
            return None
        request.environment = key.environment
        if not role_has(ROLE_BY_KEY_ROLE.get(key.role, 0), self.capability):
            raise ApiError(
                403,
                "permission_error",
                "insufficient_permissions",
                f"This API key (role {key.role}) may not do this; it needs {self.capability}.",
            )
        _refuse_unknown_query(request)
        return key


# --- unknown query parameters ------------------------------------------------------------------


def _query_names(operation: Any) -> frozenset[str]:
    """The query parameters an operation declares, by the names clients send."""
    names: set[str] = set()
    for model in operation.models:
        if not issubclass(model, QueryModel):
            continue
        flatten_map = getattr(model, "__ninja_flatten_map__", None)
        if flatten_map:
            names.update(flatten_map)
        else:
            names.update(field.alias or name for name, field in model.model_fields.items())
    return frozenset(names)


def refuse_unknown_query_params(run: Callable) -> Callable:
    """An operation decorator (`api.add_decorator(…, mode="view")`): the request remembers
    which query parameters its operation declares, and `KeyAuth` refuses any other after the
    key is checked, as a 400 naming it, the way unknown body fields are refused."""
    allowed = _query_names(run.__self__)

    @wraps(run)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.billflow_query_names = allowed
        return run(request, *args, **kwargs)

    return checked


def _refuse_unknown_query(request: HttpRequest) -> None:
    allowed = getattr(request, "billflow_query_names", None)
    if allowed is None:
        return
    for key in request.GET:
        indexed = INDEXED_QUERY_KEY.match(key)
        name = f"{indexed['name']}[]" if indexed else key
        if name not in allowed:
            raise ApiError(
                400,
                "invalid_request_error",
                "parameter_unknown",
                f"Received unknown parameter: {key}.",
                param=key,
            )


# --- error rendering ---------------------------------------------------------------------------


def _param_from_loc(loc: tuple | list) -> str | None:
    """ninja's error location -> Stripe's param name: ("body", "payload", "items", 0, "price")
    -> "items[0][price]"."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[2:]  # the source and the name of the schema argument
    elif parts and parts[0] in ("query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    if not parts:
        return None
    head, *rest = (str(p) for p in parts)
    return head + "".join(f"[{p}]" for p in rest)


def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    param = _param_from_loc(first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "missing":
        if param is None:
            return error_response(
                400, "invalid_request_error", "parameter_missing", "A JSON object body is required."
            )
        code, message = "parameter_missing", f"Missing required param: {param}."
    elif kind == "extra_forbidden":
        code, message = "parameter_unknown", f"Received unknown parameter: {param}."
    elif kind.startswith("int_"):
        code, message = "parameter_invalid_integer", f"Invalid integer for {param}: {first['msg']}."
    else:
        code, message = (
            "parameter_invalid",
            f"Invalid {param or 'request body'}: {first.get('msg')}.",
        )
    return error_response(400, "invalid_request_error", code, message, param)


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc, AuthenticationError):
        return error_response(
            401,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key provided. Send it as `Authorization: Bearer sk_…` or as the "
            "Basic-auth user name.",
        )
    if isinstance(exc.__cause__, ApiError):  # raised by BillflowParser; ninja wraps it
        return _api_error(request, exc.__cause__)
    if isinstance(exc.__cause__, ValueError):  # json.JSONDecodeError and undecodable bytes
        return error_response(
            400, "invalid_request_error", "invalid_json", "The request body is not valid JSON."
        )
    kind = "invalid_request_error" if exc.status_code < 500 else "api_error"
    return error_response(exc.status_code, kind, "http_error", exc.message)


def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.status, exc.type, exc.code, exc.message, exc.param)


def _billing_error(request: HttpRequest, exc: BillingError) -> HttpResponse:
    return billing_error_response(exc)


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "invalid_request_error", "resource_missing", "No such resource.")


def _too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error_response(
        413, "invalid_request_error", "request_too_large", "The request body is too large."
    )


def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Logged with its traceback; the client gets the envelope, never a trace.
    logger.error("API error: %s", exc, exc_info=exc)
    return error_response(500, "api_error", "internal_error", "Something went wrong on our side.")


def install_error_handlers(api: NinjaAPI) -> None:
    api.add_exception_handler(Exception, _unexpected)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(RequestDataTooBig, _too_large)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(ValidationError, _validation_error)
    api.add_exception_handler(ApiError, _api_error)
    api.add_exception_handler(BillingError, _billing_error)


@csrf_exempt
def unknown_route(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Anything under the API prefix that no route matches."""
    return error_response(
        404,
        "invalid_request_error",
        "resource_missing",
        f"Unrecognized request URL ({request.method}: {request.path}).",
    )


def _json_method_not_allowed(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            allowed = response.get("Allow", "")
            response = error_response(
                405,
                "invalid_request_error",
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}; use {allowed}.",
            )
            response["Allow"] = allowed
        return response

    return wrapper


def api_urls(api: NinjaAPI) -> tuple[list, str, str]:
    """`api.urls`, with ninja's plain-text 405 answers turned into the error envelope."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        pattern.callback = _json_method_not_allowed(pattern.callback)
    return patterns, app_name, namespace


def request_id(request: HttpRequest) -> str:
    """Stripe's `req_…` id for this request, recorded on the events it causes."""
    if not getattr(request, "billflow_request_id", ""):
        request.billflow_request_id = new_id("req")
    return request.billflow_request_id


# --- idempotency -------------------------------------------------------------------------------


# Headers that change what a request does, so they count as its parameters.
FINGERPRINTED_HEADERS = ("Stripe-Account",)


def _fingerprint(request: HttpRequest) -> str:
    try:
        canonical = json.dumps(json.loads(request.body or b"null"), sort_keys=True)
    except ValueError:
        canonical = request.body.decode("latin-1")
    headers = "|".join(request.headers.get(name, "") for name in FINGERPRINTED_HEADERS)
    return hashlib.sha256(f"{headers}\n{canonical}".encode()).hexdigest()


def _replay(record: IdempotencyRecord, scope: str, fingerprint: str, raw_key: str) -> HttpResponse:
    if record.scope != scope or record.fingerprint != fingerprint:
        raise IdempotencyError(
            "Keys for idempotent requests can only be used with the same parameters and endpoint "
            f"they were first used with. Try a key other than {raw_key!r} for a different request.",
            param=IDEMPOTENCY_HEADER,
        )
    if record.response_status is None:  # the first request is still being worked on
        raise IdempotencyError(
            f"A request with idempotency key {raw_key!r} is still in progress; retry shortly.",
            code="idempotency_key_in_use",
            param=IDEMPOTENCY_HEADER,
            http_status=409,
        )
    response = JsonResponse(record.response_body, status=record.response_status, safe=False)
    response["Idempotent-Replayed"] = "true"
    response[IDEMPOTENCY_HEADER] = raw_key
    return response


class Answer:
    """A write's answer other than a 200: a declined confirm answers 402 with a `card_error`,
    yet its writes (the failed charge, the failure events) are committed, and a replay with the
    same `Idempotency-Key` answers the same 402."""

    def __init__(self, status: int, body: dict) -> None:
        self.status = status
        self.body = body


def _status_and_body(result: Any) -> tuple[int, Any]:
    return (result.status, result.body) if isinstance(result, Answer) else (200, result)


def idempotent(request: HttpRequest, run: Callable[[str | None], Any]) -> HttpResponse:
    """Run a POST's write once per `Idempotency-Key`.

    `run(idempotency_key)` does the write and returns the JSON body (or an `Answer` with
    another status, committed all the same); it is given None, since
    the stored response (not a service-level key) is what makes the request idempotent. It
    runs in one transaction together with the stored response, so a replay returns exactly
    the first answer and a crash leaves neither. An error rolls everything back,
    the key included: nothing was done, so the client may fix the request and use the key
    again (Stripe does not save requests that fail validation either).
    """
    try:
        return _idempotent(request, run)
    except ProviderError as error:
        # Our transaction rolled back the simulator's fault counter with everything else;
        # count the failed call again, outside it (see billing.provider).
        use_up_fault_after_rollback(error)
        raise


def _idempotent(request: HttpRequest, run: Callable[[str | None], Any]) -> HttpResponse:
    raw_key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    if not raw_key:
        with transaction.atomic():
            status, body = _status_and_body(run(None))
        return JsonResponse(body, status=status, safe=False)
    if len(raw_key) > MAX_IDEMPOTENCY_KEY:
        raise IdempotencyError(
            f"Idempotency keys are at most {MAX_IDEMPOTENCY_KEY} characters.",
            param=IDEMPOTENCY_HEADER,
        )
    environment = request.environment
    key = IDEMPOTENCY_PREFIX + raw_key
    scope = f"{request.method} {request.path}"[:120]
    fingerprint = _fingerprint(request)

    existing = IdempotencyRecord.objects.filter(environment=environment, key=key).first()
    if existing is not None:
        return _replay(existing, scope, fingerprint, raw_key)
    try:
        with transaction.atomic():
            # Claiming the key first makes a concurrent request with it wait on the unique index
            # until this transaction ends, then replay what it stored.
            record = IdempotencyRecord.objects.create(
                environment=environment, key=key, scope=scope, fingerprint=fingerprint
            )
            # The API row above is what makes the request idempotent. The service gets no key:
            # client keys must never meet the engine's `run/step/iteration` keys in one table.
            # Events still carry the client's key as `request.idempotency_key`.
            with event_request(idempotency_key=raw_key):
                status, body = _status_and_body(run(None))
            record.response_status = status
            record.response_body = body
            record.object_type = body.get("object", "") if isinstance(body, dict) else ""
            record.object_id = body.get("id", "") if isinstance(body, dict) else ""
            record.save(
                update_fields=["response_status", "response_body", "object_type", "object_id"]
            )
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(environment=environment, key=key).first()
        if existing is None:
            raise
        return _replay(existing, scope, fingerprint, raw_key)
    response = JsonResponse(body, status=status, safe=False)
    response[IDEMPOTENCY_HEADER] = raw_key
    return response


# --- lists -------------------------------------------------------------------------------------


def paginate(
    request: HttpRequest,
    queryset: QuerySet,
    render: Callable[[Any], dict],
    *,
    limit: int = DEFAULT_LIMIT,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> dict:
    """A Stripe list of `queryset` (newest first), cursor-paginated by object id.

    `queryset` must already be scoped to `request.environment`; cursors from another
    environment are rejected as unknown.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400,
            "invalid_request_error",
            "parameter_invalid_integer",
            f"limit must be between 1 and {MAX_LIMIT}.",
            "limit",
        )
    if starting_after and ending_before:
        raise ApiError(
            400,
            "invalid_request_error",
            "parameter_invalid",
            "Use starting_after or ending_before, not both.",
            "ending_before",
        )
    ordered = queryset.order_by("-created", "-pk")
    if starting_after:
        cursor = _scoped_cursor(request, queryset, starting_after, "starting_after")
        page = ordered.filter(
            Q(created__lt=cursor.created) | Q(created=cursor.created, pk__lt=cursor.pk)
        )
        rows = list(page[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    elif ending_before:
        cursor = _scoped_cursor(request, queryset, ending_before, "ending_before")
        page = queryset.order_by("created", "pk").filter(
            Q(created__gt=cursor.created) | Q(created=cursor.created, pk__gt=cursor.pk)
        )
        rows = list(page[: limit + 1])
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        rows = list(ordered[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    return {
        "object": "list",
        "data": [render(row) for row in rows],
        "has_more": has_more,
        "url": api_relative_path(request),
    }


# The API is served at `/api/v1/`, and a Stripe client's `api_base` is the origin plus `/api`
# (Stripe's own is `https://api.stripe.com`, its paths `/v1/…`). A list's `url` is the path
# after that base, `/v1/customers` as in Stripe, so the SDK's auto-pagination, which requests
# `api_base + url`, lands on the same list.
API_BASE_PATH = "/api"


def api_relative_path(request: HttpRequest) -> str:
    path = request.path_info
    return path[len(API_BASE_PATH) :] if path.startswith(API_BASE_PATH + "/") else path


def _scoped_cursor(request: HttpRequest, queryset: QuerySet, object_id: str, param: str) -> Model:
    cursor = queryset.model._default_manager.filter(
        pk=object_id, environment=request.environment
    ).first()
    if cursor is None:
        raise ApiError(
            400,
            "invalid_request_error",
            "resource_missing",
            f"No such object: '{object_id}'",
            param,
        )
    return cursor
