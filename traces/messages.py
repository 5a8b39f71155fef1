"""Chat messages in a state: the ``messages`` list of OpenAI, LangChain and DashFlow
shapes read as one plain shape, and which of them a run added to its thread.

The shapes read:

- OpenAI: ``{"role", "content", "tool_calls": [{"function": {"name", "arguments"}}],
  "tool_call_id", "name"}``, ``content`` a string or a list of parts (``{"type": "text",
  "text"}``);
- LangChain, as ``message.dict()`` or ``model_dump()`` gives it: ``{"type": "human" | "ai" |
  "system" | "tool", "content", "tool_calls": [{"name", "args", "id"}], "id"}``, and as
  ``dumpd`` serializes it: ``{"lc": 1, "type": "constructor", "id": [..., "HumanMessage"],
  "kwargs": {...}}``;
- DashFlow (its Rust ``Message`` is serde-tagged by ``type`` the way LangChain's dict is,
  with the AI message's ``tool_calls`` as ``{"id", "name", "args"}``).

Anything else in the list is shown as one message of role ``unknown`` with its JSON, so a
transcript never drops what a state holds.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from .chat import LANGCHAIN_CLASSES, ROLES

# A message's text beyond this is cut for the transcript (the run page shows it whole).
MAX_CONTENT_CHARS = 20_000

# The roles come from each shape's own names, the same tables the step panel's
# transcript reads (traces/chat.py).


class ToolCall(TypedDict):
    name: str
    arguments: str


class ChatMessage(TypedDict):
    """One message as the transcript shows it."""

    role: str
    name: str
    content: str
    cut: int  # characters of content left out (0: whole)
    tool_calls: list[ToolCall]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _text(content: Any) -> str:
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
            elif isinstance(part, dict) and isinstance(part.get("type"), str):
                parts.append(f"[{part['type']}]")
            else:
                parts.append(_json(part))
        return "\n".join(parts)
    return _json(content)


def _tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    calls = message.get("tool_calls")
    if not calls:
        extra = message.get("additional_kwargs")
        calls = extra.get("tool_calls") if isinstance(extra, dict) else None
    if not isinstance(calls, list):
        return []
    found: list[ToolCall] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict):  # OpenAI
            name, arguments = function.get("name"), function.get("arguments")
        else:  # LangChain, DashFlow
            name, arguments = call.get("name"), call.get("args", call.get("arguments"))
        found.append(
            {
                "name": name if isinstance(name, str) else "?",
                "arguments": arguments if isinstance(arguments, str) else _json(arguments),
            }
        )
    return found


def _role(message: dict[str, Any]) -> str | None:
    for key in ("role", "type"):
        value = message.get(key)
        if isinstance(value, str) and value.lower() in ROLES:
            return ROLES[value.lower()]
    return None


def _unwrap(message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A LangChain ``dumpd`` constructor's kwargs and the role its class names."""
    ident, kwargs = message.get("id"), message.get("kwargs")
    if message.get("lc") == 1 and isinstance(ident, list) and isinstance(kwargs, dict):
        return kwargs, LANGCHAIN_CLASSES.get(str(ident[-1]) if ident else "")
    return message, None


def chat_message(value: Any) -> ChatMessage:
    """One element of a ``messages`` list in the plain shape."""
    role = "unknown"
    body: dict[str, Any] = {"content": value}
    if isinstance(value, dict):
        unwrapped, class_role = _unwrap(value)
        role = class_role or _role(unwrapped) or _role(value) or "unknown"
        if role != "unknown" or "content" in unwrapped:
            body = unwrapped
    text = _text(body.get("content"))
    name = body.get("name")
    return {
        "role": role,
        "name": name if isinstance(name, str) else "",
        "content": text[:MAX_CONTENT_CHARS],
        "cut": max(0, len(text) - MAX_CONTENT_CHARS),
        "tool_calls": _tool_calls(body),
    }


def messages_of(state: Any) -> list[Any] | None:
    """The state's ``messages`` list as stored (None: the state holds none)."""
    if isinstance(state, dict) and isinstance(state.get("messages"), list):
        return list(state["messages"])
    return None


def _message_id(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    body, _ = _unwrap(value)
    ident = body.get("id")
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
