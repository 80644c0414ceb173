"""The API's errors as Stripe answers them: `{"error": {"type", "code", "message", "param"}}`
for every failure (validation, auth, billing, routing, an unexpected exception), never a trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from billing.errors import BillingError

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
