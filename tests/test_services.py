"""With REQUIRE_SERVICES=1 (as .ci/run sets) the real services must be in use.

CI must exercise PostgreSQL, Redis and Chromium, and fail rather than quietly fall back
to the embedded defaults when one of them is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

required = pytest.mark.skipif(
    os.environ.get("REQUIRE_SERVICES") != "1",
    reason="embedded-defaults run: REQUIRE_SERVICES is not set",
)


@required
@pytest.mark.django_db
def test_database_is_postgresql() -> None:
    assert connection.vendor == "postgresql", "DATABASE_URL must point at PostgreSQL"
    with connection.cursor() as cursor:
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)


@required
def test_channel_layer_round_trips_through_redis() -> None:
    assert settings.REDIS_URL, "REDIS_URL must be set"
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisPubSubChannelLayer"

    async def round_trip() -> dict[str, object]:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "probe", "seq": 1})
        message: dict[str, object] = await layer.receive(channel)
        return message

    assert async_to_sync(round_trip)() == {"type": "probe", "seq": 1}


@required
def test_chromium_is_installed() -> None:
    assert shutil.which("chromium"), "Debian's chromium is needed for the browser tests"
