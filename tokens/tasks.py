"""Moderation actions carried out at Agora, as tasks of Django's Tasks API (django-tasks, its
database backend; `manage.py db_worker` runs them).

One task per attempt. An attempt takes the action (a row lock, then a lease: `running_until`),
asks Agora for each uid's ban rule (or deletes them, for a lift) and stores each rule id the
moment Agora answers it; it ends applied, or enqueues the next attempt with a doubled delay on
a retryable error (Agora down, slow, rate-limiting), or gives up with the reason stored after
MODERATION_ATTEMPTS attempts or on an error no retry can mend. Exactly once, whatever dies:

- the action and its first task are committed together (the database backend), before Agora
  is called; each later task is enqueued in the transaction that records the failed attempt;
- an attempt runs only as the task the action names (`task_id`), only while it is pending and
  no live lease holds it: a duplicate or superseded task does nothing;
- a worker killed mid-call leaves its lease to run out (as long as that call could take, at
  most); the worker's recovery (`recover`, at its start and every few seconds, see
  tokens/management/commands/db_worker.py) then enqueues a new attempt, which first looks in
  Agora's rule list for the rule a lost answer may have created and adopts it, rather than
  ask again and leave a second rule behind.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskContext, TaskResultStatus, task
from django_tasks.exceptions import TaskResultDoesNotExist

from tokens import agora_rest
from tokens.agora_rest import AgoraRestError, ErrorKind
from tokens.agora_rest.client import SECONDS_RANGE
from tokens.choices import KIND_PRIVILEGE, ModerationKind, ModerationState
from tokens.models import ModerationAction, ModerationRule

logger = logging.getLogger(__name__)

RETRY_DELAY_MAX = 1800.0  # seconds: the longest wait between two attempts
LIFT_WAIT = 2.0  # seconds a lift waits for the ban's own running attempt to finish
# A task enqueued but not started this long after it was due is taken for lost.
STARTED_GRACE = timedelta(seconds=60)
_EXPIRY_SLACK = timedelta(seconds=60)  # a lost POST's rule expires about when the ban ends
RECOVERY_BATCH = 100

State = ModerationState


class _Stopped(Exception):  # noqa: N818 (an outcome, not an error)
    """The attempt ends early without an error: the action was lifted, or its ban ran out."""

    def __init__(self, failure: str = "") -> None:
        super().__init__(failure)
        self.failure = failure


# --- the task ------------------------------------------------------------------------------------


@task(takes_context=True)
def apply_moderation(context: TaskContext, action_id: int) -> str:
    """One attempt at moderation action `action_id` (see `attempt`)."""
    return attempt(action_id=action_id, task_id=str(context.task_result.id))


def enqueue_attempt(action: ModerationAction, *, at: datetime, delay: float = 0.0) -> None:
    """Enqueue the action's next attempt, `delay` seconds after `at`, as the one task that may
    run it; in the caller's transaction."""
    run_after = at + timedelta(seconds=delay)
    job = apply_moderation.using(run_after=run_after) if delay else apply_moderation
    result = job.enqueue(action.pk)
    action.task_id, action.next_attempt_at, action.running_until = str(result.id), run_after, None
    ModerationAction.objects.filter(pk=action.pk).update(
        task_id=action.task_id, next_attempt_at=run_after, running_until=None
    )


def _call_bound() -> timedelta:
    """How long one REST call can take with its own retries (each attempt's request, the
    rule-list lookup after a lost answer, the backoff), plus a second: a lease's length."""
    per_try = 2 * (settings.AGORA_REST_TIMEOUT + settings.AGORA_REST_CONNECT_TIMEOUT)
    return timedelta(seconds=settings.AGORA_REST_RETRIES * (per_try + settings.AGORA_REST_BACKOFF_MAX) + 1)


def _hold(action: ModerationAction) -> None:
    """Renew the attempt's lease for one more REST call."""
    action.running_until = timezone.now() + _call_bound()
    ModerationAction.objects.filter(pk=action.pk).update(running_until=action.running_until)


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: MODERATION_RETRY_DELAY doubled per failed attempt, at
    most RETRY_DELAY_MAX, never sooner than Agora's Retry-After."""
    delay = min(RETRY_DELAY_MAX, settings.MODERATION_RETRY_DELAY * 2 ** max(0, attempts - 1))
    return max(delay, retry_after or 0.0)


def attempt(*, action_id: int, task_id: str) -> str:
    """One attempt at the action, if it is still the task's to make; what became of it."""
    now = timezone.now()
    with transaction.atomic():
        action = ModerationAction.objects.select_for_update().filter(pk=action_id).first()
        if action is None:
            return "gone"
        if action.task_id != task_id:
            return "superseded"
        if action.state != State.PENDING:
            return f"skipped ({action.state})"
        if action.running_until is not None and action.running_until > now:
            return "held by another attempt"
        if action.attempts >= settings.MODERATION_ATTEMPTS:
            _fail(action, f"gave up after {action.attempts} attempts{_last(action)}")
            return "failed"
        target = action.lifts
        if target is not None and target.running_until is not None and target.running_until > now:
            enqueue_attempt(action, at=now, delay=LIFT_WAIT)  # its rules may still be coming
            return "waiting for the ban's attempt"
        action.attempts += 1
        action.running_until = now + _call_bound()
        action.save(update_fields=["attempts", "running_until"])
    try:
        if action.kind == ModerationKind.LIFT:
            _lift(action)
        else:
            _apply(action)
    except _Stopped as stop:
        return _finish(action, failure=stop.failure)
    except AgoraRestError as exc:
        return _retry_or_fail(action, exc)
    return _finish(action)


def _last(action: ModerationAction) -> str:
    return f"; last error: {action.failure}" if action.failure else ""


def _fail(action: ModerationAction, reason: str) -> None:
    action.state, action.failure, action.running_until = State.FAILED, reason[:300], None
    action.save(update_fields=["state", "failure", "running_until"])
    logger.warning("moderation %s id=%s failed: %s", action.kind, action.pk, action.failure)


def _finish(action: ModerationAction, *, failure: str = "") -> str:
    with transaction.atomic():
        action = ModerationAction.objects.select_for_update().get(pk=action.pk)
        if action.state != State.PENDING:  # lifted meanwhile: what was made stays for the lift
            action.running_until = None
            action.save(update_fields=["running_until"])
            return f"stopped ({action.state})"
        if failure:
            _fail(action, failure)
            return "failed"
        action.state, action.applied_at, action.running_until = State.APPLIED, timezone.now(), None
        action.failure = ""
        action.save(update_fields=["state", "applied_at", "running_until", "failure"])
    logger.info("moderation %s id=%s applied (attempt %d)", action.kind, action.pk, action.attempts)
    return "applied"


def _retry_or_fail(action: ModerationAction, exc: AgoraRestError) -> str:
    with transaction.atomic():
        action = ModerationAction.objects.select_for_update().get(pk=action.pk)
        if action.state != State.PENDING:
            action.running_until = None
            action.save(update_fields=["running_until"])
            return f"stopped ({action.state})"
        reason = f"attempt {action.attempts}: {exc}"
        if not exc.retryable or action.attempts >= settings.MODERATION_ATTEMPTS:
            _fail(
                action, reason if not exc.retryable else f"gave up after {action.attempts} attempts; {reason}"
            )
            return "failed"
        action.failure = reason[:300]  # the last error, shown while it is retried
        action.save(update_fields=["failure"])
        enqueue_attempt(action, at=timezone.now(), delay=retry_delay(action.attempts, exc.retry_after))
    logger.warning(
        "moderation %s id=%s: %s; retried at %s", action.kind, action.pk, reason, action.next_attempt_at
    )
    return "retrying"


# --- what an attempt asks of Agora ------------------------------------------------------------


class _RuleList:
    """Agora's rule list, read once per attempt when a rule may exist without its id stored."""

    def __init__(self) -> None:
        self._rules: list[agora_rest.BanRule] | None = None

    def find(self, action: ModerationAction, uid: int) -> int | None:
        """The id of the rule an earlier attempt of `action` made for `uid` but whose answer was
        lost: same channel, uid and privilege, expiring about when the ban ends (a kick's rule
        expires at once: never looked for), and no other action's."""
        if action.ends_at is None:
            return None
        if self._rules is None:
            self._rules = agora_rest.list_ban_rules()
        privilege = [KIND_PRIVILEGE[action.kind].value]
        matches = {
            rule.id
            for rule in self._rules
            if rule.channel == action.channel
            and rule.uid == uid
            and list(rule.privileges) == privilege
            and rule.ip is None
            and rule.expires_at is not None
            and abs(rule.expires_at - action.ends_at) <= _EXPIRY_SLACK
        }
        if matches:  # one an action holds already is that action's, not this one's
            matches -= set(
                ModerationRule.objects.filter(rule_id__in=matches)
                .exclude(action=action)
                .values_list("rule_id", flat=True)
            )
        return max(matches, default=None)


def _still_pending(action: ModerationAction) -> None:
    state = ModerationAction.objects.filter(pk=action.pk).values_list("state", flat=True).first()
    if state != State.PENDING:
        raise _Stopped()


def _apply(action: ModerationAction) -> None:
    """One rule per uid not yet holding one: a kick (0 s), or a ban until `ends_at`."""
    listed = _RuleList()
    privilege = KIND_PRIVILEGE[action.kind].value
    for rule in action.rules.filter(rule_id=None).order_by("id"):
        _still_pending(action)  # a lift stops what is left
        _hold(action)
        seconds = 0
        if action.ends_at is not None:
            left = math.ceil((action.ends_at - timezone.now()).total_seconds())
            if left <= 0:
                raise _Stopped("the ban ended before Agora could apply it")
            seconds = max(SECONDS_RANGE[0], left)
        rule_id = listed.find(action, rule.uid) if action.attempts > 1 else None
        if rule_id is None:
            rule_id = agora_rest.create_ban_rule(
                channel=action.channel, uid=rule.uid, seconds=seconds, privileges=[privilege]
            )
        else:
            logger.info("moderation id=%s: adopted Agora rule %s for uid %s", action.pk, rule_id, rule.uid)
        # Stored at once, in its own commit: no later attempt asks for this uid again.
        ModerationRule.objects.filter(pk=rule.pk).update(rule_id=rule_id, created_at=timezone.now())


def _lift(action: ModerationAction) -> None:
    """Delete every rule the lifted ban made (one lost with its answer: found in the list)."""
    target = action.lifts
    listed = _RuleList()
    for rule in target.rules.filter(deleted_at=None).order_by("id"):
        rule_id = rule.rule_id
        if rule_id is None and target.attempts:
            rule_id = listed.find(target, rule.uid)
        if rule_id is not None:
            _hold(action)
            try:
                agora_rest.delete_ban_rule(rule_id)
            except AgoraRestError as exc:
                if not (exc.kind == ErrorKind.REJECTED and exc.status == 404):
                    raise
                # Not found: it ended or was deleted already, which is what a lift wants.
        ModerationRule.objects.filter(pk=rule.pk).update(rule_id=rule_id, deleted_at=timezone.now())


# --- recovery of attempts whose worker died ------------------------------------------------------


def _lost(action: ModerationAction, now: datetime) -> bool:
    """Whether nothing will make the action's next attempt: its task is gone, finished, or
    claimed by a worker whose lease has run out (or that never took one)."""
    if not action.task_id:
        return True
    try:
        result = apply_moderation.get_result(action.task_id)
    except TaskResultDoesNotExist:
        return True
    if result.status == TaskResultStatus.READY:
        return False  # it will run
    if result.status == TaskResultStatus.RUNNING:
        if action.running_until is not None:
            return action.running_until <= now
        return result.started_at is None or result.started_at < now - STARTED_GRACE
    return True  # finished while the action is still pending: its attempt died with an error


def recover(*, now: datetime | None = None) -> int:
    """Enqueue a new attempt for each pending action whose attempt died with its worker (or
    whose task is gone); how many. Safe to run in every worker at once."""
    now = now or timezone.now()
    candidates = ModerationAction.objects.filter(state=State.PENDING).filter(
        Q(running_until__isnull=True) | Q(running_until__lte=now)
    )
    recovered = 0
    for action_id in list(
        candidates.order_by("next_attempt_at").values_list("pk", flat=True)[:RECOVERY_BATCH]
    ):
        with transaction.atomic():
            action = ModerationAction.objects.select_for_update().filter(pk=action_id).first()
            if action is None or action.state != State.PENDING or not _lost(action, now):
                continue
            if action.running_until is not None and action.running_until > now:
                continue
            enqueue_attempt(action, at=now)
        recovered += 1
        logger.warning(
            "moderation %s id=%s: its attempt was lost (worker gone?); attempt %d enqueued",
            action.kind, action.pk, action.attempts + 1,
        )  # fmt: skip
    return recovered
