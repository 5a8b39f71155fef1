from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from traces.api import otlp

urlpatterns = [
    path("api/v1/", include("traces.api.urls")),
    # OTLP/HTTP at the path OpenTelemetry exporters use by default (endpoint + /v1/traces).
    path("v1/traces", otlp.traces, name="otlp-traces"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("visualizer.urls")),
]
