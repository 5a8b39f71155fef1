from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces.failures import regroup
from traces.models import FailureGroup, Project, Run


class Command(BaseCommand):
    help = (
        "Group the failures of stored runs (backfill after an upgrade, or after the grouping "
        "rules change). Idempotent: a second run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="only this project (slug); default: all")

    def handle(self, *args: Any, **options: Any) -> None:
        runs = Run.objects.order_by("pk")
        groups = FailureGroup.objects.all()
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"project {options['project']!r}: not found")
            runs = runs.filter(project=project)
            groups = groups.filter(project=project)
        # Runs that can have failures, plus runs that have Failure rows (to drop stale ones).
        candidates = runs.filter(status="failed") | runs.filter(failures__isnull=False)
        pks = list(candidates.values_list("pk", flat=True).distinct())
        changed = regroup(pks)
        self.stdout.write(f"{changed} group updates; {groups.count()} groups in all")
