"""Run ids in lists: short, and still telling apart runs that share a prefix."""

from __future__ import annotations

from django.template import Context, Template

from visualizer.templatetags.ids import short_id


def test_a_short_id_is_whole_and_a_long_one_keeps_its_start_and_end() -> None:
    assert short_id("run-7") == "run-7"
    assert short_id("research-0001234") == "research-0001234"
    one = short_id("research-agent-2026-12-05T00:01:02-a1b2c3")
    other = short_id("research-agent-2026-12-05T00:01:02-d4e5f6")
    assert one == "research-…a1b2c3"
    assert other == "research-…d4e5f6"
    assert one != other


def test_the_filter_escapes_what_it_shows() -> None:
    html = Template("{% load ids %}{{ id|short_id }}").render(Context({"id": "<b>x</b>" * 4}))
    assert "<b>" not in html
    assert html.startswith("&lt;b&gt;x&lt;/")
