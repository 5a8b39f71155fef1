"""Every page route, in the ``visualizer`` namespace (``reverse("visualizer:run", ...)``).

The websocket routes are in ``routing.py``; the API's are in ``traces``.
"""

from django.urls import path

from .pages import exports, failures, home, review, run, runs, settings

app_name = "visualizer"

PROJECT = "projects/<slug:slug>/"
RUN = f"{PROJECT}runs/<str:execution_id>/"
GROUP = f"{PROJECT}failures/<int:group_id>/"

urlpatterns = [
    path("", home.home, name="home"),
    path(PROJECT, runs.runs_page, name="project"),
    path(f"{PROJECT}runs/", runs.runs_page, name="runs"),
    # rows.html has no trailing slash, so it is no execution id of RUN.
    path(f"{PROJECT}runs/rows.html", runs.run_rows, name="run-rows"),
    path(RUN, run.run_page, name="run"),
    path(f"{RUN}timeline.json", run.run_timeline, name="run-timeline"),
    path(f"{RUN}errors.json", run.run_errors, name="run-errors"),
    path(f"{RUN}watch.json", run.run_watch, name="run-watch"),
    path(f"{RUN}steps/<int:index>.json", run.run_step, name="run-step"),
    path(f"{PROJECT}failures/", failures.failures_page, name="failures"),
    path(f"{PROJECT}failures/rows.html", failures.failure_rows, name="failure-rows"),
    path(GROUP, failures.group_page, name="failure-group"),
    path(f"{GROUP}data.json", failures.group_json, name="failure-group-data"),
    path(f"{PROJECT}review/", review.review_page, name="review"),
    path(f"{PROJECT}exports/", exports.exports_page, name="exports"),
    path(f"{PROJECT}settings/", settings.settings_page, name="settings"),
]
