"""Delete expired API tokens (knox removes them only when their own user comes back)."""

from django.core.management.base import BaseCommand

from tokens import services


class Command(BaseCommand):
    help = "Delete API tokens whose expiry has passed. Safe to run from cron."

    def handle(self, *args, **options):
        count = services.purge_expired_api_tokens()
        self.stdout.write(f"Deleted {count} expired API token(s).")
