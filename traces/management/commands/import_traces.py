from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces.errors import InputError
from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.parsing import parse_trace


class Command(BaseCommand):
    help = "Import DashFlow ExecutionTrace JSON files (a file or every *.json in a directory)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--project", required=True, help="project slug (created if needed)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if path.is_dir():
            files = sorted(path.glob("*.json"))
        elif path.is_file():
            files = [path]
        else:
            raise CommandError(f"{path}: no such file or directory")
        project, _ = Project.objects.get_or_create(
            slug=options["project"], defaults={"name": options["project"]}
        )
        failed = 0
        for file in files:
            try:
                trace = parse_trace(file.read_bytes())
            except InputError as exc:
                failed += 1
                self.stderr.write(f"{file}: {exc}")
                continue
            known = Run.objects.filter(project=project, execution_id=trace.execution_id)
            before = known.values_list("trace_digest", flat=True).first()
            run, created = ingest_trace(project, trace)
            state = (
                "stored" if created else "unchanged" if run.trace_digest == before else "updated"
            )
            self.stdout.write(f"{file.name}: {run.execution_id} {state}")
        if failed:
            raise CommandError(f"{failed} of {len(files)} files were not valid traces")
