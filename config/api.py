"""The one django-ninja API under /api/v1/. Routers come from the apps; plumbing from
`billing.api_support` (key auth, Stripe-style errors, idempotent POSTs, pagination)."""

from __future__ import annotations

from billing.api import router as billing_router
from billing.api_support.auth import refuse_unknown_query_params
from billing.api_support.bodies import BillflowParser
from billing.api_support.errors import install_error_handlers
from billing.api_support.openapi import BillflowAPI
from history.api import router as history_router
from webhooks.api import router as webhooks_router
from workflows.api import router as workflows_router
from workflows.backtests.api import router as backtests_router
from workflows.batches.api import router as run_batches_router

api = BillflowAPI(
    parser=BillflowParser(),
    title="Billflow API",
    version="1",
    description=(
        "Stripe-shaped billing resources. Authenticate with `Authorization: Bearer sk_…` or the "
        "key as the Basic-auth user name; the key's environment scopes every object. Bodies are "
        "JSON or form-encoded in Stripe's bracket notation (`metadata[plan]=pro`). POSTs accept "
        "an `Idempotency-Key` header. Unknown query parameters and body fields are refused. "
        'Errors are `{"error": {"type", "code", "message", "param"}}`.'
    ),
    urls_namespace="api_v1",
)
install_error_handlers(api)
# Unknown query parameters are a 400 naming them on every operation, like unknown body fields.
api.add_decorator(refuse_unknown_query_params, mode="view")

api.add_router("", billing_router)
api.add_router("", workflows_router)
api.add_router("", run_batches_router)
api.add_router("", backtests_router)
api.add_router("", webhooks_router)
api.add_router("", history_router)
# Another app adds its routes here: import its `Router` above and `api.add_router("", router)`.
