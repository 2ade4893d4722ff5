"""Create the development demo account if missing and print how to use it."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tokens import services
from tokens.exceptions import TokenServiceError


class Command(BaseCommand):
    help = "Create the demo account (DEMO_USERNAME/DEMO_PASSWORD) if missing; print a fresh API token."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("The demo account is for development only (DJANGO_DEBUG is false).")
        try:
            demo = services.ensure_demo_account(
                username=settings.DEMO_USERNAME, password=settings.DEMO_PASSWORD
            )
        except TokenServiceError as exc:
            raise CommandError(exc.message) from None
        state = "created" if demo.created else "exists"
        password = settings.DEMO_PASSWORD if demo.password_matches else "(changed since; not DEMO_PASSWORD)"
        self.stdout.write(
            f"Demo account {state}:\n"
            f"  username:  {demo.user.get_username()}\n"
            f"  password:  {password}\n"
            f"  API token: {demo.api_token}   (send as 'Authorization: Token <key>')\n"
            f"  Agora uid: {demo.uid}"
        )
