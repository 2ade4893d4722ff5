"""Kick a user (every slot uid) out of a channel once; they may rejoin with a fresh token."""

from tokens.management.moderation_cli import ModerationCommand
from tokens.services import moderation


class Command(ModerationCommand):
    help = "Kick USERNAME (or --uid's owner, every slot) out of --channel, through Agora's REST API."

    def handle(self, *args, **options):
        self.run(
            moderation.moderate, channel=options["channel"], kind="kick", reason=options["reason"],
            **self.target(options),
        )  # fmt: skip
