from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from traces.models import ApiKey, KeyScope, Project


class Command(BaseCommand):
    help = "Create an API key for a project (creating the project if needed); prints the key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument(
            "--scope",
            default=KeyScope.WRITE,
            choices=KeyScope.values,
            help="read: reads only; write (default): also ingests, reviews, exports; "
            "admin: also manages members and keys",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project, _ = Project.objects.get_or_create(
            slug=options["project"], defaults={"name": options["project"]}
        )
        _, raw = ApiKey.issue(project, name=options["name"], scope=options["scope"])
        # Only the key on stdout, so `KEY=$(manage.py create_api_key ...)` works.
        self.stdout.write(raw)
