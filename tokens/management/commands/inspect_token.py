"""Decode a 006/007 token and check its signature against this server's certificate."""

import json

from django.core.management.base import BaseCommand, CommandError

from tokens import selectors
from tokens.exceptions import TokenServiceError


class Command(BaseCommand):
    help = (
        "Print a token's fields, its audit row id, and whether its signature verifies under "
        "AGORA_APP_CERTIFICATE (006: needs its audit row, which holds the channel and uid)."
    )

    def add_arguments(self, parser):
        parser.add_argument("token")

    def handle(self, *args, token, **options):
        try:
            summary = selectors.inspect_token(token=token)
        except TokenServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(summary, indent=2))
