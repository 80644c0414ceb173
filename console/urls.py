from django.urls import path
from django.views.generic import RedirectView

from console import views

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("environment/switch/", views.environment_switch, name="environment_switch"),
]
