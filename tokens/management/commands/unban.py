"""Lift a user's active bans and mutes in a channel (at Agora, and on this server at once)."""

from tokens.management.moderation_cli import ModerationCommand
from tokens.services import moderation


class Command(ModerationCommand):
    help = "Lift every active ban and mute of USERNAME (or --uid's owner) in --channel (--only: one kind)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--only", choices=["ban", "mute_audio", "mute_video"], help="lift only these")

    def handle(self, *args, **options):
        self.run(
            moderation.lift, channel=options["channel"], kind=options["only"], reason=options["reason"],
            **self.target(options),
        )  # fmt: skip
