"""``/ws/projects/<slug>/exports/``: the project's exports as they progress.

On connect: ``{"type": "exports", "exports": [...]}`` (the recent exports, after joining
the group, so no change is missed in between); then ``{"type": "export", "export": {...}}``
whenever one is created or its status or progress changes (every ~0.5 s while it runs),
and ``{"type": "export_deleted", "id": ...}``. Messages carry the whole export, so a
lost one is made good by the next.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from traces.events import exports_group
from traces.exports import recent_exports

from .consumers import GroupConsumer


class ProjectExportsConsumer(GroupConsumer):
    async def connect(self) -> None:
        project = await self.join_project(exports_group)
        if project is None:
            return
        snapshot = await database_sync_to_async(recent_exports)(project)
        await self.send_json({"type": "exports", "exports": snapshot})

    async def export_changed(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "export", "export": message["export"]})

    async def export_deleted(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "export_deleted", "id": message["id"]})
