"""The OTLP export's writer threads (PostgreSQL: ``OTLP_WORKERS`` groups, each its own
transaction): when one group fails, the request still waits for the others, what they
committed is stored and pushed to the live pages, and the failure is raised."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.traces.test_events_outbox import heard
from tests.traces.test_otlp import capture, copies, encode_spans
from traces import events, otlp
from traces.models import Project, Run, RunStatus
from traces.spans import spans_of

pytestmark = pytest.mark.django_db(transaction=True)


class GroupFailed(Exception):
    pass


def test_a_failed_group_leaves_the_others_stored_and_pushed(
    project: Project, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("one writer on SQLite: a request is one group, one transaction")
    settings.OTLP_WORKERS = 2
    good, bad = copies(capture("openinference"), 2, 1)  # trace ids ab01…, ab02…: two groups
    good_id, bad_id = good[0].trace_id.hex(), bad[0].trace_id.hex()
    write = otlp._add_all

    def failing(project: Project, trace_ids: list[str], by_trace: Any) -> Any:
        if bad_id in trace_ids:
            raise GroupFailed(bad_id)
        return write(project, trace_ids, by_trace)

    monkeypatch.setattr(otlp, "_add_all", failing)
    spans: list[ProtoSpan] = [*good, *bad]

    def export() -> None:
        with pytest.raises(GroupFailed):
            otlp.export(project, spans_of(encode_spans(spans)))

    [pushed] = heard(events.project_group(project.pk), [export])
    stored = Run.objects.get(project=project, execution_id=good_id)
    assert stored.status == RunStatus.COMPLETED
    assert not Run.objects.filter(project=project, execution_id=bad_id).exists()
    assert pushed == ["run.summary"]  # the stored run, pushed once the request ended
