"""Websocket routes (Channels), and the path of each for the pages that open it.

Channels routes have no ``reverse()``: each route's path is written once, here, in a
pattern, and a function beside it fills that pattern in for a page. A page hands the path
to its script (``ws_path`` in its page data); no script writes a ``/ws/`` path itself.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.urls import path

from traces.models import Project, Run

from . import consumers

RUN = "ws/runs/<str:execution_id>/"
PROJECT_RUNS = "ws/projects/<slug:slug>/runs/"
PROJECT_EXPORTS = "ws/projects/<slug:slug>/exports/"

websocket_urlpatterns = [
    path(RUN, consumers.RunConsumer.as_asgi()),
    path(PROJECT_RUNS, consumers.ProjectRunsConsumer.as_asgi()),
    path(PROJECT_EXPORTS, consumers.ProjectExportsConsumer.as_asgi()),
]


def _fill(pattern: str, **values: str) -> str:
    """``pattern`` with each ``<converter:name>`` replaced by ``values[name]``."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda found: values[found.group(1)], pattern)


def run_socket_path(run: Run) -> str:
    """The run's live events (and review changes), for the run page; the script adds
    ``after=<seq>`` as it resumes."""
    query = urlencode({"project": run.project.slug})
    return f"{_fill(RUN, execution_id=run.execution_id)}?{query}"


def project_socket_path(project: Project) -> str:
    """The project's run summaries, review and failure-group changes: the run list, the
    failure pages and the review queue."""
    return _fill(PROJECT_RUNS, slug=project.slug)


def exports_socket_path(project: Project) -> str:
    """The project's exports as they progress: the exports page."""
    return _fill(PROJECT_EXPORTS, slug=project.slug)
