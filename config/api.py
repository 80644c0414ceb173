"""The one django-ninja API under /api/v1/. Routers come from the apps; plumbing from
`config.api_support` (key auth, Stripe-style errors, idempotent POSTs, pagination)."""

from __future__ import annotations

from billing.api import router as billing_router
from config.api_support import BillflowAPI, BillflowParser, install_error_handlers
from workflows.api import router as workflows_router

api = BillflowAPI(
    parser=BillflowParser(),
    title="Billflow API",
    version="1",
    description=(
        "Stripe-shaped billing resources. Authenticate with `Authorization: Bearer sk_…`; the "
        "key's environment scopes every object. POSTs accept an `Idempotency-Key` header. "
        'Errors are `{"error": {"type", "code", "message", "param"}}`.'
    ),
    urls_namespace="api_v1",
)
install_error_handlers(api)

api.add_router("", billing_router)
api.add_router("", workflows_router)
# Another app adds its routes here: import its `Router` above and `api.add_router("", router)`.
