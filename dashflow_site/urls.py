from csp.constants import SELF
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from traces.api import otlp
from visualizer.pages.login import ThrottledLoginView

urlpatterns = [
    path("api/v1/", include("traces.api.urls")),
    # OTLP/HTTP at the path OpenTelemetry exporters use by default (endpoint + /v1/traces).
    path("v1/traces", otlp.traces, name="otlp-traces"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from a URL (?script) instead of
    # inline, so the page runs under the same Content-Security-Policy as every other, with
    # one addition: Swagger UI draws its icons as data: SVG images (an image runs no script).
    path(
        "api/docs/",
        csp_update({"img-src": [SELF, "data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs.html")
        ),
        name="api-docs",
    ),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("visualizer.urls")),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A URL that matches no route: the API answers its one error body in JSON (as its
    schema says), pages the HTML page. (With DEBUG on, Django shows its own page instead.)"""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no such URL: {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found
