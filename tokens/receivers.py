"""What the app does when something happens elsewhere, connected at start-up (AppConfig.ready):

- Live revocation on the user model: deactivating a user (is_active True -> False, saved by the
  admin, the API or any code that saves the user) or deleting one takes back what they hold
  (tokens/services/moderation.py: their API keys, and bans at Agora for every channel they hold
  an unexpired token for). Logging out does not. A queryset update() sends no signal: use
  `revoke_everything` (or the admin's action) beside it.
- A suspect join (tokens.signals.suspect_join_flagged) kicks the joiner when
  AGORA_AUTO_KICK_SUSPECT was on as it was flagged: a kick action, written and queued here,
  sent to Agora by the task worker (the webhook that flagged it must answer within seconds)."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from tokens.services import moderation
from tokens.signals import suspect_join_flagged

logger = logging.getLogger(__name__)

REVOKED_BY = moderation.REVOKED_BY
_DEACTIVATED, _PLAN = "_agora_deactivated", "_agora_revocation_plan"


def _deactivating(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """Note a save that turns an active user inactive (one query, only when it might)."""
    if raw or instance._state.adding or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    was_active = sender._default_manager.filter(pk=instance.pk, is_active=True).exists()
    setattr(instance, _DEACTIVATED, was_active)


def _deactivated(sender, instance, created=False, raw=False, **kwargs) -> None:
    if raw or not getattr(instance, _DEACTIVATED, False):
        return
    setattr(instance, _DEACTIVATED, False)
    moderation.revoke_everything(
        user=instance, requested_by=getattr(instance, REVOKED_BY, None), reason="user deactivated"
    )


def _deleting(sender, instance, **kwargs) -> None:
    """Read what the user holds before the deletion empties the audit rows' user column."""
    setattr(instance, _PLAN, moderation.revocation_plan(user=instance))


def _deleted(sender, instance, **kwargs) -> None:
    plan = getattr(instance, _PLAN, None)
    if plan is None:
        return
    done = moderation.apply_revocation(
        plan, user=None, requested_by=getattr(instance, REVOKED_BY, None), reason="user deleted"
    )
    logger.info("revoked deleted user=%s bans=%d tokens=%d", plan.username, len(done.actions), done.tokens)


def _kick_suspect(sender, *, flag, kick: bool, **kwargs) -> None:
    if kick:
        moderation.kick_uid(channel=flag.channel, uid=flag.uid, reason=f"suspect join: {flag.reason}")


def connect() -> None:
    """Connect the receivers (AppConfig.ready)."""
    user_model = get_user_model()
    uid = "tokens.receivers"
    suspect_join_flagged.connect(_kick_suspect, dispatch_uid=f"{uid}.kick_suspect")
    pre_save.connect(_deactivating, sender=user_model, dispatch_uid=f"{uid}.deactivating")
    post_save.connect(_deactivated, sender=user_model, dispatch_uid=f"{uid}.deactivated")
    pre_delete.connect(_deleting, sender=user_model, dispatch_uid=f"{uid}.deleting")
    post_delete.connect(_deleted, sender=user_model, dispatch_uid=f"{uid}.deleted")
