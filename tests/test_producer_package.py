"""The producer client stands alone: a fresh virtualenv holding dashflow-producer and
nothing else (no Django, nothing of the server) streams a run that the real server stores.

The virtualenv's pip installs the package from a wheel, offline: the wheel is built by this
environment's setuptools (the new venv's bundled setuptools 65.5 would also need the
``wheel`` package, that is, the network), from a copy of producer/ because setuptools
writes build/ and *.egg-info/ beside the sources it builds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.servers import Daphne, daphne, database_url, server_env

ROOT = Path(__file__).resolve().parent.parent
AGENT = Path(__file__).resolve().with_name("standalone_agent.py")
RUN = "standalone-agent-run"

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (within ``timeout``); its output, whatever its status."""
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, check=False
    )


def checked(*args: str | Path) -> str:
    done = run(*args)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def agent_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a new virtualenv in which only pip, its bundled setuptools and
    dashflow-producer are installed."""
    tmp = tmp_path_factory.mktemp("producer-package")
    source = shutil.copytree(
        ROOT / "producer",
        tmp / "producer",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    checked(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
        "--no-build-isolation", "--wheel-dir", tmp / "dist", source,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("dashflow_producer-*.whl")
    venv.create(tmp / "venv", with_pip=True)
    python = tmp / "venv" / "bin" / "python"
    # -I everywhere: no PYTHONPATH, user site or working directory leaks the checkout in.
    checked(python, "-I", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    return python


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_with_only_the_package_installed_an_agent_streams_a_run_the_server_stores(
    agent_python: Path, server: Daphne, api_key: str
) -> None:
    for module in ("django", "traces"):
        missing = run(agent_python, "-I", "-c", f"import {module}")
        assert missing.returncode != 0, f"{module} is importable beside dashflow-producer"
        assert f"No module named '{module}'" in missing.stderr
    # pip check fails on any dependency the package declares: it must declare none.
    assert "No broken requirements" in checked(agent_python, "-I", "-m", "pip", "check")

    outcome = json.loads(checked(agent_python, "-I", AGENT, server.origin, api_key, RUN))

    assert outcome["delivered"] is True
    venv_dir = agent_python.parent.parent
    assert Path(outcome["package"]).is_relative_to(venv_dir), outcome["package"]
    # run_started, node_started + node_finished twice, run_finished
    stats = outcome["stats"]
    assert (stats["sent"], stats["dropped"], stats["retried"]) == (6, 0, 0), stats
    # close() returned only once the server had answered 2xx for every event: stored.
    response = server.request(
        "GET", f"/api/v1/runs/{RUN}", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status == 200, response.body
    stored = response.json()
    assert stored["status"] == "completed"
    assert (stored["graph_name"], stored["thread_id"]) == ("standalone", "standalone-1")
    assert (stored["last_seq"], stored["missing_seqs"], stored["node_count"]) == (6, 0, 2)
    assert stored["total_tokens"] == 420  # what run_finished defaults to: the nodes' tokens
    nodes = [(n["index"], n["node"], n["tokens_used"], n["has_state"]) for n in stored["nodes"]]
    assert nodes == [(0, "planner", 120, True), (1, "writer", 300, True)]
