import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from traces.models import Membership, Project, Role


class Command(BaseCommand):
    help = "Create or update a user and their role in a project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--project", required=True, help="project slug (created if needed)")
        parser.add_argument("--role", choices=Role.values, default=Role.MEMBER)
        parser.add_argument("--password", help="a generated one is printed when omitted")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=options["username"])
        password = options["password"]
        generated = password is None and created
        if generated:
            password = secrets.token_urlsafe(12)
        if password is not None:
            user.set_password(password)
            user.save()
        project, _ = Project.objects.get_or_create(
            slug=options["project"], defaults={"name": options["project"]}
        )
        Membership.objects.update_or_create(
            project=project, user=user, defaults={"role": options["role"]}
        )
        verb = "created" if created else "updated"
        self.stderr.write(f"{verb} {user.username} as {options['role']} of {project.slug}")
        if generated:
            self.stdout.write(f"password: {password}")
