from django.urls import path

from . import exports, failures, members, review, views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<slug:slug>/", views.project, name="project"),
    path("projects/<slug:slug>/runs/", views.project, name="runs"),
    path("projects/<slug:slug>/runs/<str:execution_id>/", views.run_page, name="run"),
    path(
        "projects/<slug:slug>/runs/<str:execution_id>/timeline.json",
        views.run_timeline,
        name="run-timeline",
    ),
    path(
        "projects/<slug:slug>/runs/<str:execution_id>/watch.json",
        views.run_watch,
        name="run-watch",
    ),
    path(
        "projects/<slug:slug>/runs/<str:execution_id>/steps/<int:index>.json",
        views.run_step,
        name="run-step",
    ),
    *failures.urlpatterns,
    *review.urlpatterns,
    *exports.urlpatterns,
    *members.urlpatterns,
]
