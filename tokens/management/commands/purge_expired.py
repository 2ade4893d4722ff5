"""Delete expired API tokens, spent login counters and ended bans (nothing on the request path
does)."""

from django.core.management.base import BaseCommand

from tokens import services
from tokens.services import moderation


class Command(BaseCommand):
    help = (
        "Delete API tokens past their expiry, login counters past their window and bans past their "
        "end. Safe to run from cron."
    )

    def handle(self, *args, **options):
        deleted = services.purge_expired()
        bans = moderation.purge_ended_bans()
        self.stdout.write(
            f"Deleted {deleted['api_tokens']} expired API token(s), "
            f"{deleted['login_counters']} spent login counter(s) and {bans} ended ban(s)."
        )
