from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, named by the first characters that list_api_keys shows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="the key's first 12 characters (dfk_...)")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = list(ApiKey.objects.active().filter(prefix=options["prefix"][:12]))
        if not keys:
            raise CommandError(f"no active API key starts with {options['prefix']!r}")
        if len(keys) > 1:
            raise CommandError(f"{len(keys)} active keys start with {options['prefix']!r}")
        keys[0].revoke()
        self.stdout.write(f"revoked {keys[0].prefix}… of project {keys[0].project.slug}")
