"""What the moderation commands (kick, ban, unban) share: whom they name, how they answer."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from tokens.exceptions import TokenServiceError
from tokens.services import moderation


class ModerationCommand(BaseCommand):
    """A command over one moderation service call: USERNAME (or --uid), --channel, --reason;
    the actions as JSON on stdout; a refusal (not configured, no such user...) a CommandError."""

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the user (or give --uid)")
        parser.add_argument("--uid", type=int, help="one of the user's uids instead of a username")
        parser.add_argument("--channel", required=True)
        parser.add_argument("--reason", default="", help="kept with the action")

    def target(self, options) -> dict:
        if (options["username"] is None) == (options["uid"] is None):
            raise CommandError("Name the user: USERNAME or --uid (one of them).")
        return {"username": options["username"], "uid": options["uid"]}

    def run(self, call, **kwargs) -> None:
        try:
            done = call(**kwargs, source=moderation.Source.CLI)
        except TokenServiceError as exc:
            raise CommandError(exc.message) from None
        actions = done if isinstance(done, list) else [done]
        body = [
            {
                "id": a.pk, "action": a.kind, "channel": a.channel, "username": a.username, "uids": a.uids,
                "seconds": a.seconds, "ends_at": a.ends_at.isoformat() if a.ends_at else None,
                "state": a.state, "lifts": a.lifts_id,
            }
            for a in actions
        ]  # fmt: skip
        self.stdout.write(json.dumps(body if isinstance(done, list) else body[0], indent=2))
        self.stderr.write("Queued: the worker (manage.py db_worker) carries it out at Agora.")
