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
from traces.models import Project

from .consumers import CLOSE_FORBIDDEN, GroupConsumer, find_project


class ProjectExportsConsumer(GroupConsumer):
    async def connect(self) -> None:
        user = await self.accept_user()
        if user is None:
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        project: Project | None = await database_sync_to_async(find_project)(user, slug)
        if project is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = exports_group(project.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await database_sync_to_async(recent_exports)(project)
        await self.send_json({"type": "exports", "exports": snapshot})

    async def export_changed(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "export", "export": message["export"]})

    async def export_deleted(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "export_deleted", "id": message["id"]})
