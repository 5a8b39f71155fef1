"""Site-wide middleware: a database outage answered 503 with ``Retry-After``, never 500.

``process_exception`` sees what a view raises, including while a template renders (the
nav's inbox count reads the database) and in DEBUG, where Django would otherwise show its
technical 500 page. The API's own views answer through ``traces.api.render``; this covers
the pages, the login and anything else Django serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from traces.errors import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE, database_unavailable

log = logging.getLogger(__name__)


class DatabaseOutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not database_unavailable(exc):
            return None
        log.warning("database unavailable: %s %s: %s", request.method, request.path, exc)
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503)
        else:
            # Rendered without the request: its context processors read the session and
            # the user, which are in the database that is not answering.
            page = render_to_string("503.html", {"retry_after": DATABASE_RETRY_AFTER})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
