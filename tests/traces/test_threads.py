"""traces/messages.py and traces/threads.py: chat messages of the OpenAI, LangChain and
DashFlow shapes read as one, and a thread's runs with the messages each one added."""

from __future__ import annotations

import json
from typing import Any

import pytest

from traces import threads
from traces.errors import InputError
from traces.ingest import ingest_trace
from traces.messages import MAX_CONTENT_CHARS, added_messages, chat_message
from traces.models import Project, Run
from traces.parsing import parse_trace


def thread_trace(
    execution_id: str,
    thread_id: str,
    minute: int,
    messages: list[Any] | None,
    *,
    completed: bool = True,
) -> bytes:
    """A one-step run of ``thread_id`` whose state ends holding ``messages``."""
    after: dict[str, Any] = {"turn": minute}
    if messages is not None:
        after["messages"] = messages
    started = f"2026-03-02T09:{minute // 60:02d}:{minute % 60:02d}.000+00:00"
    node = {
        "node": "chat",
        "duration_ms": 120,
        "tokens_used": 42,
        "state_before": {"turn": minute - 1},
        "state_after": after,
        "tools_called": [],
        "success": True,
        "index": 0,
        "started_at": started,
    }
    trace: dict[str, Any] = {
        "execution_id": execution_id,
        "thread_id": thread_id,
        "nodes_executed": [node],
        "total_duration_ms": 120,
        "total_tokens": 42,
        "errors": [],
        "completed": completed,
        "started_at": started,
        "final_state": after if completed else None,
        "metadata": {"graph_name": "chat"},
    }
    return json.dumps(trace).encode()


def store(project: Project, *args: Any, **kwargs: Any) -> Run:
    run, _ = ingest_trace(project, parse_trace(thread_trace(*args, **kwargs)))
    return run


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_openai_langchain_and_dashflow_messages_read_as_one_shape() -> None:
    openai = chat_message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"q":"x"}'},
                }
            ],
        }
    )
    assert openai == {
        "role": "assistant",
        "name": "",
        "content": "",
        "cut": 0,
        "tool_calls": [{"id": "c1", "name": "search", "arguments": '{"q":"x"}'}],
    }
    parts = chat_message(
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}
    )
    assert (parts["role"], parts["content"]) == ("user", "hi\n[image_url]")
    langchain = chat_message(
        {
            "type": "ai",
            "content": "ok",
            "tool_calls": [{"name": "fetch", "args": {"url": "u"}, "id": "t"}],
        }
    )
    assert (langchain["role"], langchain["tool_calls"]) == (
        "assistant",
        [{"id": "t", "name": "fetch", "arguments": '{"url":"u"}'}],
    )
    dumped = chat_message(
        {
            "lc": 1,
            "type": "constructor",
            "id": ["langchain", "schema", "messages", "ToolMessage"],
            "kwargs": {"content": "42", "name": "calc", "tool_call_id": "t"},
        }
    )
    assert (dumped["role"], dumped["name"], dumped["content"]) == ("tool", "calc", "42")
    dashflow = chat_message({"type": "human", "content": "hello", "fields": {}})
    assert (dashflow["role"], dashflow["content"]) == ("user", "hello")
    # Anything else is kept, as its JSON, not dropped.
    odd = chat_message({"speaker": "x", "text": "y"})
    assert odd["role"] == "unknown"
    assert '"speaker":"x"' in odd["content"]
    assert chat_message(7)["content"] == "7"
    long = chat_message(user("a" * (MAX_CONTENT_CHARS + 5)))
    assert (len(long["content"]), long["cut"]) == (MAX_CONTENT_CHARS, 5)


def test_a_run_adds_what_follows_the_previous_runs_messages_or_by_id_when_they_have_ids() -> None:
    assert added_messages(None, [user("a")]) == [user("a")]
    assert added_messages([user("a"), bot("b")], [user("a"), bot("b"), user("c")]) == [user("c")]
    # A state that starts over shares no prefix: all of it is this run's.
    assert added_messages([user("a")], [user("z"), bot("y")]) == [user("z"), bot("y")]
    with_ids = [
        {"type": "human", "content": "a", "id": "1"},
        {"type": "ai", "content": "b", "id": "2"},
    ]
    trimmed = [with_ids[1], {"type": "human", "content": "c", "id": "3"}]
    assert added_messages(with_ids, trimmed) == [trimmed[1]]


@pytest.mark.django_db
def test_a_thread_lists_its_runs_oldest_first_with_each_runs_new_messages(project: Project) -> None:
    store(project, "r1", "t/1", 1, [user("hi"), bot("hello")])
    store(project, "r2", "t/1", 2, [user("hi"), bot("hello"), user("more"), bot("sure")])
    store(project, "r3", "t/1", 3, None)  # a run whose state holds no messages
    store(
        project, "r4", "t/1", 4, [user("hi"), bot("hello"), user("more"), bot("sure"), user("end")]
    )
    store(project, "other", "t/2", 5, [user("elsewhere")])

    page = threads.thread_page(project, "t/1")

    assert page is not None
    assert [t.run.execution_id for t in page.turns] == ["r1", "r2", "r3", "r4"]
    assert [[m["content"] for m in t.messages] for t in page.turns] == [
        ["hi", "hello"],
        ["more", "sure"],
        [],
        ["end"],
    ]
    assert [t.state for t in page.turns] == ["ok", "ok", "none", "ok"]
    assert (page.total, page.older, page.newer) == (4, None, False)
    assert threads.thread_page(project, "nobody") is None


@pytest.mark.django_db
def test_a_long_thread_is_read_a_page_at_a_time(project: Project, monkeypatch: Any) -> None:
    monkeypatch.setattr(threads, "PAGE_RUNS", 3)
    history: list[Any] = []
    for i in range(7):
        history = [*history, user(f"q{i}")]
        store(project, f"run-{i}", "long", i + 1, history)
    # A run still running: its last step's state stands for its final one.
    store(project, "run-7", "long", 8, [*history, user("q7")], completed=False)

    latest = threads.thread_page(project, "long")
    assert latest is not None
    assert [t.run.execution_id for t in latest.turns] == ["run-5", "run-6", "run-7"]
    # run-5's new message counts against run-4, which is not on the page.
    assert [[m["content"] for m in t.messages] for t in latest.turns] == [["q5"], ["q6"], ["q7"]]
    assert (latest.total, latest.older, latest.newer) == (8, "run-5", False)

    older = threads.thread_page(project, "long", before="run-5")
    assert older is not None
    assert [t.run.execution_id for t in older.turns] == ["run-2", "run-3", "run-4"]
    assert (older.older, older.newer) == ("run-2", True)
    oldest = threads.thread_page(project, "long", before="run-2")
    assert oldest is not None
    assert [t.run.execution_id for t in oldest.turns] == ["run-0", "run-1"]
    assert [[m["content"] for m in t.messages] for t in oldest.turns] == [["q0"], ["q1"]]
    assert oldest.older is None
    with pytest.raises(InputError) as refused:
        threads.thread_page(project, "long", before="not-in-this-thread")
    assert refused.value.path == "before"


@pytest.mark.django_db
def test_a_state_over_the_limit_is_not_read(project: Project, monkeypatch: Any) -> None:
    monkeypatch.setattr(threads, "MAX_STATE_BYTES", 200)
    store(project, "small", "big", 1, [user("short")])
    store(project, "large", "big", 2, [user("short"), user("x" * 500)])

    page = threads.thread_page(project, "big")

    assert page is not None
    assert [t.state for t in page.turns] == ["ok", "too_large"]
    assert page.turns[1].messages == []
