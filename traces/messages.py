"""Chat messages in a state for a thread's conversation: each element of a ``messages``
list in one plain shape, and which of them a run added to its thread.

The shapes (OpenAI, LangChain's dicts and ``dumpd`` form, DashFlow's ``Message``) are read
by ``traces/chat.py``, the step panel's transcript, so both pages agree on a message's role,
text and tool calls. Anything else in the list is shown as one message of role ``unknown``
with its JSON, so a conversation never drops what a state holds.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from .chat import ToolCall, content_text, message_fields, tool_calls_of

# A message's text beyond this is cut for the transcript (the run page shows it whole).
MAX_CONTENT_CHARS = 20_000


class ChatMessage(TypedDict):
    """One message as the thread's conversation shows it."""

    role: str
    name: str
    content: str
    cut: int  # characters of content left out (0: whole)
    tool_calls: list[ToolCall]


def chat_message(value: Any) -> ChatMessage:
    """One element of a ``messages`` list in the plain shape, read by the step panel's
    readers (``traces/chat.py``); an element that is no message is kept as its JSON."""
    fields = message_fields(value)
    if fields is not None:
        role, body = fields
        text = content_text(body.get("content"))
        name = body.get("name")
        calls = tool_calls_of(body)
    else:
        role, name, calls = "unknown", None, []
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return {
        "role": role,
        "name": name if isinstance(name, str) else "",
        "content": text[:MAX_CONTENT_CHARS],
        "cut": max(0, len(text) - MAX_CONTENT_CHARS),
        "tool_calls": calls,
    }


def messages_of(state: Any) -> list[Any] | None:
    """The state's ``messages`` list as stored (None: the state holds none)."""
    if isinstance(state, dict) and isinstance(state.get("messages"), list):
        return list(state["messages"])
    return None


def _message_id(value: Any) -> str | None:
    fields = message_fields(value)
    ident = fields[1].get("id") if fields else None
    return ident if isinstance(ident, str) and ident else None


def added_messages(before: list[Any] | None, after: list[Any]) -> list[Any]:
    """The messages of ``after`` that ``before`` (the previous run's) did not hold: by
    message id when every message has one (LangChain's ``add_messages`` keeps ids),
    otherwise what follows the lists' common prefix (a thread's state grows at its end;
    a run whose state starts over shares no prefix, so all its messages are new)."""
    if not before:
        return list(after)
    before_ids = [_message_id(m) for m in before]
    after_ids = [_message_id(m) for m in after]
    if all(before_ids) and all(after_ids):
        seen = set(before_ids)
        return [m for m, i in zip(after, after_ids, strict=True) if i not in seen]
    common = 0
    for old, new in zip(before, after, strict=False):
        if old != new:
            break
        common += 1
    return list(after[common:])
