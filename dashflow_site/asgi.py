"""ASGI entry point served by Daphne: HTTP through Django, websockets through Channels."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")
# Django must be set up before anything imports models (the consumers do).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402

from dashflow_site import bodylimit, wsbuffer  # noqa: E402
from dashflow_site.bodylimit import PRODUCER_PATHS  # noqa: E402
from dashflow_site.input_guard import text_input_guard, websocket_text_guard  # noqa: E402
from dashflow_site.origins import OriginCheck  # noqa: E402
from traces.mcp.http import mcp_app  # noqa: E402
from visualizer.routing import websocket_urlpatterns  # noqa: E402

# Under Daphne, bodies over their route's limit are refused before they are buffered, and
# a websocket whose client does not read is closed before its unsent bytes pass a bound.
bodylimit.install()
wsbuffer.install()


class ProducerHandler(ASGIHandler):
    """Django without the browser middleware (sessions, CSRF, messages, ...).

    Under ASGI each sync middleware hook is its own hop to a worker thread (~12 per
    request with our seven), which cost a live event more than storing it did
    (benchmarks/live.py). These views authenticate with the API key themselves. The
    text guard (NUL, invalid UTF-8) is kept: it is async, so it costs no hop.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        # BaseHandler.load_middleware with an empty list (the stubs omit these privates).
        get_response = (
            self._get_response_async  # type: ignore[attr-defined]
            if is_async
            else self._get_response  # type: ignore[attr-defined]
        )
        self._middleware_chain = convert_exception_to_response(
            text_input_guard(convert_exception_to_response(get_response))
        )


producer_http = ProducerHandler()
site_http = ASGIStaticFilesHandler(django_http)


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] in ("/mcp", "/mcp/"):
        # The MCP server (traces/mcp/http.py): API-key only, the SDK's own ASGI app.
        await mcp_app(scope, receive, send)
        return
    app = producer_http if PRODUCER_PATHS.match(scope["path"]) else site_http
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        # Static files come from the app itself so one Daphne command serves everything;
        # a deployment behind a CDN or proxy can serve STATIC_ROOT instead.
        "http": http,
        # Only the site's own pages may open a socket (origins.py: host and port); a NUL or
        # bad UTF-8 in the handshake is refused first.
        "websocket": websocket_text_guard(
            OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
