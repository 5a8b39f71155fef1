"""The Celery app. Configured from Django settings (the CELERY_ names).

With ``REDIS_URL`` set, ``celery -A dashflow_site worker`` runs the tasks (add ``-B``, or
run ``celery -A dashflow_site beat`` once, for the hourly retention sweep); without it,
``CELERY_TASK_ALWAYS_EAGER`` runs each task in the process that queues it.
"""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")

app = Celery("dashflow_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def load_urls(**kwargs: object) -> None:
    """Import the URL configuration when a worker process starts: otherwise the first
    export's first ``reverse()`` pays for it (about 0.3 s) inside the task."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (the import is the point)


worker_process_init.connect(load_urls)
