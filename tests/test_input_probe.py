"""Every input point, sent a NUL byte or invalid UTF-8, answers 4xx, never 5xx.

A real Daphne on the test database (PostgreSQL refuses NUL in text, so there it is a real
error, not a quirk of SQLite). The URLs are read from the resolver and the fields from what
the server itself publishes: the OpenAPI schema's parameters and the forms and links of
every page, so a route, a filter or a form field added later is probed too. Each is sent as
a signed-in admin (a superuser who is admin of the project) and, on the API, with an admin-
scope API key: NUL and ``%FF`` in each path parameter, in each query parameter, in each
form field (the page's own forms, posted with their other values as rendered), in each JSON
field, in cookies and the ``Authorization`` header; invalid UTF-8 bodies; and a 30-digit
number in each integer path parameter, query parameter and JSON field (past every integer
column), and "²" (a digit to ``str.isdigit``, not to ``int``) in each query parameter. The
MCP tools get NUL in each string argument, the websocket routes NUL and ``%FF`` in their
paths and queries.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import anyio
import httpx2
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as DjangoClient
from django.urls import URLPattern, URLResolver, get_resolver
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from websockets.exceptions import InvalidStatus

from tests.servers import HOST, Daphne, daphne, database_url, server_env, session_cookie
from traces import zstd
from traces.filters import FILTER_NAMES
from traces.ingest import ingest_trace
from traces.models import (
    AlertKind,
    AlertRule,
    ApiKey,
    CaptureAttachment,
    Comment,
    Export,
    ExportFormat,
    FailureGroup,
    KeyScope,
    Membership,
    Project,
    Role,
)
from traces.parsing import parse_trace
from visualizer.routing import websocket_urlpatterns

real_server = pytest.mark.django_db(transaction=True)

NUL = "a\x00b"
# JSON fields the API's views read that its schema leaves as a plain object.
JSON_FIELDS = (
    "body",
    "path",
    "step",
    "reason",
    "verdict",
    "status",
    "assignee",
    "username",
    "role",
    "name",
    "scope",
    "format",
    "filters",
    "ids",
    "kind",
    "webhook_url",
    "node",
    "error_type",
    "events",
    "execution_id",
)
# Query parameters read by the pages' JSON endpoints (their scripts build these).
SCRIPT_PARAMS = ("path", "at", "ai", "bi", "a", "b", "id", "tab", "cursor", "limit", "step")
CSRF = secrets.token_hex(16)  # a 32-character secret: cookie and form token alike


def walk(entries: list[Any] | None = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in entries if entries is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def fill(pattern: str, values: dict[str, str], poison: str | None = None, bad: str = "") -> str:
    """A concrete path for ``pattern``; the string parameter ``poison`` gets ``bad``."""

    def value(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2) or match.group(3)
        assert name in values, f"{pattern}: teach this test a value for <{name}>"
        if name == poison:
            return bad
        return quote(values[name]) if converter != "path" else values[name]

    return "/" + PARAM.sub(value, pattern.replace("^", "").replace("$", ""))


def string_params(pattern: str) -> list[str]:
    """Parameters that can carry any text (``str``, ``path``, regex groups)."""
    return [
        m.group(2) or m.group(3)
        for m in PARAM.finditer(pattern)
        if m.group(3) or m.group(1) in (None, "str", "path")
    ]


class Forms(HTMLParser):
    """The forms of a page (action, method, fields with their rendered values) and the
    names of the query parameters its links use."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.link_params: set[str] = set()
        self._form: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": a.get("method", "get")}
            self._form["fields"] = {}
            self._form["boxes"] = {}
            self.forms.append(self._form)
        elif tag in ("input", "select", "textarea", "button") and a.get("name"):
            # An unchecked box is not sent, and a poisoned one would be a checked one (a
            # "delete" box in the admin): boxes are sent as rendered, never poisoned.
            box = a.get("type") in ("checkbox", "radio")
            if self._form is not None and a["name"] not in self._form["fields"]:
                if not box:
                    self._form["fields"][a["name"]] = a.get("value", "")
                elif "checked" in a:
                    self._form["boxes"][a["name"]] = a.get("value", "on")
        elif tag == "a" and "?" in a.get("href", ""):
            query = urlsplit(a["href"]).query
            self.link_params |= {p.split("=")[0] for p in query.split("&") if p}

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


class Client:
    """Requests to the live server over one keep-alive connection per client."""

    def __init__(self, server: Daphne, cookies: dict[str, str], key: str | None = None) -> None:
        self.server = server
        self.cookies = cookies
        self.key = key
        self.conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        self.sent = 0

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        all_headers = {"X-CSRFToken": CSRF, "Referer": self.server.origin + "/"}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.key:
            all_headers["Authorization"] = f"Bearer {self.key}"
        if content_type:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        self.sent += 1
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the keep-alive connection (after a 400, say): again
                # on a new one.
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.server.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


@pytest.fixture
def world(project: Project, fixtures_dir: Path) -> dict[str, Any]:
    """An admin who can reach every URL, and a value for every URL parameter."""
    root = get_user_model().objects.create_superuser("root", password="pw-root-123")
    Membership.objects.create(project=project, user=root, role=Role.ADMIN)
    trace = parse_trace((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    run, _ = ingest_trace(project, trace)
    group = FailureGroup.objects.filter(project=project).first()
    assert group is not None, "a failed run is grouped"
    comment = Comment.objects.create(run=run, author=root, body="a comment")
    export = Export.objects.create(project=project, format=ExportFormat.CSV, created_by=root)
    key_row, key = ApiKey.issue(project, "probe", scope=KeyScope.ADMIN)
    attachment = CaptureAttachment.objects.create(
        project=project, ident="a" * 32, run=run, size=2, data=zstd.compress(b"{}")
    )
    rule = AlertRule.objects.create(project=project, name="a rule", kind=AlertKind.REGRESSION)
    values = {
        "slug": project.slug,
        "execution_id": run.execution_id,
        "thread_id": run.thread_id or "a-thread",
        "index": "0",
        "group_id": str(group.pk),
        "id": str(comment.pk),
        "export_id": str(export.pk),
        "key_id": str(key_row.pk),
        "rule_id": str(rule.pk),
        "ident": attachment.ident,
        "username": "root",
        # The admin's routes.
        "object_id": str(root.pk),
        "content_type_id": "1",
        "app_label": "traces",
        "url": "nowhere/",
    }
    return {"values": values, "key": key, "session": session_cookie(root)}


def schema_fields(admin: Client) -> tuple[dict[str, set[str]], set[str]]:
    """Query parameters per API path, and every JSON body property, from the schema."""
    status, body = admin.request("GET", "/api/schema/?format=json")
    assert status == 200, body[:300]
    schema = json.loads(body)
    params: dict[str, set[str]] = {}
    properties: set[str] = set()
    for path, operations in schema["paths"].items():
        names = params.setdefault(path, set())
        for operation in operations.values():
            names |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            for content in operation.get("requestBody", {}).get("content", {}).values():
                properties |= set(content.get("schema", {}).get("properties", {}))
    assert sum(len(n) for n in params.values()) > 20, "the schema documents query parameters"
    return params, properties


def api_path(pattern: str) -> str:
    """The schema's spelling of an API route: ``/api/v1/runs/{execution_id}``."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", pattern)


@real_server
def test_no_input_point_answers_5xx_to_nul_or_invalid_utf8(
    server: Daphne, world: dict[str, Any]
) -> None:
    values = world["values"]
    cookies = {"sessionid": world["session"], "csrftoken": CSRF}
    admin = Client(server, cookies)
    keyed = Client(server, {}, world["key"])
    anonymous = Client(server, {"csrftoken": CSRF})
    query_params, body_properties = schema_fields(admin)
    json_fields = sorted(set(JSON_FIELDS) | body_properties)
    failures: list[str] = []
    refused = 0

    def check(client: Client, method: str, path: str, what: str, **kwargs: Any) -> int:
        nonlocal refused
        status, body = client.request(method, path, **kwargs)
        if status >= 500:
            failures.append(f"{status} {method} {path} ({what}): {body[:200]!r}")
        refused += status == 400
        return status

    routes = list(walk())
    assert len(routes) > 80
    for pattern, _view in routes:
        if "logout" in pattern:
            continue  # as above
        is_api = pattern.startswith("api/")
        clients = [admin, keyed] if is_api else [admin]
        path = fill(pattern, values)
        # Names this route is known to read: its schema, or the page's forms and links.
        names = set(query_params.get(api_path(pattern), set()))
        forms: list[dict[str, Any]] = []
        if not is_api:
            status, html = admin.request("GET", path)
            if status == 200 and b"<" in html[:200]:
                page = Forms()
                page.feed(html.decode(errors="replace"))
                forms = page.forms
                names |= page.link_params
                names |= {n for f in forms if f["method"].lower() == "get" for n in f["fields"]}
            names |= {*FILTER_NAMES, *SCRIPT_PARAMS}
        names |= {"project"} if is_api else set()
        for client in clients:
            for poison in string_params(pattern):
                for bad in ("a%00b", "a%FFb"):
                    poisoned = fill(pattern, values, poison, bad)
                    for method in ("GET", "POST", "PATCH", "DELETE"):
                        check(client, method, poisoned, f"<{poison}>={bad}")
            for number in re.findall(r"<int:(\w+)>", pattern):
                # Past any integer column (bigint, or the u64 ones stored as numeric).
                huge = fill(pattern, values, number, "9" * 30)
                for method in ("GET", "POST", "PATCH", "DELETE"):
                    check(client, method, huge, f"<{number}>=10^30")
            suffix = "&project=acme" if is_api else ""
            for name in sorted(names):
                check(client, "GET", f"{path}?{name}=a%00b{suffix}", f"?{name}")
            check(client, "GET", f"{path}?{sorted(names or {'q'})[0]}=%FF{suffix}", "?%FF")
            for name in sorted(names):
                check(client, "GET", f"{path}?{name}={'9' * 30}{suffix}", f"?{name}=10^30")
                # A digit to str.isdigit() that int() refuses.
                check(client, "GET", f"{path}?{name}=%C2%B2{suffix}", f"?{name}=²")
            if is_api:
                target = f"{path}?project=acme"
                for method in ("POST", "PUT", "PATCH"):
                    for field in json_fields:
                        # A number past every integer column: once (the same views).
                        once = client is admin and method != "PUT"
                        for value in (NUL, 10**30) if once else (NUL,):
                            check(
                                client,
                                method,
                                target,
                                f"JSON {field}={value!r}",
                                body=json.dumps({field: value}).encode(),
                                content_type="application/json",
                            )
                    nested = json.dumps({"filters": {"node": NUL}, "events": [{"data": NUL}]})
                    check(
                        client,
                        method,
                        target,
                        "nested JSON",
                        body=nested.encode(),
                        content_type="application/json",
                    )
                    check(
                        client,
                        method,
                        target,
                        "UTF-8",
                        body=b'{"body": "\xff"}',
                        content_type="application/json",
                    )
        # The page's own forms, each field in turn poisoned, the rest as rendered.
        for form in forms:
            action = form["action"] or path
            if form["method"].lower() != "post" or re.search(r"logout|/delete/", action):
                continue  # signing out or deleting the admin would end the probe's session
            fields = {**form["boxes"], **form["fields"], "csrfmiddlewaretoken": CSRF}
            for name in form["fields"]:
                if name == "csrfmiddlewaretoken":
                    continue
                body = urlencode({**fields, name: fields[name] + NUL}).encode()
                check(
                    admin,
                    "POST",
                    action,
                    f"form {name}",
                    body=body,
                    content_type="application/x-www-form-urlencoded",
                )
            check(
                admin,
                "POST",
                action,
                "form %FF",
                body=b"action=%FF&name=%FF",
                content_type="application/x-www-form-urlencoded",
            )
    # Signing in: the login form with NUL in each field, and invalid UTF-8.
    for field in ("username", "password"):
        form = {"username": "root", "password": "pw-root-123", "csrfmiddlewaretoken": CSRF}
        form[field] += NUL
        check(
            anonymous,
            "POST",
            "/login/",
            f"login {field}",
            body=urlencode(form).encode(),
            content_type="application/x-www-form-urlencoded",
        )
    check(
        anonymous,
        "POST",
        "/login/",
        "login %FF",
        body=b"username=%FF&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    # Credentials: a NUL in the session cookie and in the API key, on a page, the API, the
    # producers' endpoints and /mcp.
    targets = [
        "/",
        "/api/v1/runs",
        "/api/v1/traces",
        f"/api/v1/runs/{values['execution_id']}/events",
    ]
    for target in targets:
        check(Client(server, {"sessionid": "abcdefgh\x00ij"}), "GET", target, "session NUL")
        check(
            Client(server, {}, "dfk_\x00abc"),
            "POST",
            target,
            "key NUL",
            body=b"{}",
            content_type="application/json",
        )
    check(
        Client(server, {}, "dfk_\x00abc"),
        "POST",
        "/mcp",
        "key NUL",
        body=b"{}",
        content_type="application/json",
    )
    # The producers' bodies.
    events = f"/api/v1/runs/{values['execution_id']}/events"
    for target, body in [
        ("/api/v1/traces", b'{"nodes_executed": [], "thread_id": "\xff"}'),
        (events, b'{"events": [{"seq": 1, "type": "run_started", "data": {"thread_id": "\xff"}}]}'),
    ]:
        check(keyed, "POST", target, "UTF-8 body", body=body, content_type="application/json")
    assert keyed.sent + admin.sent > 2000, "the probe reached the routes"
    assert admin.request("GET", fill("projects/<slug:slug>/runs/", values))[0] == 200, (
        "the admin was still signed in at the end"
    )
    assert not failures, f"{len(failures)} answers were 5xx:\n" + "\n".join(failures)
    assert refused > 1000, f"only {refused} answers were 400"


@real_server
def test_no_mcp_tool_fails_on_nul_in_an_argument(server: Daphne, world: dict[str, Any]) -> None:
    values = world["values"]
    valid = {
        "execution_id": values["execution_id"],
        "a": values["execution_id"],
        "b": values["execution_id"],
        "index": 0,
        "group_id": int(values["group_id"]),
        "path": "/question",
        "body": "a comment",
    }
    answers: list[tuple[str, str, bool, str]] = []

    async def main() -> None:
        headers = {"Authorization": f"Bearer {world['key']}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as client,
            streamable_http_client(f"{server.origin}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for tool in (await session.list_tools()).tools:
                properties = tool.input_schema.get("properties", {})
                required = tool.input_schema.get("required", [])
                for name, spec in properties.items():
                    types = {spec.get("type")} | {s.get("type") for s in spec.get("anyOf", [])}
                    if "string" not in types:
                        continue
                    arguments = {r: valid[r] for r in required if r != name}
                    arguments[name] = NUL
                    result = await session.call_tool(tool.name, arguments)
                    text = "".join(getattr(c, "text", "") for c in result.content)
                    answers.append((tool.name, name, result.is_error, text))

    anyio.run(main)
    assert len(answers) > 15, "every tool's string arguments were tried"
    wrong = [
        f"{tool}({argument}=NUL): {text[:300]}"
        for tool, argument, is_error, text in answers
        # Refused, naming the argument, by the schema (an enum) or by our rule; never the
        # database's error passed on.
        if not is_error or argument not in text or "PostgreSQL" in text
    ]
    assert not wrong, "\n".join(wrong)


def test_a_nul_in_the_api_is_its_json_error_naming_the_field(api: Any) -> None:
    response = api.get("/api/v1/runs?node=a%00b")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "node: contains a NUL character (\\u0000)",
        "path": "node",
        "rule": "contains a NUL character (\\u0000)",
    }
    assert api.get("/api/v1/runs?node=%FF").json()["rule"] == "is not valid UTF-8"
    assert api.get("/api/v1/runs/a%00b").json()["path"] == "path"


def test_a_nul_in_a_json_body_is_a_400_naming_its_path(api: Any, admin_key: str) -> None:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_key}")
    keys = ApiKey.objects.count()
    response = api.post("/api/v1/api-keys", {"name": "a\x00b"}, format="json")

    assert response.status_code == 400
    assert response.json()["path"] == "$.name"
    assert response.json()["rule"] == "contains a NUL character (\\u0000)"
    assert ApiKey.objects.count() == keys
    bad = api.post("/api/v1/api-keys", b'{"name": "\xff"}', content_type="application/json")
    assert (bad.status_code, bad.json()["path"]) == (400, "$")


def test_a_nul_in_a_page_form_is_the_400_page(project: Project) -> None:
    admin = get_user_model().objects.create_user("ada", password="pw-ada-123")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    client = DjangoClient()
    client.force_login(admin)

    response = client.post(
        f"/projects/{project.slug}/settings/", {"action": "create_key", "name": "a\x00b"}
    )

    assert response.status_code == 400
    assert b"name: contains a NUL character" in response.content
    assert b"<!doctype html>" in response.content[:20]
    assert not project.api_keys.exists()
    login = DjangoClient().post("/login/", {"username": "ada\x00", "password": "x"})
    assert login.status_code == 400
    assert b"username: contains a NUL character" in login.content


@pytest.fixture
def admin_key(project: Project) -> str:
    return ApiKey.issue(project, "admin", scope=KeyScope.ADMIN)[1]


@real_server
def test_a_websocket_with_nul_or_invalid_utf8_is_refused_at_the_handshake(
    server: Daphne, world: dict[str, Any]
) -> None:
    """Every websocket route, with NUL / %FF in each string parameter and in the query:
    refused before a consumer looks its run up (which answered PostgreSQL's DataError by
    dropping the socket with 1011)."""
    values = world["values"]
    tried = 0
    for route in websocket_urlpatterns:
        pattern = str(route.pattern)
        variants = [
            fill(pattern, values, name, bad)
            for name in string_params(pattern)
            for bad in ("a%00b", "a%FFb")
        ]
        variants += [f"{fill(pattern, values)}?project={bad}" for bad in ("a%00b", "%FF")]
        for path in variants:
            tried += 1
            with pytest.raises(InvalidStatus) as refused:
                server.websocket(path, cookie=world["session"])
            assert refused.value.response.status_code == 403, path
    assert tried >= 6
    # ... and a clean one still connects.
    with server.websocket(
        fill(str(websocket_urlpatterns[1].pattern), values), world["session"]
    ) as ws:
        assert ws.receive()["type"] == "subscribed"
