from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces import retention
from traces.models import Project


class Command(BaseCommand):
    help = (
        "Delete the runs older than each project's retention (what the Celery beat task "
        "does), in short batches; --dry-run only counts them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="only this project (slug)")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--batch", type=int, default=None, help="runs per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        projects = Project.objects.filter(retention_days__isnull=False).order_by("slug")
        if options["project"]:
            projects = Project.objects.filter(slug=options["project"])
            if not projects.exists():
                raise CommandError(f"no project {options['project']!r}")
        if options["batch"] is not None and options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        for project in projects:
            if project.retention_days is None:
                self.stdout.write(f"{project.slug}: keeps runs forever")
            elif options["dry_run"]:
                count = retention.dry_run_count(project)
                self.stdout.write(f"{project.slug}: {count} runs would be deleted")
            else:
                done = retention.purge(project, batch=options["batch"])
                self.stdout.write(
                    f"{project.slug}: deleted {done.runs} runs in {done.batches} batches, "
                    f"{done.snapshots} snapshots, {done.exports} exports"
                )
