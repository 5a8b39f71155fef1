"""Websocket routes (Channels)."""

from django.urls import path

from . import consumers, consumers_exports

websocket_urlpatterns = [
    path("ws/runs/<str:execution_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/projects/<slug:slug>/runs/", consumers.ProjectRunsConsumer.as_asgi()),
    path("ws/projects/<slug:slug>/exports/", consumers_exports.ProjectExportsConsumer.as_asgi()),
]
