"""Ban a user (every slot uid) from a channel, or from publishing audio or video there, for a
number of minutes: at Agora, and on this server's join path at once."""

from tokens.management.moderation_cli import ModerationCommand
from tokens.services import moderation


class Command(ModerationCommand):
    help = (
        "Ban USERNAME (or --uid's owner, every slot) from --channel for --minutes (--mute: publishing only)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--minutes", type=int, required=True, help="1..1440")
        parser.add_argument(
            "--mute", choices=["audio", "video"], help="take publishing that away, not joining"
        )

    def handle(self, *args, **options):
        kind = f"mute_{options['mute']}" if options["mute"] else "ban"
        self.run(
            moderation.moderate, channel=options["channel"], kind=kind, minutes=options["minutes"],
            reason=options["reason"], **self.target(options),
        )  # fmt: skip
