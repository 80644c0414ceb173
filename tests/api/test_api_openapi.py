"""The OpenAPI description is served, valid JSON, and names every resource and the bearer scheme."""

from __future__ import annotations

from django.test import Client


def test_it_serves_the_openapi_description(db):
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in [
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/products",
        "/api/v1/prices",
        "/api/v1/subscriptions/{subscription_id}/cancel",
        "/api/v1/invoices/{invoice_id}/finalize",
        "/api/v1/invoices/{invoice_id}/pay",
        "/api/v1/invoices/{invoice_id}/void",
        "/api/v1/payment_intents/{intent_id}/confirm",
        "/api/v1/refunds",
        "/api/v1/disputes",
        "/api/v1/charges/{charge_id}",
        "/api/v1/checkout/sessions/{session_id}/complete",
        "/api/v1/checkout/sessions/{session_id}/expire",
        "/api/v1/events",
        "/api/v1/events/{event_id}",
    ]:
        assert path in paths, path
    schemes = spec["components"]["securitySchemes"]
    assert any(s == {"type": "http", "scheme": "bearer"} for s in schemes.values())
    assert paths["/api/v1/customers"]["post"]["security"]


def test_it_describes_the_request_bodies(db):
    spec = Client().get("/api/v1/openapi.json").json()
    schema = spec["components"]["schemas"]["PaymentIntentCreate"]
    assert set(schema["required"]) == {"amount", "currency"}
    assert schema["properties"]["amount"]["minimum"] == 1


def test_it_serves_the_interactive_docs_page(db):
    assert Client().get("/api/v1/docs").status_code == 200


def test_it_documents_the_idempotency_header_and_the_error_envelope(db):
    spec = Client().get("/api/v1/openapi.json").json()
    create = spec["paths"]["/api/v1/customers"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"] if p["in"] == "header"]
    listing = spec["paths"]["/api/v1/customers"]["get"]
    assert "Idempotency-Key" not in [p["name"] for p in listing.get("parameters", [])]
    assert listing["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
