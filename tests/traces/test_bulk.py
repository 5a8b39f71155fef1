"""``bulk.pg_ids_by_key``: the stored ids of the values given and new ids drawn for the
rest, in the order given, whether the values go to PostgreSQL as one comma-separated text
(digests) or, holding a comma or empty, as an array."""

from __future__ import annotations

import pytest
from django.db import connection

from traces import bulk
from traces.models import Project, StateSnapshot


@pytest.mark.parametrize(
    "values",
    [
        ["b1", "a0", "c2"],  # one text, split by the server
        ["b1", "a,0", "c2"],  # a comma: an array
        ["b1", "", "c2"],  # an empty value: an array
    ],
)
def test_stored_values_keep_their_ids_and_the_others_get_new_ascending_ids(
    project: Project, values: list[str]
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite reads ids with bulk.ids_by_key")
    stored = StateSnapshot.objects.create(project=project, digest="b1", size_bytes=1, data=b"")
    StateSnapshot.objects.create(project=project, digest=values[1], size_bytes=1, data=b"x")
    other = Project.objects.create(slug="elsewhere", name="Elsewhere")
    StateSnapshot.objects.create(project=other, digest="c2", size_bytes=1, data=b"")

    ids, missing = bulk.pg_ids_by_key(StateSnapshot, "project_id", project.pk, "digest", values)

    assert ids["b1"] == stored.pk
    assert ids[values[1]] == StateSnapshot.objects.get(project=project, digest=values[1]).pk
    assert missing == ["c2"]  # another project's row is not this one's
    assert ids["c2"] > max(StateSnapshot.objects.values_list("pk", flat=True))
    assert set(ids) == set(values)
