"""`python manage.py create_api_key ENVIRONMENT`: print a new secret API key, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.api_keys import api_key_create
from billing.models import ApiKey, Environment


class Command(BaseCommand):
    help = "Create a secret API key for an environment and print it. It is shown only this once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("environment", help="environment slug, e.g. live")
        parser.add_argument("--name", default="Command line key", help="a label for people")
        parser.add_argument(
            "--role",
            default=ApiKey.Role.DEVELOPER,
            choices=[choice.value for choice in ApiKey.Role],
            help="what the key may do (default: developer)",
        )

    def handle(self, *args, **options) -> None:
        slug = options["environment"]
        environment = Environment.objects.filter(slug=slug).first()
        if environment is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"Unknown environment {slug!r} (known: {known}).")
        key, raw = api_key_create(
            environment=environment, name=options["name"], role=options["role"]
        )
        # Only the key on stdout, so scripts can capture it; the note goes to stderr.
        self.stderr.write(
            f"Created {key.role} key {key.prefix}… for {environment.slug}; "
            "it will not be shown again."
        )
        self.stdout.write(raw)
