"""Every page route, in the ``visualizer`` namespace (``reverse("visualizer:run", ...)``),
grouped by what they are under: a project, one of its runs, one of its failure groups.

The websocket routes are in ``routing.py``; the API's are in ``traces``.
"""

from django.urls import URLPattern, URLResolver, include, path, register_converter

from .pages import (
    compare,
    dashboard,
    exports,
    failures,
    home,
    inbox,
    review,
    run,
    runs,
    settings,
    threads,
)

app_name = "visualizer"


class AnyTextConverter:
    """Any non-empty text, slashes and newlines included: a thread id is whatever string
    the producer sent (``path`` stops at a newline). reverse() percent-encodes it."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyTextConverter, "anytext")

# Under projects/<slug>/runs/<execution_id>/: the page and the JSON its script asks for.
run_routes: list[URLPattern | URLResolver] = [
    path("", run.run_page, name="run"),
    path("pin", run.run_pin, name="run-pin"),
    path("timeline.json", run.run_timeline, name="run-timeline"),
    path("errors.json", run.run_errors, name="run-errors"),
    path("watch.json", run.run_watch, name="run-watch"),
    path("steps/<int:index>.json", run.run_step, name="run-step"),
]

# Under projects/<slug>/failures/<group_id>/.
group_routes: list[URLPattern | URLResolver] = [
    path("", failures.group_page, name="failure-group"),
    path("data.json", failures.group_json, name="failure-group-data"),
]

# Under projects/<slug>/. rows.html has no trailing slash, so it is no execution id.
project_routes: list[URLPattern | URLResolver] = [
    path("", runs.runs_page, name="project"),
    path("runs/", runs.runs_page, name="runs"),
    path("runs/rows.html", runs.run_rows, name="run-rows"),
    path("runs/<str:execution_id>/", include(run_routes)),
    path("compare/", compare.compare_page, name="compare"),
    path("compare/pair.json", compare.compare_pair, name="compare-pair"),
    path("failures/", failures.failures_page, name="failures"),
    path("failures/rows.html", failures.failure_rows, name="failure-rows"),
    path("failures/<int:group_id>/", include(group_routes)),
    path("dashboard/", dashboard.dashboard_page, name="dashboard"),
    path("dashboard/data.json", dashboard.dashboard_json, name="dashboard-data"),
    path("review/", review.review_page, name="review"),
    path("review/counts/", review.review_counts, name="review-counts"),
    path("exports/", exports.exports_page, name="exports"),
    path("settings/", settings.settings_page, name="settings"),
    path("inbox/", inbox.inbox_page, name="inbox"),
    path("inbox/rows.html", inbox.inbox_rows, name="inbox-rows"),
    path("threads/<anytext:thread_id>/", threads.thread_page, name="thread"),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("projects/<slug:slug>/", include(project_routes)),
]
