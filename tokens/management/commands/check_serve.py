"""`make serve`'s start-up check: Django's system checks, where missing Agora credentials
alone do not stop the server and any other error does.

Without credentials the server is safe to run: its token endpoints answer 503
agora_not_configured and /healthz answers 503 naming them, so a load balancer sends it no
traffic until they are set. A misspelt policy, a token lifetime out of Agora's range or a
negative proxy count is another matter: the server would run with a configuration nobody meant.
"""

from django.conf import settings
from django.core import checks
from django.core.management.base import BaseCommand, CommandError

# Errors a server can start with: it refuses token requests (503) until they are fixed. Missing
# or malformed credentials are (E040: the secondary certificate; E042: it signs but is unset);
# a misspelt signing choice (E041) is a configuration nobody meant, like a misspelt policy.
SERVABLE = frozenset({"tokens.E001", "tokens.E002", "tokens.E040", "tokens.E042"})


class Command(BaseCommand):
    help = "System checks for `make serve`: any configuration error but missing Agora credentials fails."
    requires_system_checks = []  # it runs them itself, and reports them its own way

    def handle(self, *args, **options):
        silenced = set(settings.SILENCED_SYSTEM_CHECKS)
        serious = [m for m in checks.run_checks() if m.is_serious() and m.id not in silenced]
        for message in serious:
            self.stderr.write(str(message))
        blocking = [m for m in serious if m.id not in SERVABLE]
        if blocking:
            raise CommandError(f"{len(blocking)} configuration error(s) above; fix them before serving.")
        if serious:
            self.stderr.write(
                "Serving without usable Agora credentials: token requests and /healthz answer 503 until "
                "AGORA_APP_ID and AGORA_APP_CERTIFICATE (and AGORA_APP_CERTIFICATE_SECONDARY when it is "
                "set or signs) are set in the environment or .env ('make run' writes a development .env)."
            )
