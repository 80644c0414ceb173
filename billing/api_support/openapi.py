"""The NinjaAPI subclass whose OpenAPI document also describes what lives in our plumbing rather
than in each operation's signature: the idempotency header, the error envelope, Basic auth."""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

from billing.api_support.idempotency import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY

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
