"""URLs the pages hand to their scripts, all reversed from route names.

``api()`` is an HTTP API URL with the ``project`` a signed-in session names. Where part of
a URL is known only in the browser (a step index, a comment id), ``template()`` gives the
URL with ``{name}`` in that place; the script fills it in (``static/visualizer/http.js``,
``fill``), so no script spells a path.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

# Stand-ins reverse() accepts for an int or uuid part, replaced by ``{name}`` after: values
# no real URL holds (a project id, step index or comment id never reaches 2**62).
_INT_STAND_IN = 2**62 + 7
_UUID_STAND_IN = uuid.UUID(int=2**122 + 7)


def api(name: str, *args: Any, project: str, **query: str) -> str:
    """The API route ``name`` with ``args``, for a session of ``project``; ``query`` adds
    parameters, where a value ``{name}`` stays a blank for the script to fill."""
    # Braces stay as they are (no slug or parameter the code passes holds one) so that
    # http.js's fill() finds the blank.
    return f"{reverse(name, args=args)}?{urlencode({'project': project, **query}, safe='{}')}"


def template(name: str, *args: Any, project: str | None = None, **blanks: str) -> str:
    """The route ``name`` with ``args``, and each ``blanks`` value (``"int"`` or
    ``"uuid"``) left as ``{key}`` for the script; an API route takes ``project``."""
    stand_ins: dict[str, Any] = {
        key: _UUID_STAND_IN if kind == "uuid" else _INT_STAND_IN for key, kind in blanks.items()
    }
    url = reverse(name, args=[*args, *stand_ins.values()])
    for key, value in stand_ins.items():
        url = url.replace(str(value), f"{{{key}}}")
    return f"{url}?{urlencode({'project': project})}" if project is not None else url


def run_page(slug: str, execution_id: str, step: int | None = None) -> str:
    """The run page, opened at ``step`` when given (a failed run's failing step,
    ``traces.error_steps.failing_steps``)."""
    url = reverse("visualizer:run", args=[slug, execution_id])
    return url if step is None else f"{url}#step={step}"


def run_step(slug: str, execution_id: str) -> str:
    """The run page opened at one step (its ``#step=`` link), ``{index}`` left for the
    script to fill."""
    return f"{reverse('visualizer:run', args=[slug, execution_id])}#step={{index}}"
