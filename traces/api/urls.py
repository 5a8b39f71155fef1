"""Every route of the HTTP API, under ``/api/v1/`` and the URL namespace ``api``."""

from django.urls import path

from . import alerts, capture, compare, exports, failures, members, retention, review, runs

app_name = "api"

urlpatterns = [
    path("traces", runs.TraceIngest.as_view(), name="traces"),
    path("dashstream", runs.DashStreamIngest.as_view(), name="dashstream"),
    path("runs", runs.RunList.as_view(), name="runs"),
    path("runs/<str:execution_id>", runs.RunDetail.as_view(), name="run"),
    path("runs/<str:execution_id>/steps/<int:index>", runs.RunStep.as_view(), name="step"),
    path("runs/<str:execution_id>/trace", runs.RunTrace.as_view(), name="trace"),
    path("runs/<str:execution_id>/events", runs.RunEvents.as_view(), name="events"),
    path("runs/<str:execution_id>/pin", retention.RunPin.as_view(), name="run-pin"),
    path("runs/<str:execution_id>/review", review.RunReviewView.as_view(), name="run-review"),
    path(
        "runs/<str:execution_id>/steps/<int:index>/verdict",
        review.StepVerdictView.as_view(),
        name="step-verdict",
    ),
    path("runs/<str:execution_id>/comments", review.RunComments.as_view(), name="run-comments"),
    path("comments/<int:id>", review.CommentDetail.as_view(), name="comment"),
    path("runs/<str:execution_id>/activity", review.RunActivity.as_view(), name="run-activity"),
    path("reviews/export", review.ReviewExport.as_view(), name="review-export"),
    path("failure-groups", failures.FailureGroupList.as_view(), name="failure-groups"),
    path(
        "failure-groups/<int:group_id>",
        failures.FailureGroupDetail.as_view(),
        name="failure-group",
    ),
    path("compare", compare.Compare.as_view(), name="compare"),
    path("exports", exports.ExportList.as_view(), name="exports"),
    path("exports/<uuid:export_id>", exports.ExportDetail.as_view(), name="export"),
    path(
        "exports/<uuid:export_id>/download",
        exports.ExportDownload.as_view(),
        name="export-download",
    ),
    path("members", members.MemberList.as_view(), name="members"),
    path("members/<str:username>", members.MemberDetail.as_view(), name="member"),
    path("api-keys", members.KeyList.as_view(), name="keys"),
    path("api-keys/<int:key_id>", members.KeyDetail.as_view(), name="key"),
    path("alert-rules", alerts.AlertRuleList.as_view(), name="alert-rules"),
    path("alert-rules/<int:rule_id>", alerts.AlertRuleDetail.as_view(), name="alert-rule"),
    path("capture-policy", capture.CapturePolicyView.as_view(), name="capture-policy"),
    path("attachments/<str:ident>", capture.AttachmentView.as_view(), name="attachment"),
    path("retention", retention.Retention.as_view(), name="retention"),
    path("inbox", alerts.InboxList.as_view(), name="inbox"),
    path("inbox/read", alerts.InboxRead.as_view(), name="inbox-read"),
]
