from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from traces.demo import demo_runs
from traces.ingest import ingest_trace
from traces.models import Membership, Project, Role
from traces.parsing import parse_trace

# (username = password, project, role)
TEAM = [
    ("sam", "demo", Role.MEMBER),
    ("vera", "demo", Role.VIEWER),
    ("otto", "elsewhere", Role.ADMIN),
]

DEFAULT_FIXTURES = settings.BASE_DIR.parent / "shared" / "fixtures" / "dashflow"


class Command(BaseCommand):
    help = "Create the demo project, a demo user and demo runs (safe to run again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=60, help="generated runs to add")
        parser.add_argument(
            "--fixtures",
            default=str(DEFAULT_FIXTURES),
            help="a directory of DashFlow trace JSON files to import too",
        )
        parser.add_argument("--password", default="demo", help="the demo user's password")

    def handle(self, *args: Any, **options: Any) -> None:
        project, _ = Project.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
        User = get_user_model()
        user, _ = User.objects.get_or_create(username="demo")
        user.set_password(options["password"])
        user.save()
        Membership.objects.update_or_create(
            project=project, user=user, defaults={"role": Role.ADMIN}
        )
        # Teammates to review with, and someone outside the project who must see none of it.
        other, _ = Project.objects.get_or_create(slug="elsewhere", defaults={"name": "Elsewhere"})
        for name, team, role in TEAM:
            mate, _ = User.objects.get_or_create(username=name)
            mate.set_password(name)
            mate.save()
            Membership.objects.update_or_create(
                project=project if team == "demo" else other, user=mate, defaults={"role": role}
            )
        imported = 0
        fixtures = Path(options["fixtures"])
        if fixtures.is_dir():
            for file in sorted(fixtures.glob("*.json")):
                ingest_trace(project, parse_trace(file.read_bytes()))
                imported += 1
        else:
            self.stderr.write(f"{fixtures}: not found, importing generated runs only")
        # A fixed seed: running seed_demo twice upserts the same runs, adds none.
        for trace in demo_runs(options["runs"]):
            ingest_trace(project, trace)
        self.stdout.write(
            f"demo project ready: {imported} fixture traces, {options['runs']} generated runs\n"
            f"sign in at http://127.0.0.1:8000/ as demo / {options['password']} (admin); "
            "teammates sam / sam (member) and vera / vera (viewer); otto / otto is outside it"
        )
