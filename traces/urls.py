from django.urls import path

from . import api, api_exports, api_failures, api_members, api_review

urlpatterns = [
    path("traces", api.TraceIngest.as_view(), name="api-traces"),
    path("runs", api.RunList.as_view(), name="api-runs"),
    path("runs/<str:execution_id>", api.RunDetail.as_view(), name="api-run"),
    path("runs/<str:execution_id>/steps/<int:index>", api.RunStep.as_view(), name="api-step"),
    path("runs/<str:execution_id>/trace", api.RunTrace.as_view(), name="api-trace"),
    path("runs/<str:execution_id>/events", api.RunEvents.as_view(), name="api-events"),
    *api_failures.urlpatterns,
    *api_review.urlpatterns,
    *api_exports.urlpatterns,
    *api_members.urlpatterns,
]
