import os
from typing import Any

import anyio
from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces.errors import InputError
from traces.mcp.server import current_key, server
from traces.permissions import KeyPrincipal, bearer_key


class Command(BaseCommand):
    help = (
        "Serve the MCP server over stdio (for a local client that starts it), acting with "
        "the rights of an API key of the project: --key or DASHFLOW_API_KEY."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--key",
            default=None,
            help="an API key of the project (default: the DASHFLOW_API_KEY environment "
            "variable); its scope is what the tools may do",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # A key, not a local superuser: whoever starts the command gets exactly the rights
        # the key's scope gives over HTTP (read keys cannot write), revoking it stops them,
        # and what they change is logged under the key's name.
        raw = options["key"] or os.environ.get("DASHFLOW_API_KEY", "")
        if not raw:
            raise CommandError("name an API key: --key or DASHFLOW_API_KEY")
        try:
            key = bearer_key(f"Bearer {raw}")
        except InputError as exc:
            raise CommandError(f"{exc.path}: {exc.rule}") from None
        assert key is not None
        if key.project.slug != options["project"]:
            raise CommandError(f"this API key is not a key of project {options['project']!r}")
        current_key.set(KeyPrincipal(key))
        # stdout is the protocol's channel from here on; nothing else may write to it.
        anyio.run(server.run_stdio_async)
