from django.contrib import admin
from django.urls import include, path, re_path

from billing.api_support.errors import api_urls, unknown_route
from config.api import api
from workflows.operations.metrics import metrics
from workflows.operations.views import health

urlpatterns = [
    path("", include("console.urls")),
    # Liveness for load balancers and monitoring (docs/operations.md).
    path("health/", health, name="health"),
    # Prometheus metrics, for a scraper holding METRICS_TOKEN (docs/operations.md).
    path("metrics", metrics, name="metrics"),
    # The run inspector lives inside the admin's URL space, before the admin's catch-all.
    path("admin/runs/", include("workflows.inspector.urls")),
    # The visual builder, likewise inside the admin's layout and before its catch-all.
    path("admin/workflows/", include("workflows.builder.urls")),
    # System workflow settings (wording, recipients, steps on or off), likewise.
    path("admin/system-workflows/", include("workflows.system.urls")),
    # Webhook endpoints and their delivery log, likewise.
    path("admin/webhooks/", include("webhooks.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api_urls(api)),
    # Anything else under the API prefix answers with the JSON error envelope, not an HTML page.
    re_path(r"^api/v1/", unknown_route),
]
