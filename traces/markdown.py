"""Comment markdown rendered safely, and ``@username`` mentions.

Two layers, so one mistake is not enough for a script to run in a teammate's browser:
markdown-it-py parses CommonMark with raw HTML off (``<script>`` stays text) and refuses
``javascript:``/``vbscript:``/``data:`` links; nh3 (the Ammonia sanitizer) then keeps
only the tags markdown produces, only http(s)/mailto/relative URLs, and adds
``rel="nofollow noopener noreferrer"`` to every link. An image is shown as a link to it
(``image: alt``), never fetched: a comment must not make every viewer fetch a URL of the
author's choosing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

# Django usernames are [\w.@+-]; a mention stops before "@" (an e-mail address is not a
# mention) and does not end with "." (the end of a sentence).
MENTION_RE = re.compile(r"(?<![\w@.+-])@([\w.+-]*[\w+-])")

_TAGS = {
    "p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "span",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "ol": {"start"}, "code": {"class"}}


def _mentions_rule(state: StateCore) -> None:
    """Split text tokens into text and ``mention`` tokens for the names in
    ``env["mentions"]`` (never inside code or a link's text)."""
    names: set[str] = state.env.get("mentions", set())
    if not names:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        in_link = 0
        for token in block.children:
            if token.type == "link_open":
                in_link += 1
            elif token.type == "link_close":
                in_link -= 1
            if token.type != "text" or in_link:
                children.append(token)
                continue
            children.extend(_split_mentions(token, names))
        block.children = children


def _split_mentions(token: Token, names: set[str]) -> Iterable[Token]:
    text = token.content
    at = 0
    for match in MENTION_RE.finditer(text):
        if match.group(1) not in names:
            continue
        if match.start() > at:
            yield _text(text[at : match.start()], token)
        mention = Token("mention", "", 0)
        mention.content = match.group(1)
        yield mention
        at = match.end()
    if at < len(text):
        yield _text(text[at:], token)


def _text(content: str, like: Token) -> Token:
    token = Token("text", "", 0, level=like.level)
    token.content = content
    return token


def _render_mention(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return f'<span class="mention">@{escapeHtml(tokens[idx].content)}</span>'


def _render_image(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """``![alt](url)`` as a link to the image, labelled ``image: alt``."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    title = token.attrGet("title")
    title_attr = f' title="{escapeHtml(str(title))}"' if title else ""
    src = escapeHtml(str(token.attrGet("src") or ""))
    return f'<a href="{src}"{title_attr}>image: {escapeHtml(alt)}</a>'


_md = MarkdownIt("commonmark", {"html": False, "breaks": True})
_md.core.ruler.push("mentions", _mentions_rule)
_md.add_render_rule("mention", _render_mention)
_md.add_render_rule("image", _render_image)


def mention_candidates(body: str) -> set[str]:
    """The names written as ``@name`` in the text of ``body`` (not in code or links)."""
    found: set[str] = set()
    for block in _md.parse(body):
        if block.type != "inline" or not block.children:
            continue
        in_link = 0
        for token in block.children:
            if token.type == "link_open":
                in_link += 1
            elif token.type == "link_close":
                in_link -= 1
            elif token.type == "text" and not in_link:
                found.update(m.group(1) for m in MENTION_RE.finditer(token.content))
    return found


def render(body: str, mentions: Iterable[str] = ()) -> str:
    """``body`` as safe HTML; each name in ``mentions`` becomes a mention span."""
    return _render(body, frozenset(mentions))


# Every viewer of a run fetches the same comments: render each (body, mentions) once per
# process. The key is the whole input, so an edited comment is simply a new entry.
@functools.lru_cache(maxsize=4096)
def _render(body: str, mentions: frozenset[str]) -> str:
    html = _md.render(body, {"mentions": set(mentions)})
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
