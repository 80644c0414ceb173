"""A thin JSON client for API tests: a Django test client plus a bearer key."""

from __future__ import annotations

import json

from django.test import Client

from billing.api_keys import api_key_create
from billing.models import Environment

BASE = "/api/v1"


class Api:
    def __init__(self, raw_key: str | None) -> None:
        self.client = Client()
        self.raw_key = raw_key

    def _headers(self, idempotency_key: str | None = None) -> dict:
        headers = {}
        if self.raw_key is not None:
            headers["Authorization"] = f"Bearer {self.raw_key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def get(self, path: str, **params):
        return self.client.get(BASE + path, params, headers=self._headers())

    def post(
        self, path: str, body=None, *, idempotency_key: str | None = None, raw: str | None = None
    ):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(
            BASE + path,
            data,
            content_type="application/json",
            headers=self._headers(idempotency_key),
        )

    def delete(self, path: str, *, idempotency_key: str | None = None):
        return self.client.delete(BASE + path, headers=self._headers(idempotency_key))


def api_for(environment: Environment, role: str = "developer") -> Api:
    _, raw = api_key_create(environment=environment, name=f"{role} key", role=role)
    return Api(raw)


def error_of(response) -> dict:
    """The error envelope's body, after checking the envelope has exactly Stripe's fields."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"type", "code", "message", "param"} <= set(body["error"]), body
    return body["error"]
