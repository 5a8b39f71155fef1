"""The settings module fails loudly, naming the variable, on a bad environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    clean.update(env)
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CELERY_TASK_ALWAYS_EAGER)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "dashflow_site.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_defaults_need_no_services(tmp_path: Path) -> None:
    result = load_settings(VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "True",
    ]


def test_service_urls_switch_to_postgres_and_redis() -> None:
    result = load_settings(
        DATABASE_URL="postgres://u@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/0"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "channels_redis.pubsub.RedisPubSubChannelLayer",
        "False",
    ]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe'"),
        ({"DEBUG": "false", "SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL="),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL="),
        ({"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL="),
        ({"TRACE_MAX_BODY_BYTES": "lots"}, "TRACE_MAX_BODY_BYTES='lots'"),
        ({"TRACE_UPLOAD_MAX_BYTES": "10"}, "TRACE_UPLOAD_MAX_BYTES='10': must be at least 1024"),
        ({"TRACE_MAX_DEPTH": "2"}, "TRACE_MAX_DEPTH='2': must be at least 8"),
        ({"TRACE_MAX_DEPTH": "401"}, "TRACE_MAX_DEPTH='401': must be at most 400"),
        ({"SITE_URL": "127.0.0.1:8000"}, "SITE_URL='127.0.0.1:8000': expected http(s)://"),
    ],
)
def test_bad_value_stops_start_naming_the_variable(env: dict[str, str], named: str) -> None:
    result = load_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr
