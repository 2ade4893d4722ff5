"""The app's signals: what other modules may act on without this one importing them.

`suspect_join_flagged(sender=SuspectJoin, flag=<SuspectJoin>, kick=<bool>)` is sent once per new
flag, after its row is committed (tokens/services/suspects.py). `kick` is
AGORA_AUTO_KICK_SUSPECT as it was when the flag was written: the moderation service connects a
receiver that kicks the joiner (`kick_uid(channel=flag.channel, uid=flag.uid, reason=...)`)
when it is true. Receivers run inside Agora's webhook request, which must answer within
seconds: one that calls Agora's REST API enqueues a task rather than call it there. A receiver
that raises is logged and does not fail the webhook.
"""

from django.dispatch import Signal

suspect_join_flagged = Signal()
