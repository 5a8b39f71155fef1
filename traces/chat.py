"""A state's chat messages as one transcript, whatever shape the agent stored them in.

Three shapes are read (values as JSON decodes them):

- OpenAI's: ``{"role": "user" | "assistant" | "system" | "developer" | "tool",
  "content": str | [parts] | null, "tool_calls": [{"id", "type": "function",
  "function": {"name", "arguments"}}], "tool_call_id", "name"}``;
- LangChain's (a message's ``model_dump``, as ``dashflow_producer.langgraph`` sends it)
  and DashFlow's (its Rust ``Message``, serde-tagged by ``type``): ``{"type": "human" |
  "ai" | "system" | "tool", "content", "tool_calls": [{"id", "name", "args"}],
  "tool_call_id", "name"}``; LangChain's ``dumpd`` form ``{"lc": 1, "type":
  "constructor", "id": [..., "HumanMessage"], "kwargs": {...}}`` too.

Content given as a list of parts (``{"type": "text", "text"}``, Anthropic's
``tool_use`` blocks, images) is read as its text, the other parts named in brackets.
A state holds a transcript when its ``messages`` entry (or the state itself) is a
non-empty list of which every element is a message in one of these shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypedDict

from .jsondiff import Change, Collapsed, collapse

# The roles a transcript shows, from each shape's own names.
ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
    "chat": "user",
}
LANGCHAIN_CLASSES = {
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "tool",
    "ChatMessage": "user",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
}
# Message text past this many characters is cut (with its length); tool arguments past
# ARGUMENTS_CHARS. A transcript lists at most MESSAGES_MAX messages, the latest ones.
TEXT_CHARS = 2_000
ARGUMENTS_CHARS = 400
MESSAGES_MAX = 200
# "show all" on a cut message shows up to FULL_CHARS of it; a transcript carries at most
# FULL_BUDGET characters of such longer forms (the state tree has the rest).
FULL_CHARS = 20_000
FULL_BUDGET = 200_000


class ToolCall(TypedDict):
    id: str | None
    name: str
    arguments: str


class Message(TypedDict):
    """One message as a transcript shows it; ``text`` is collapsed (``text``,
    ``truncated``, ``length``), its ``text`` the message's content, not JSON."""

    index: int
    role: str
    name: str | None
    text: Collapsed
    full: str | None
    tool_calls: list[ToolCall]
    tool_call_id: str | None
    new: bool
    changed: bool


class Transcript(TypedDict):
    path: str
    total: int
    messages: list[Message]


# A message has at least one of these (dashflow_producer.langgraph drops an empty
# content: an AI message that only calls a tool has no "content").
BODY = ("content", "tool_calls", "tool_call_id")


def message_fields(value: Any) -> tuple[str, dict[str, Any]] | None:
    """A message's role and the dict holding its fields, or None if it is not one."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "constructor" and isinstance(value.get("kwargs"), dict):
        ids = value.get("id")
        name = ids[-1] if isinstance(ids, list) and ids and isinstance(ids[-1], str) else ""
        role = LANGCHAIN_CLASSES.get(name)
        return (role, value["kwargs"]) if role else None
    if not any(key in value for key in BODY):
        return None
    role = value.get("role")
    if isinstance(role, str):
        return ROLES.get(role, role), value
    if isinstance(kind, str) and kind.lower() in ROLES:
        return ROLES[kind.lower()], value
    return None


def content_text(content: Any) -> str:
    """A message's content as text: parts joined, other parts named in brackets, tool-use
    parts left to the tool calls, anything else as its JSON (cut)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") == "tool_use":
                continue  # listed with the tool calls
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'part')}]")
        return "\n".join(parts)
    return collapse(content, TEXT_CHARS)["text"]


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        text = value
        return text if len(text) <= ARGUMENTS_CHARS else text[: ARGUMENTS_CHARS - 1] + "…"
    return collapse(value, ARGUMENTS_CHARS)["text"]


def tool_calls_of(fields: dict[str, Any]) -> list[ToolCall]:
    """A message's tool calls (OpenAI, LangChain / DashFlow, Anthropic ``tool_use``
    parts), arguments as text cut past ``ARGUMENTS_CHARS``."""
    calls: list[Any] = []
    for source in (fields.get("tool_calls"), (fields.get("additional_kwargs") or {})):
        if isinstance(source, list):
            calls = source
            break
        if isinstance(source, dict) and isinstance(source.get("tool_calls"), list):
            calls = source["tool_calls"]
            break
    content = fields.get("content")
    if isinstance(content, list):
        calls = calls + [p for p in content if isinstance(p, dict) and p.get("type") == "tool_use"]
    out: list[ToolCall] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict):  # OpenAI
            name, arguments = function.get("name"), function.get("arguments")
        else:  # LangChain, DashFlow (args), Anthropic (input)
            name, arguments = call.get("name"), call.get("args", call.get("input"))
        out.append(
            {
                "id": call["id"] if isinstance(call.get("id"), str) else None,
                "name": name if isinstance(name, str) else "?",
                "arguments": _arguments(arguments) if arguments is not None else "",
            }
        )
    return out


def message_list(state: Any) -> tuple[str, list[Any]] | None:
    """The JSON Pointer and the list of a state's chat messages: its ``messages`` entry,
    or the state itself when it is the list; None when neither is a list of messages."""
    if isinstance(state, dict) and isinstance(state.get("messages"), list):
        path, items = "/messages", state["messages"]
    elif isinstance(state, list):
        path, items = "", state
    else:
        return None
    if not items or any(message_fields(item) is None for item in items):
        return None
    return path, items


def _marks(path: str, changes: Iterable[Change]) -> tuple[set[int], set[int], bool]:
    """Which messages the changes added and which they changed inside; True when the
    whole list was added or replaced (every message is then new)."""
    added: set[int] = set()
    changed: set[int] = set()
    pattern = re.compile(re.escape(path) + r"/(\d+)(/.*)?")
    for change in changes:
        if change.path == path or (path and change.path == ""):
            if change.op != "remove":
                return added, changed, True
            continue
        found = pattern.fullmatch(change.path)
        if found is None or (change.op == "remove" and found.group(2) is None):
            continue
        (changed if found.group(2) else added).add(int(found.group(1)))
    return added, changed, False


def transcript(state: Any, changes: Iterable[Change] = ()) -> Transcript | None:
    """``state``'s chat messages, the latest ``MESSAGES_MAX`` of them, each marked
    ``new`` when ``changes`` (the diff that led to ``state``) added it and ``changed``
    when they changed something inside it; None when the state holds no messages. A
    message's text is cut past ``TEXT_CHARS``, with a longer form (``full``) while the
    transcript's budget lasts."""
    found = message_list(state)
    if found is None:
        return None
    path, items = found
    added, changed, everything = _marks(path, changes)
    start = max(0, len(items) - MESSAGES_MAX)
    budget = FULL_BUDGET
    messages: list[Message] = []
    for index in range(start, len(items)):
        fields = message_fields(items[index])
        assert fields is not None  # message_list checked every element
        role, body = fields
        name, call_id = body.get("name"), body.get("tool_call_id")
        text = content_text(body.get("content"))
        shown = collapse_text(text, TEXT_CHARS)
        full = None
        if shown["truncated"] and budget > 0:
            full = collapse_text(text, FULL_CHARS)["text"]
            budget -= len(full)
        messages.append(
            {
                "index": index,
                "role": role,
                "name": name if isinstance(name, str) else None,
                "text": shown,
                "full": full,
                "tool_calls": tool_calls_of(body),
                "tool_call_id": call_id if isinstance(call_id, str) else None,
                "new": everything or index in added,
                "changed": index in changed,
            }
        )
    return {"path": path, "total": len(items), "messages": messages}


def collapse_text(text: str, max_chars: int) -> Collapsed:
    """``text`` cut to ``max_chars`` characters (an ellipsis last) as ``collapse`` cuts
    a JSON text, for prose that is shown as itself rather than as JSON."""
    if len(text) <= max_chars:
        return {"text": text, "truncated": False, "length": len(text)}
    return {"text": text[: max_chars - 1] + "…", "truncated": True, "length": len(text)}
