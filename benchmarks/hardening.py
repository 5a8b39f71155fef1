"""Hardening benchmark: what oversized bodies and websocket clients that do not read cost
the server's memory.

Run from the project root::

    .venv/bin/python benchmarks/hardening.py [--against REV]

Starts Daphne as ``make run`` does (``daphne -b 127.0.0.1 -p <port>
dashflow_site.asgi:application``) on the embedded defaults (SQLite in a temporary
``VAR_DIR``, the in-memory channel layer; no shared service is touched), and samples its
resident memory (``VmRSS`` in ``/proc``, every 10 ms) before, at the peak during, and after
each scenario:

* A. three concurrent anonymous ``POST /api/v1/traces`` of 300 MB with a Content-Length,
  each streamed until the server answers or closes;
* B. the same, chunked (no declared length);
* B2. three concurrent 20 MB posts with a forged ``Authorization: Bearer`` key;
* C. one anonymous POST declaring a Content-Length of 10^12;
* D. one 20 MB trace by an API key (the largest body accepted), for scale;
* E0. 5,000 live events of 16 KB posted with no viewer: what ingesting them costs;
* E. the same to one viewer that never reads and sends ``{"type":
  "ack"}`` and an ack of a seq never sent after every batch;
* F. a replay of those 5,000 events to three viewers that never read (nor ack);
* G. 5,000 live events of 16 KB to one viewer that never reads but acks every seq it was
  sent (they are consecutive, so it guesses them): the acks' bound never holds it back,
  Daphne's cap on unsent bytes (``WS_MAX_UNSENT_BYTES``) does;
* H. 400 runs with 100 KB of metadata each ingested while a project socket (no acks)
  never reads: their summaries.

"after" is read once the scenario's clients have gone (the server had 3 s to let go).
With ``--against REV`` the same scenarios run first against ``git archive REV`` in a
temporary directory (this virtualenv), for a before/after table. The table goes to
``benchmarks/results/hardening.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import drain, live_events, raw_websocket, send_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "hardening.md"
FIXTURE = ROOT.parent / "shared" / "fixtures" / "dashflow" / "research_agent_success.json"
DAPHNE = ROOT / ".venv" / "bin" / "daphne"
PYTHON = ROOT / ".venv" / "bin" / "python"
HOST = "127.0.0.1"
MB = 1024 * 1024
RUN = "hardening-live"
EVENTS, EVENT_BYTES, BATCH = 5000, 16 * 1024, 50
RUNS = 400  # scenario H: 40 MB of run summaries

# Run in the tree under test: a project, a member with a session, a write key.
SETUP = r"""
import json, django
django.setup()
from django.contrib.auth import get_user_model
from tests.servers import session_cookie
from traces.models import ApiKey, Membership, Project, Role
project = Project.objects.create(slug="bench", name="bench")
user = get_user_model().objects.create_user("bench", password="bench-pw-123")
Membership.objects.create(project=project, user=user, role=Role.MEMBER)
print(json.dumps({"key": ApiKey.issue(project)[1], "cookie": session_cookie(user)}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Peak(threading.Thread):
    """The highest RSS of ``pid`` while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, rss_mb(pid), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)

    def stop(self) -> float:
        self.running = False
        self.join()
        return self.peak


class Server:
    """Daphne over ``tree`` with its own SQLite database, as ``make run`` starts it."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.var = Path(tempfile.mkdtemp(prefix="hardening-"))
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env.update(
            DJANGO_SETTINGS_MODULE="dashflow_site.settings",
            VAR_DIR=str(self.var),
            ALLOWED_HOSTS=HOST,
            PYTHONPATH=str(tree),
        )
        subprocess.run(
            [str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=tree,
            env=self.env,
            check=True,
        )
        out = subprocess.run(
            [str(PYTHON), "-c", SETUP], cwd=tree, env=self.env, check=True, capture_output=True
        ).stdout
        setup = json.loads(out.decode().strip().splitlines()[-1])
        self.key: str = setup["key"]
        self.cookie: str = setup["cookie"]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        with (self.var / "daphne.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [str(DAPHNE), "-b", HOST, "-p", str(self.port), "dashflow_site.asgi:application"],
                cwd=self.tree,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(OSError):
                if request(self.port, "GET", "/login/")[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer:\n{(self.var / 'daphne.log').read_text()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def oversized(port: int, size: int, chunked: bool, key: str = "") -> dict[str, Any]:
    """One POST of ``size`` bytes (with ``key`` as its bearer, if any), sent until the
    server answers or closes."""
    began = time.monotonic()
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    if key:
        framing += f"\r\nAuthorization: Bearer {key}"
    piece = b"x" * 65536
    data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    sent = 0
    with socket.create_connection((HOST, port), timeout=300) as sock:
        sock.sendall(
            f"POST /api/v1/traces HTTP/1.1\r\nHost: {HOST}\r\n{framing}\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
        )
        try:
            while sent < size and not select.select([sock], [], [], 0)[0]:
                sock.sendall(data)
                sent += len(piece)
            if chunked and sent >= size:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        answer = b""
        with suppress(OSError):
            while b"\r\n" not in answer:
                more = sock.recv(4096)
                if not more:
                    break
                answer += more
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
    return {"status": status, "sent_mb": sent / MB, "seconds": time.monotonic() - began}


@contextmanager
def measuring(server: Server, row: dict[str, Any]) -> Iterator[None]:
    """Each scenario on a fresh Daphne: memory an earlier one freed but the allocator kept
    would otherwise hide what this one costs."""
    server.stop()
    server.start()
    row["before"] = rss_mb(server.pid)
    peak = Peak(server.pid)
    peak.start()
    try:
        yield
    finally:
        row["peak"] = peak.stop()


def settle(server: Server, row: dict[str, Any]) -> None:
    time.sleep(3)  # a benchmark's pause, not a test's: the server lets go of closed clients
    row["after"] = rss_mb(server.pid)


# -- websockets, raw: a client that never reads must not have a library reading for it --


def ws_open(server: Server, path: str) -> socket.socket | None:
    """A websocket that reads nothing past the handshake; None if the server refused it."""
    return raw_websocket(server.port, path, server.cookie)


def drained(sock: socket.socket) -> str:
    """What the server sent, read at last (``tests.servers.drain``), in words."""
    found = drain(sock)
    close = f", close {found.close_code}" if found.close_code is not None else ""
    resync = ", resync" if found.resync else ""
    return f"{found.size / MB:.1f} MB read{resync}{close}, {found.end}"


def post_events(server: Server, first: int, last: int, run: str = RUN) -> None:
    status, body = request(
        server.port,
        "POST",
        f"/api/v1/runs/{run}/events",
        json.dumps({"events": live_events(first, last, EVENT_BYTES)}).encode(),
        {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
    )
    assert status == 200, body[:300]


def feed(server: Server, run: str, acks: Callable[[int, int], list[dict[str, Any]]]) -> str:
    """Post ``EVENTS`` live events to ``run`` in batches, with a viewer that reads nothing
    and sends ``acks(first, last)`` after each batch; what happened, in words."""
    post_events(server, 1, 1, run)
    viewer = ws_open(server, f"/ws/runs/{run}/?after=0")
    assert viewer is not None, "the viewer was refused"
    began = time.monotonic()
    for first in range(2, EVENTS + 1, BATCH):
        last = min(first + BATCH - 1, EVENTS)
        post_events(server, first, last, run)
        with suppress(OSError):
            for ack in acks(first, last):
                send_text(viewer, ack)
    posted = time.monotonic() - began
    notes = f"posted in {posted:.1f} s; the viewer: {drained(viewer)}"
    viewer.close()
    return notes


def scenarios(tree: Path) -> list[dict[str, Any]]:
    server = Server(tree)
    rows: list[dict[str, Any]] = []
    try:
        for name, chunked in (("A", False), ("B", True)):
            label = "chunked" if chunked else "with Content-Length"
            row: dict[str, Any] = {"scenario": f"{name}. 3 anonymous 300 MB posts, {label}"}
            log(row["scenario"])
            with measuring(server, row), ThreadPoolExecutor(3) as pool:
                posts = [pool.submit(oversized, server.port, 300 * MB, chunked) for _ in range(3)]
                results = [post.result() for post in posts]
            settle(server, row)
            row["notes"] = "; ".join(
                f"{r['status']} after {r['sent_mb']:.1f} MB sent, {r['seconds']:.2f} s"
                for r in results
            )
            rows.append(row)

        row = {"scenario": "B2. 3 posts of 20 MB with a forged bearer key"}
        log(row["scenario"])
        with measuring(server, row), ThreadPoolExecutor(3) as pool:
            posts = [
                pool.submit(oversized, server.port, 20 * MB, False, "dfk_forged") for _ in range(3)
            ]
            results = [post.result() for post in posts]
        settle(server, row)
        row["notes"] = "; ".join(
            f"{r['status']} after {r['sent_mb']:.1f} MB sent, {r['seconds']:.2f} s" for r in results
        )
        rows.append(row)

        row = {"scenario": "C. 1 anonymous post declaring Content-Length 10^12"}
        log(row["scenario"])
        with measuring(server, row):
            began = time.monotonic()
            with socket.create_connection((HOST, server.port), timeout=300) as sock:
                sock.sendall(
                    b"POST /api/v1/traces HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 1000000000000\r\n\r\n"
                )
                sock.settimeout(30)
                try:
                    answer = sock.recv(4096)
                except TimeoutError:
                    answer = b"no answer in 30 s"
            row["notes"] = f"{answer[:32]!r} after {time.monotonic() - began:.2f} s"
        settle(server, row)
        rows.append(row)

        row = {"scenario": "D. 1 trace of 20 MB by an API key (accepted)"}
        log(row["scenario"])
        trace = json.loads(FIXTURE.read_bytes())
        trace["nodes_executed"][0]["state_after"]["notes"] = "n" * (20 * MB - 64 * 1024)
        body = json.dumps(trace).encode()
        with measuring(server, row):
            began = time.monotonic()
            status, _ = request(
                server.port,
                "POST",
                "/api/v1/traces",
                body,
                {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
            )
            row["notes"] = f"{status} in {time.monotonic() - began:.2f} s"
        settle(server, row)
        rows.append(row)

        row = {"scenario": f"E0. {EVENTS:,} x 16 KB live events posted, no viewer (control)"}
        log(row["scenario"])
        with measuring(server, row):
            began = time.monotonic()
            for first in range(1, EVENTS + 1, BATCH):
                post_events(server, first, min(first + BATCH - 1, EVENTS), "control")
            row["notes"] = f"posted in {time.monotonic() - began:.1f} s"
        settle(server, row)
        rows.append(row)

        row = {"scenario": f"E. {EVENTS:,} x 16 KB live events, 1 viewer acking without reading"}
        log(row["scenario"])
        with measuring(server, row):
            row["notes"] = feed(
                server, RUN, lambda first, last: [{"type": "ack"}, {"type": "ack", "seq": 10**9}]
            )
        settle(server, row)
        rows.append(row)

        row = {"scenario": f"F. replay of {EVENTS:,} x 16 KB events to 3 viewers not reading"}
        log(row["scenario"])
        with measuring(server, row):
            opened = [ws_open(server, f"/ws/runs/{RUN}/?after=0") for _ in range(3)]
            viewers = [viewer for viewer in opened if viewer is not None]
            time.sleep(5)  # what the server does for them meanwhile is what is measured
            row["notes"] = "after 5 s, each viewer: " + "; ".join(drained(v) for v in viewers)
            if len(viewers) < len(opened):
                row["notes"] += f"; {len(opened) - len(viewers)} refused at the handshake"
            for viewer in viewers:
                viewer.close()
        settle(server, row)
        rows.append(row)

        row = {
            "scenario": f"G. {EVENTS:,} x 16 KB live events, 1 viewer acking every seq"
            " (guessed) without reading"
        }
        log(row["scenario"])
        with measuring(server, row):
            # Seqs are consecutive: it names each one it was sent, reading none.
            row["notes"] = feed(
                server,
                "guessed",
                lambda first, last: [{"type": "ack", "seq": seq} for seq in range(first, last + 1)],
            )
        settle(server, row)
        rows.append(row)

        row = {"scenario": f"H. {RUNS} runs with 100 KB of metadata, 1 project socket not reading"}
        log(row["scenario"])
        trace = json.loads(FIXTURE.read_bytes())
        trace["metadata"] = {"notes": "m" * 100 * 1024}
        with measuring(server, row):
            viewer = ws_open(server, "/ws/projects/bench/runs/")
            assert viewer is not None, "the socket was refused"
            began = time.monotonic()
            for number in range(RUNS):
                trace["execution_id"] = f"hardening-project-{number}"
                status, body = request(
                    server.port,
                    "POST",
                    "/api/v1/traces",
                    json.dumps(trace).encode(),
                    {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
                )
                assert status in (200, 201), body[:300]
            posted = time.monotonic() - began
            row["notes"] = f"posted in {posted:.1f} s; the socket: {drained(viewer)}"
            viewer.close()
        settle(server, row)
        rows.append(row)
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", help="a git revision to measure first, for comparison")
    args = parser.parse_args()
    theirs: list[dict[str, Any]] = []
    if args.against:
        other = Path(tempfile.mkdtemp(prefix="hardening-tree-"))
        archive = subprocess.run(
            ["git", "archive", args.against], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(other)], input=archive, check=True)
        log(f"== {args.against}")
        theirs = scenarios(other)
    log("== this tree")
    mine = scenarios(ROOT)
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Hardening: server memory under oversized bodies and websocket clients that do not read",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; this tree: {rev}"
        + (f"; compared with: {args.against}" if args.against else ""),
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}; load average {load}",
        "- Command: `.venv/bin/python benchmarks/hardening.py"
        + (f" --against {args.against}" if args.against else "")
        + "`",
        "- One Daphne as `make run` starts it, embedded defaults (SQLite, in-memory layer);"
        " RSS of the Daphne process in MB: before, peak during, after (3 s after the clients"
        " went); each scenario on a fresh Daphne. Bounds: ANONYMOUS_MAX_BODY_BYTES 64 KB,"
        " TRACE_MAX_BODY_BYTES 20 MB, WS_MAX_PENDING_BYTES 8 MB, WS_MAX_UNSENT_BYTES 10 MB"
        " (this tree only).",
        "",
    ]
    header = "| Scenario | this tree: before / peak / after | what happened |"
    rule = "|---|---|---|"
    if theirs:
        header = (
            f"| Scenario | {args.against}: before / peak / after | this tree"
            f" | {args.against}: what happened | this tree |"
        )
        rule = "|---|---|---|---|---|"
    lines += [header, rule]
    for i, row in enumerate(mine):
        cells = f"{row['before']:.0f} / {row['peak']:.0f} / {row['after']:.0f}"
        if theirs:
            old = theirs[i]
            old_cells = f"{old['before']:.0f} / {old['peak']:.0f} / {old['after']:.0f}"
            lines.append(
                f"| {row['scenario']} | {old_cells} | {cells} | {old['notes']} | {row['notes']} |"
            )
        else:
            lines.append(f"| {row['scenario']} | {cells} | {row['notes']} |")
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
