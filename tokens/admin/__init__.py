"""The admin: a read-only audit log (for everyone, superusers included), the users' Agora
identities, channel events and suspect joins, the editable channel rules, the user admin with
each user's uids, and moderation (kick, ban, mute, revoke). One module per model admin, what
they share in base.py, the tool pages in views.py; the registrations are here, in the order the
admin had them."""

from django.contrib import admin

from tokens.admin.channel_events import ChannelEventAdmin
from tokens.admin.channel_rules import ChannelRuleAdmin
from tokens.admin.identities import AgoraIdentityAdmin
from tokens.admin.issued_tokens import IssuedTokenAdmin
from tokens.admin.moderation import ModerationActionAdmin
from tokens.admin.suspect_joins import SuspectJoinAdmin
from tokens.admin.users import User, UserWithAgoraAdmin
from tokens.models import (
    AgoraIdentity,
    ChannelEvent,
    ChannelRule,
    IssuedToken,
    ModerationAction,
    SuspectJoin,
)

admin.site.register(IssuedToken, IssuedTokenAdmin)
admin.site.register(AgoraIdentity, AgoraIdentityAdmin)
admin.site.register(ChannelRule, ChannelRuleAdmin)
if admin.site.is_registered(User):
    admin.site.unregister(User)  # replaced by the one that extends it
admin.site.register(User, UserWithAgoraAdmin)
admin.site.register(ChannelEvent, ChannelEventAdmin)
admin.site.register(ModerationAction, ModerationActionAdmin)
admin.site.register(SuspectJoin, SuspectJoinAdmin)
