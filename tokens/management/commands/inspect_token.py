"""Decode a 006/007 token and say which of this server's certificates signed it."""

import json

from django.core.management.base import BaseCommand, CommandError

from tokens import selectors
from tokens.exceptions import TokenServiceError


class Command(BaseCommand):
    help = (
        "Print a token's fields (every service, each privilege with its expiry), its audit row id, "
        "and which certificate signed it: signed_with is primary (AGORA_APP_CERTIFICATE), secondary "
        "(AGORA_APP_CERTIFICATE_SECONDARY) or null (neither; a 006 token needs its audit row, which "
        "holds the channel and uid)."
    )

    def add_arguments(self, parser):
        parser.add_argument("token")

    def handle(self, *args, token, **options):
        try:
            summary = selectors.inspect_token(token=token)
        except TokenServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(summary, indent=2))
