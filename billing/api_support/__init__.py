"""Plumbing every API router shares (billing's, workflows', webhooks'), one module per job:

- `auth`: key auth with a role check (Bearer or Basic), unknown query parameters refused;
- `bodies`: JSON and Stripe's form-encoded bodies, strings no database can store refused;
- `errors`: the error envelope for every failure, unknown routes and methods;
- `idempotency`: idempotent POSTs (on `billing.idempotency`'s keys) and the request id;
- `lists`: the `created` filters and cursor pagination;
- `openapi`: the `NinjaAPI` subclass whose document shows all of the above.

It lives in billing because it is built on billing's keys, errors and idempotency records;
workflows and webhooks may import billing. `config/api.py` only assembles the routers.
"""
