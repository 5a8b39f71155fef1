"""Real servers for the live tests (and the benchmarks): Daphne, a private Redis, a private
PostgreSQL, sessions and a small websocket client.

A test that talks to a Daphne subprocess must use a transactional database
(``django_db(transaction=True)``) so that what it writes is committed and visible to the
server, and it passes the server the *test* database (``database_url``).
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
DAPHNE = ROOT / ".venv" / "bin" / "daphne"
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")
HOST = "127.0.0.1"


def free_port() -> int:
    """A port free right now; a server that loses the race for it is started again."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A ``DATABASE_URL`` for the database of a Django connection's ``settings_dict``.

    Inside a test that is the test database (pytest-django has renamed it, with a ``_gwN``
    suffix under xdist), which is what a server subprocess must use.
    """
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine == "django.db.backends.sqlite3":
        if name in ("", ":memory:") or name.startswith("file:"):
            raise ValueError(f"SQLite database {name!r} cannot be shared with a subprocess")
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
        host = settings_dict.get("HOST") or "localhost"
        if ":" in host:
            host = f"[{host}]"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{credentials}{host}{port}/{quote(name, safe='')}"
    raise ValueError(f"no DATABASE_URL for {engine}")


def server_env(
    db_url: str,
    redis_url: str | None = None,
    allowed_hosts: str = HOST,
    **extra: str,
) -> dict[str, str]:
    """The environment of a server subprocess: ours, with the database, the channel layer
    (Redis only when ``redis_url`` is given, never inherited) and ``extra`` variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")
    env["DATABASE_URL"] = db_url
    env["ALLOWED_HOSTS"] = allowed_hosts
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


@dataclass
class Response:
    status: int
    body: bytes
    headers: http.client.HTTPMessage | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name) if self.headers is not None else None

    def json(self) -> Any:
        return json.loads(self.body)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Daphne:
    """One Daphne process serving ``dashflow_site.asgi:application`` on a free port."""

    def __init__(self, env: Mapping[str, str], port: int | None = None) -> None:
        self.env = dict(env)
        self.port = port or free_port()
        handle, name = tempfile.mkstemp(prefix="daphne-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Spawn the process; ``wait_ready`` waits for it to answer."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(DAPHNE), "-b", HOST, "-p", str(self.port), "dashflow_site.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daphne on port {self.port} exited with {self.proc.returncode}:\n"
                    + self.log_tail()
                )
            try:
                self.request("GET", "/api/v1/runs", timeout=5)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"daphne on port {self.port} did not answer:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Response:
        """One HTTP request; a body that is not bytes is sent as JSON."""
        all_headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return Response(response.status, response.read(), response.headers)
        finally:
            conn.close()

    def websocket(
        self, path: str, cookie: str | None = None, origin: str | None = None
    ) -> WsClient:
        """A websocket to this server, from its own origin unless ``origin`` is given."""
        return WsClient(f"ws://{HOST}:{self.port}{path}", cookie, origin or self.origin)


def start_daphnes(*envs: Mapping[str, str], attempts: int = 3) -> list[Daphne]:
    """Start one Daphne per env, side by side (each takes a second or two to import
    Django), and wait until all answer. A server that lost its port is retried."""
    servers = [Daphne(env) for env in envs]
    try:
        for server in servers:
            server.start()
        for i, server in enumerate(servers):
            for attempt in range(1, attempts + 1):
                try:
                    server.wait_ready()
                    break
                except RuntimeError:
                    if attempt == attempts or "Address already in use" not in server.log_tail():
                        raise
                    server.stop()
                    server = servers[i] = Daphne(server.env)
                    server.start()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@contextmanager
def daphne(env: Mapping[str, str]) -> Iterator[Daphne]:
    """A running Daphne for the block, stopped (terminate, then kill) however it ends."""
    (server,) = start_daphnes(env)
    try:
        yield server
    finally:
        # pytest shows a test's captured output when it fails: the server's side of it.
        print(f"--- daphne on port {server.port} (last lines) ---\n{server.log_tail()}")
        server.stop()


class RedisServer:
    """A private ``redis-server`` with no persistence, on a port of its own.

    ``kill`` simulates a crash; ``start`` again brings it back on the same port, empty.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        handle, name = tempfile.mkstemp(prefix="redis-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        # A file, not a pipe, for its output: a pipe nobody reads would block it when full.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(self.port),
                    "--bind",
                    HOST,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                tail = _tail(self.log_path)
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: gone at once, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, timeout=5)
        self.log_path.unlink(missing_ok=True)


@contextmanager
def redis_server(attempts: int = 3) -> Iterator[RedisServer]:
    """A running private Redis for the block (a port lost to a race is retried)."""
    for attempt in range(1, attempts + 1):
        server = RedisServer()
        try:
            server.start()
            break
        except RuntimeError:
            server.stop()
            if attempt == attempts:
                raise
    try:
        yield server
    finally:
        server.stop()


class PostgresServer:
    """A private PostgreSQL cluster (``initdb`` into a temporary directory, trust auth) on
    a port of its own, that a test may stop and start again. As root the cluster belongs
    to the ``postgres`` user (PostgreSQL refuses to run as root)."""

    def __init__(self, port: int | None = None) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found and not shutil.which("pg_ctl"):
            raise RuntimeError("pg_ctl not found: install postgresql")
        self.bin = Path(found[-1]).parent if found else Path(shutil.which("pg_ctl") or "").parent
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start it and wait until it accepts connections (``pg_ctl -w``)."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """Fast shutdown: every client connection is cut, as in a restart."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def remove(self) -> None:
        with suppress(RuntimeError, subprocess.TimeoutExpired):
            if (self.data / "postmaster.pid").exists():
                self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_server(attempts: int = 3) -> Iterator[PostgresServer]:
    """A running private PostgreSQL for the block, removed however it ends."""
    for attempt in range(1, attempts + 1):
        server = PostgresServer()
        try:
            server.start()
            break
        except RuntimeError:
            print(server.log_tail())
            server.remove()
            if attempt == attempts:
                raise
    try:
        yield server
    finally:
        server.remove()


def with_redis_db(url: str, db: int) -> str:
    """``url`` with another database number (``redis://host:port/<db>``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"{url!r}: only redis:// and rediss:// URLs carry a database number")
    return urlunsplit(parts._replace(path=f"/{db}"))


def session_cookie(user: Any) -> str:
    """A logged-in session for ``user``, stored in the database; the cookie's value.

    Must run where the ORM writes to the database the server reads (a transactional test).
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    key: str = store.session_key
    return key


class WsClient:
    """A synchronous websocket client that speaks JSON, with timeouts everywhere."""

    def __init__(self, url: str, cookie: str | None = None, origin: str | None = None) -> None:
        from django.conf import settings

        headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"} if cookie else {}
        # websockets 17 wants connect() entered as a context manager; the stack keeps it
        # open across calls and closes it in close().
        self._stack = ExitStack()
        self.connection: ClientConnection = self._stack.enter_context(
            connect(
                url,
                origin=origin,  # type: ignore[arg-type]
                additional_headers=headers,
                proxy=None,  # never through an HTTP(S)_PROXY from the environment
                open_timeout=10,
                close_timeout=2,
            )
        )
        self.pending: deque[Any] = deque()  # the rest of an array frame

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def receive(self, timeout: float = 10.0) -> Any:
        """The next message, parsed; ``TimeoutError`` if none arrives in time. A frame
        holding an array of events gives them one by one, as the browser takes them."""
        if self.pending:
            return self.pending.popleft()
        message = json.loads(self.connection.recv(timeout=timeout))
        if isinstance(message, list):
            assert message, "an empty array frame"
            self.pending.extend(message[1:])
            return message[0]
        return message

    def receive_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` messages, each of which must be an event (has a ``seq``)."""
        events = []
        for _ in range(count):
            message = self.receive(timeout)
            assert "seq" in message, f"expected an event, got {message}"
            events.append(message)
        return events

    def receive_until_seq(self, seq: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every message up to and including the event ``seq``."""
        messages = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"seq {seq} did not arrive in {timeout} s: got {messages}")
            message = self.receive(remaining)
            messages.append(message)
            if message.get("seq") == seq:
                return messages

    def silent_for(self, seconds: float) -> bool:
        """True when nothing arrives for ``seconds`` and the connection stays open."""
        assert not self.pending, f"expected silence, have {list(self.pending)!r}"
        try:
            message = self.connection.recv(timeout=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {message!r}")

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the connection; its close code.

        A message received before the close is an error: the tests that wait for a close
        expect the server to send nothing first.
        """
        try:
            message = self.connection.recv(timeout=timeout)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        raise AssertionError(f"expected a close, got {message!r}")

    def close(self) -> None:
        with suppress(OSError, ConnectionClosed):
            self._stack.close()


# -- websockets, raw: a client that never reads must not have a library reading for it --


def raw_websocket(
    port: int,
    path: str,
    cookie: str | None = None,
    receive_buffer: int | None = None,
    cookie_name: str = "sessionid",
) -> socket.socket | None:
    """A websocket that reads nothing past the handshake (read one byte at a time up to
    its end); None if the server refused it. ``receive_buffer`` shrinks the client's
    receive buffer (before connecting, so the window the server sees stays small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect((HOST, port))
    cookie_line = f"Cookie: {cookie_name}={cookie}\r\n" if cookie else ""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://{HOST}:{port}\r\n{cookie_line}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        return None
    return sock


def live_events(first: int, last: int, state_bytes: int) -> list[dict[str, Any]]:
    """Live events ``first..last``, each a ``node_finished`` with a state of about
    ``state_bytes`` bytes."""
    return [
        {
            "seq": seq,
            "type": "node_finished",
            "data": {
                "node": "worker",
                "index": seq,
                "duration_ms": 1,
                "state_after": {"seq": seq, "notes": "n" * state_bytes},
            },
        }
        for seq in range(first, last + 1)
    ]


def send_text(sock: socket.socket, message: Any) -> None:
    """Send ``message`` as JSON in one masked text frame (as a client must)."""
    payload = json.dumps(message).encode()
    mask = os.urandom(4)
    assert len(payload) < 126, "a small message"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


@dataclass
class Drained:
    """What a raw websocket had been sent, read at last."""

    size: int  # bytes read
    texts: int  # whole text frames among them
    resync: bool  # a {"type": "resync"} message among them
    close_code: int | None  # the code of the close frame read, if one was
    end: str  # "closed by the server", "reset by the server" or "still open"


def drain(sock: socket.socket, quiet: float = 5.0) -> Drained:
    """Read what the server sent until it closed, reset the connection (the client's
    unread bytes are then lost) or was silent for ``quiet`` seconds; frames are parsed
    as they come, so only the unparsed tail is held."""
    sock.settimeout(quiet)
    pending = b""
    found = Drained(0, 0, False, None, "still open")
    try:
        while more := sock.recv(1 << 20):
            found.size += len(more)
            pending += more
            while len(pending) >= 2:
                length, start = pending[1] & 0x7F, 2
                if length == 126:
                    length, start = int.from_bytes(pending[2:4]), 4
                elif length == 127:
                    length, start = int.from_bytes(pending[2:10]), 10
                if len(pending) < start + length:
                    break
                opcode, payload = pending[0] & 0x0F, pending[start : start + length]
                pending = pending[start + length :]
                if opcode == 0x1:
                    found.texts += 1
                    found.resync = found.resync or payload.startswith(b'{"type": "resync"')
                elif opcode == 0x8 and len(payload) >= 2:
                    found.close_code = int.from_bytes(payload[:2])
        found.end = "closed by the server"
    except ConnectionResetError:
        found.end = "reset by the server"
    except TimeoutError:
        pass
    return found
