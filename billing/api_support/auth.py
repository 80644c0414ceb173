"""Key authentication with the role check, and unknown query parameters refused: the key as a
Bearer token or as the Basic-auth user name, as Stripe's docs send it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja.params.models import QueryModel
from ninja.security import HttpBearer

from backoffice.roles import ROLE_BY_KEY_ROLE, role_has
from billing.api_keys import api_key_authenticate
from billing.api_support.bodies import INDEXED_QUERY_KEY
from billing.api_support.errors import ApiError
from billing.models import ApiKey


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
