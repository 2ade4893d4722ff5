"""Delete expired API tokens and spent login counters (nothing on the request path does)."""

from django.core.management.base import BaseCommand

from tokens import services


class Command(BaseCommand):
    help = "Delete API tokens past their expiry and login counters past their window. Safe to run from cron."

    def handle(self, *args, **options):
        deleted = services.purge_expired()
        self.stdout.write(
            f"Deleted {deleted['api_tokens']} expired API token(s) and "
            f"{deleted['login_counters']} spent login counter(s)."
        )
