"""Issue an RTC, RTM or Chat token for a user from the command line (recorded with source=cli)."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tokens import services
from tokens.exceptions import TokenServiceError
from tokens.models import IssuedToken

Service = IssuedToken.Service
JOINS_CHANNEL = (Service.RTC, Service.RTC_RTM)
NAMES_A_USER = (Service.RTM, Service.RTC_RTM, Service.CHAT)


class Command(BaseCommand):
    help = "Issue an Agora token for USERNAME's own uid and print it as JSON. Audited (source=cli)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("service", choices=IssuedToken.Service.values)
        parser.add_argument("--channel", help="channel name (required for rtc and rtc+rtm)")
        parser.add_argument("--slot", default="main", help="which of the user's uids (default main)")
        parser.add_argument(
            "--role",
            choices=IssuedToken.Role.values,
            help="default subscriber (screen slot: video if allowed); recorder: the channel's recorder uid",
        )
        parser.add_argument("--expires-in", type=int, help="seconds (default AGORA_TOKEN_TTL)")
        parser.add_argument("--publish-expires-in", type=int, help="seconds until publishing ends (007)")
        parser.add_argument(
            "--token-version",
            choices=["006", "007"],
            help="default AGORA_TOKEN_VERSION (rtc+rtm, chat and chat-app: 007 only)",
        )

    def handle(
        self, *args, username, service, channel, slot, role, expires_in, publish_expires_in, token_version,
        **options,
    ):  # fmt: skip
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if service in JOINS_CHANNEL and channel is None:
            raise CommandError(f"--channel is required for an {service} token.")
        try:
            issued = services.issue_token(
                user=user,
                service=service,
                channel=channel or "",
                role=role,
                expires_in=expires_in,
                publish_expires_in=publish_expires_in,
                version=token_version,
                slot=slot,
                source=IssuedToken.Source.CLI,
            )
        except TokenServiceError as exc:
            raise CommandError(exc.message) from None
        body = {"uid": issued.uid, "slot": issued.slot}
        if service in JOINS_CHANNEL:
            body.update(channel=issued.channel, role=issued.role, publish_rights=issued.publish_rights)
        if service in NAMES_A_USER:
            body.update(user_id=issued.rtm_user_id)
        body.update(
            token=issued.token,
            version=issued.version,
            expires_at=issued.expires_at.isoformat(),
            expires_in=issued.expires_in,
        )
        if issued.publish_expires_at is not None:
            body.update(publish_expires_at=issued.publish_expires_at.isoformat())
        self.stdout.write(json.dumps(body, indent=2))
