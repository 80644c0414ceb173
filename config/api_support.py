"""Plumbing every API router shares: key auth with a role check, Stripe-style errors,
idempotent POSTs and list pagination. Billing and workflow routers both use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

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


class BillflowParser(Parser):
    """Ninja's JSON parser, refusing strings we could not store, so they get a 400 naming the
    field instead of a database error."""

    def parse_body(self, request: HttpRequest) -> dict:
        return _refuse_unstorable(super().parse_body(request))

    def parse_querydict(self, data, list_fields: list[str], request: HttpRequest) -> dict:
        return _refuse_unstorable(super().parse_querydict(data, list_fields, request))


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
        for operations in schema["paths"].values():
            for method, operation in operations.items():
                operation.setdefault("responses", {}).setdefault("default", error)
                if method in ("post", "delete"):
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
        return schema


# --- authentication and roles ------------------------------------------------------------------


class KeyAuth(HttpBearer):
    """`Authorization: Bearer sk_…`, and the key's role must have `capability`.

    On success `request.auth` is the ApiKey and `request.environment` its environment, which
    scopes every lookup. The role check runs here, before the body is validated, so a key
    without the right gets 403 whatever it sends.
    """

    openapi_scheme = "bearer"

    def __init__(self, capability: str) -> None:
        super().__init__()
        self.capability = capability

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
        return key


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
            "Invalid API key provided. Send it as `Authorization: Bearer sk_…`.",
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


def idempotent(request: HttpRequest, run: Callable[[str | None], Any]) -> HttpResponse:
    """Run a POST's write once per `Idempotency-Key`.

    `run(idempotency_key)` does the write and returns the JSON body; it is given None, since
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
            return JsonResponse(run(None), safe=False)
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
                body = run(None)
            record.response_status = 200
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
    response = JsonResponse(body, safe=False)
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
        "url": request.path,
    }


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
