from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from traces.models import ApiKey


class Command(BaseCommand):
    help = "List API keys (their prefixes; the keys themselves are never stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="only this project's keys")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = ApiKey.objects.select_related("project").order_by("project__slug", "created_at")
        if options["project"]:
            keys = keys.filter(project__slug=options["project"])
        for key in keys:
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            where = f"{key.prefix}  {key.project.slug:<20} {key.scope:<6} {state:<18}"
            self.stdout.write(f"{where} last used {used}  {key.name}")
