"""A state's chat messages as one transcript: the OpenAI, LangChain and DashFlow shapes,
the messages a step added marked new, long texts cut with their longer form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traces.chat import MESSAGES_MAX, TEXT_CHARS, transcript
from traces.jsondiff import diff

OPENAI = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]
# LangChain's model_dump without empty fields (dashflow_producer.langgraph) and DashFlow's
# Rust Message: both tagged by "type", tool calls with "args".
LANGCHAIN = [
    {"type": "human", "content": "Weather in Paris?", "id": "m1"},
    # The producer drops empty fields: an AI message that only calls a tool has no content.
    {"type": "ai", "tool_calls": [{"name": "lookup", "args": {"city": "Paris"}, "id": "call_1"}]},
    {"type": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "lookup"},
]
DUMPD = {
    "lc": 1,
    "type": "constructor",
    "id": ["langchain", "schema", "messages", "AIMessage"],
    "kwargs": {"content": "It is sunny.", "type": "ai"},
}


def roles(state: Any) -> list[tuple[str, str]]:
    found = transcript(state)
    assert found is not None
    return [(m["role"], m["text"]["text"]) for m in found["messages"]]


def test_openai_messages_read_as_roles_text_and_tool_calls() -> None:
    found = transcript({"messages": OPENAI})

    assert found is not None
    assert found["path"] == "/messages"
    assert roles({"messages": OPENAI}) == [
        ("system", "You are terse."),
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "sunny"),
    ]
    call = found["messages"][2]["tool_calls"]
    assert call == [{"id": "call_1", "name": "lookup", "arguments": '{"city": "Paris"}'}]
    assert found["messages"][3]["tool_call_id"] == "call_1"


def test_langchain_and_dashflow_messages_read_the_same_way() -> None:
    found = transcript({"messages": [*LANGCHAIN, DUMPD]})

    assert found is not None
    assert [(m["role"], m["text"]["text"]) for m in found["messages"]] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "sunny"),
        ("assistant", "It is sunny."),
    ]
    assert found["messages"][1]["tool_calls"] == [
        {"id": "call_1", "name": "lookup", "arguments": '{"city":"Paris"}'}
    ]
    assert found["messages"][2]["name"] == "lookup"


def test_the_messages_a_step_added_are_new_and_edited_ones_changed() -> None:
    before = {"messages": LANGCHAIN[:2], "notes": []}
    after = {
        "messages": [{**LANGCHAIN[0], "content": "Weather in Lyon?"}, *LANGCHAIN[1:]],
        "notes": [],
    }

    found = transcript(after, diff(before, after))

    assert found is not None
    assert [(m["index"], m["new"], m["changed"]) for m in found["messages"]] == [
        (0, False, True),
        (1, False, False),
        (2, True, False),
    ]


def test_a_list_of_messages_as_the_whole_state_is_a_transcript() -> None:
    found = transcript(LANGCHAIN[:1], diff([], LANGCHAIN[:1]))

    assert found is not None
    assert found["path"] == ""
    assert found["messages"][0]["new"] is True


def test_states_without_chat_messages_have_no_transcript(fixtures_dir: Path) -> None:
    autopersisted = json.loads((fixtures_dir / "executor_autopersisted.json").read_text())

    assert transcript(autopersisted["final_state"]) is None  # messages: ["hi"]
    assert transcript({"messages": []}) is None
    assert transcript({"messages": [{"role": "user", "content": "a"}, {"x": 1}]}) is None
    assert transcript({"notes": ["a"]}) is None
    # OpenAI's tool definitions are tagged "function" but are not messages.
    assert transcript({"messages": [{"type": "function", "function": {"name": "f"}}]}) is None
    assert transcript(None) is None


def test_the_shared_fixtures_messages_are_a_transcript(fixtures_dir: Path) -> None:
    run = json.loads((fixtures_dir / "research_agent_success.json").read_text())
    node = run["nodes_executed"][0]  # the planner adds its plan to the messages

    found = transcript(node["state_after"], diff(node["state_before"], node["state_after"]))

    assert found is not None
    assert found["messages"][0]["role"] == "user"
    new = [m["index"] for m in found["messages"] if m["new"]]
    assert new == [1]
    assert found["total"] == 2


def test_a_long_text_is_cut_with_its_longer_form_and_long_lists_keep_the_latest() -> None:
    text = "é" * (TEXT_CHARS * 2)
    messages = [{"role": "user", "content": f"m{i}"} for i in range(MESSAGES_MAX + 5)]
    messages.append({"role": "assistant", "content": text})

    found = transcript({"messages": messages})

    assert found is not None
    assert found["total"] == MESSAGES_MAX + 6
    assert len(found["messages"]) == MESSAGES_MAX
    assert found["messages"][0]["index"] == 6
    last = found["messages"][-1]
    assert last["text"]["truncated"] is True
    assert last["text"]["length"] == len(text)
    assert len(last["text"]["text"]) == TEXT_CHARS
    assert last["full"] == text
