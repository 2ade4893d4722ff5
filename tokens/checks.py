"""System checks for the Agora settings: `manage.py check` names the setting that is wrong."""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, router
from django.utils import timezone
from django.utils.module_loading import import_string

from tokens import agora, credentials
from tokens.agora_rest.client import rest_configuration_problems
from tokens.policies import BUILT_IN_CHANNEL_POLICIES, PUBLISHER_POLICIES
from tokens.validators import MIN_LIFETIME, max_lifetime

# Credentials that must never sign production tokens: the obviously fake pair that
# .env.example ships for development, and the pair published in the tutorial this server
# replaces (anyone can mint tokens with those).
DEVELOPMENT_CREDENTIALS = {
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
    "e004df68b67841a1b6ea7c08b7225814",
    "521c7307f1d547e080c34585dd20662e",
}
# Cache backends that every process and host see alike, so throttles hold across them.
SHARED_CACHES = ("RedisCache", "PyMemcacheCache", "PyLibMCCache", "DatabaseCache")


def _hex32_error(name: str, value: object, check_id: str) -> list[Error]:
    if agora.is_hex32(value):
        return []
    state = "is not set" if not value else "is not 32 hexadecimal characters"
    return [
        Error(
            f"{name} {state}; token endpoints answer 503 agora_not_configured.",
            hint=f"Set {name} to the value from Agora Console (Project > Config).",
            id=check_id,
        )
    ]


@register("agora")
def check_agora_settings(app_configs=None, **kwargs) -> list[Error]:
    """AGORA_* settings: credentials present and well-formed, knobs within Agora's limits."""
    errors = _hex32_error("AGORA_APP_ID", settings.AGORA_APP_ID, "tokens.E001")
    errors += _hex32_error("AGORA_APP_CERTIFICATE", settings.AGORA_APP_CERTIFICATE, "tokens.E002")
    for name, check_id in (
        ("AGORA_TOKEN_VERSION", "tokens.E003"),
        ("AGORA_COMPAT_TOKEN_VERSION", "tokens.E004"),
    ):
        value = getattr(settings, name)
        if value not in agora.VERSIONS:
            errors.append(Error(f"{name} is {value!r}; it must be 006 or 007.", id=check_id))
    max_ttl = settings.AGORA_TOKEN_MAX_TTL
    if not isinstance(max_ttl, int) or not MIN_LIFETIME <= max_ttl <= agora.MAX_LIFETIME:
        errors.append(
            Error(
                f"AGORA_TOKEN_MAX_TTL is {max_ttl!r}; it must be within "
                f"{MIN_LIFETIME}..{agora.MAX_LIFETIME} seconds (Agora caps tokens at 24 h).",
                id="tokens.E005",
            )
        )
    ttl = settings.AGORA_TOKEN_TTL
    if not isinstance(ttl, int) or not MIN_LIFETIME <= ttl <= min(max_ttl, agora.MAX_LIFETIME):
        errors.append(
            Error(
                f"AGORA_TOKEN_TTL is {ttl!r}; it must be within "
                f"{MIN_LIFETIME}..AGORA_TOKEN_MAX_TTL ({max_ttl}) seconds.",
                id="tokens.E006",
            )
        )
    policy = settings.AGORA_PUBLISHER_POLICY
    if policy not in PUBLISHER_POLICIES:
        errors.append(
            Error(
                f"AGORA_PUBLISHER_POLICY is {policy!r}; it must be 'open' or 'permission'.",
                id="tokens.E007",
            )
        )
    if settings.TRUSTED_PROXY_COUNT < 0:
        errors.append(Error("TRUSTED_PROXY_COUNT must be 0 or more.", id="tokens.E008"))
    errors += _channel_policy_errors()
    if not isinstance(settings.AGORA_MAX_SLOTS, int) or settings.AGORA_MAX_SLOTS < 1:
        errors.append(
            Error(f"AGORA_MAX_SLOTS is {settings.AGORA_MAX_SLOTS!r}; it must be 1 or more.", id="tokens.E012")
        )
    uid_max = settings.AGORA_UID_MAX
    if not isinstance(uid_max, int) or not agora.UID_MIN <= uid_max <= agora.UID_MAX:
        errors.append(
            Error(f"AGORA_UID_MAX is {uid_max!r}; it must be within 1..{agora.UID_MAX}.", id="tokens.E013")
        )
    return errors + _rotation_setting_problems()


ROTATION = "see the README's 'Rotating the App Certificate'"


def _rotation_setting_problems() -> list[Error | Warning]:
    """AGORA_APP_CERTIFICATE_SECONDARY and AGORA_SIGNING_CERTIFICATE (credentials.py decides)."""
    problems = credentials.credential_problems()
    messages: list[Error | Warning] = []
    secondary, signing = settings.AGORA_APP_CERTIFICATE_SECONDARY, settings.AGORA_SIGNING_CERTIFICATE
    if "AGORA_SIGNING_CERTIFICATE" in problems:
        messages.append(
            Error(
                f"AGORA_SIGNING_CERTIFICATE {problems['AGORA_SIGNING_CERTIFICATE']}; token endpoints "
                "answer 503 agora_not_configured.",
                hint="Set primary (AGORA_APP_CERTIFICATE signs) or secondary "
                "(AGORA_APP_CERTIFICATE_SECONDARY signs).",
                id="tokens.E041",
            )
        )
    elif "AGORA_APP_CERTIFICATE_SECONDARY" in problems and not secondary:
        messages.append(
            Error(
                "AGORA_SIGNING_CERTIFICATE is secondary, but AGORA_APP_CERTIFICATE_SECONDARY is not set; "
                "token endpoints answer 503 agora_not_configured.",
                hint=f"Set the secondary certificate from Agora Console, or sign with primary ({ROTATION}).",
                id="tokens.E042",
            )
        )
    if "AGORA_APP_CERTIFICATE_SECONDARY" in problems and secondary:
        state = f"is used to sign ({signing})" if signing == credentials.SECONDARY else "is set"
        messages.append(
            Error(
                f"AGORA_APP_CERTIFICATE_SECONDARY {state} but is not 32 hexadecimal characters; token "
                "endpoints answer 503 agora_not_configured.",
                hint="Copy the secondary certificate from Agora Console (Project > Config), or unset it.",
                id="tokens.E040",
            )
        )
    elif secondary and secondary == settings.AGORA_APP_CERTIFICATE:
        messages.append(
            Warning(
                "AGORA_APP_CERTIFICATE_SECONDARY is the same certificate as AGORA_APP_CERTIFICATE: "
                "nothing is being rotated.",
                hint=f"Set the secondary certificate Agora Console shows, or unset it ({ROTATION}).",
                id="tokens.W043",
            )
        )
    return messages


def _channel_policy_errors() -> list[Error]:
    policy = settings.AGORA_CHANNEL_POLICY
    if policy in BUILT_IN_CHANNEL_POLICIES:
        return []
    try:
        found = import_string(policy)
    except ImportError as exc:
        return [
            Error(
                f"AGORA_CHANNEL_POLICY is {policy!r}: not open, rules, nor an importable callable ({exc}).",
                hint="Set open, rules, or the dotted path of a (user, channel, role) callable.",
                id="tokens.E011",
            )
        ]
    if not callable(found):
        return [Error(f"AGORA_CHANNEL_POLICY {policy!r} is not callable.", id="tokens.E011")]
    return []


@register("agora")
def check_uids_within_uid_max(app_configs=None, **kwargs) -> list[Warning]:
    """Existing uids above a lowered AGORA_UID_MAX (new ones are drawn below it)."""
    limit = settings.AGORA_UID_MAX
    if not isinstance(limit, int) or limit >= agora.UID_MAX:
        return []  # nothing can be above the default; no query
    from tokens.models import AgoraIdentity

    try:
        above = AgoraIdentity.objects.filter(uid__gt=limit).count()
    except DatabaseError:
        return []  # not migrated, or unreachable: other commands say so
    if not above:
        return []
    return [
        Warning(
            f"{above} existing uid(s) are above AGORA_UID_MAX ({limit}); clients that hold a uid in a "
            "signed 32-bit int show them as negative numbers.",
            hint="Those users keep their uids (a uid never changes); such clients must convert them.",
            id="tokens.W014",
        )
    ]


@register("agora", Tags.database)
def check_certificate_rotation(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    """A rotation left half done, read from the audit log: the secondary set but signing nothing
    for longer than the longest lifetime, or signing while no token of the primary's is still
    valid (the primary can go). A database check: `check --database default` and `migrate`."""
    if not databases or credentials.credential_problems() or not settings.AGORA_APP_CERTIFICATE_SECONDARY:
        return []  # no database asked for (plain `check`), or nothing being rotated: no query
    from tokens.models import IssuedToken

    alias = router.db_for_read(IssuedToken)
    if alias not in databases:
        return []
    now = timezone.now()
    primary = credentials.fingerprint(settings.AGORA_APP_CERTIFICATE)
    secondary = credentials.fingerprint(settings.AGORA_APP_CERTIFICATE_SECONDARY)
    rows = IssuedToken.objects.using(alias)
    try:
        if settings.AGORA_SIGNING_CERTIFICATE == credentials.PRIMARY:
            ttl = max_lifetime()
            recent = rows.filter(issued_at__gt=now - timedelta(seconds=ttl), certificate=secondary)
            if recent.exists():
                return []  # it signed within the longest lifetime: a switch back under way
            return [
                Warning(
                    f"AGORA_APP_CERTIFICATE_SECONDARY ({secondary}) is set but has signed no token for "
                    f"longer than AGORA_TOKEN_MAX_TTL ({ttl} s): AGORA_APP_CERTIFICATE still signs.",
                    hint="Mid-rotation, switch with AGORA_SIGNING_CERTIFICATE=secondary; if the rotation "
                    f"is over or abandoned, unset AGORA_APP_CERTIFICATE_SECONDARY ({ROTATION}).",
                    id="tokens.W044",
                )
            ]
        # Rows without a fingerprint were written before rotation existed: the primary signed them.
        alive = rows.filter(
            issued_at__gt=now - timedelta(seconds=agora.MAX_LIFETIME), expires_at__gt=now,
            certificate__in=[primary, ""],
        )  # fmt: skip
        if alive.exists():
            return []
    except DatabaseError:
        return []  # not migrated yet (migrate runs this first), or unreachable: others say so
    return [
        Warning(
            f"The secondary certificate signs, and every token AGORA_APP_CERTIFICATE ({primary}) signed "
            "has expired: the old certificate is no longer needed.",
            hint="Finish the rotation: delete the old certificate in Agora Console, then set "
            "AGORA_APP_CERTIFICATE to the secondary's value, unset AGORA_APP_CERTIFICATE_SECONDARY and "
            f"set AGORA_SIGNING_CERTIFICATE=primary ({ROTATION}).",
            id="tokens.W045",
        )
    ]


# Each AGORA_REST_* knob the REST client cannot work with is an error of its own.
REST_SETTING_CHECKS = {
    "AGORA_REST_URL": "tokens.E031",
    "AGORA_REST_TIMEOUT": "tokens.E032",
    "AGORA_REST_CONNECT_TIMEOUT": "tokens.E032",
    "AGORA_REST_RETRIES": "tokens.E033",
    "AGORA_REST_BACKOFF": "tokens.E034",
    "AGORA_REST_BACKOFF_MAX": "tokens.E034",
}


@register("agora")
def check_agora_rest_settings(app_configs=None, **kwargs) -> list[Error | Warning]:
    """Agora's REST API: without a customer id and secret moderation is off (a warning: the
    token server works without it); a malformed URL, timeout, retry count or backoff is an error."""
    problems = rest_configuration_problems()
    messages: list[Error | Warning] = []
    missing = [name for name in ("AGORA_CUSTOMER_ID", "AGORA_CUSTOMER_SECRET") if name in problems]
    if missing:
        messages.append(
            Warning(
                "; ".join(f"{name} {problems[name]}" for name in missing)
                + ": moderation through Agora's REST API (kick, ban, channel user lists) is off.",
                hint="Create a RESTful API key in Agora Console (Developer Toolkit > RESTful API) and "
                "set AGORA_CUSTOMER_ID and AGORA_CUSTOMER_SECRET to its Customer ID and Customer Secret.",
                id="tokens.W030",
            )
        )
        if settings.AGORA_AUTO_KICK_SUSPECT:
            messages.append(
                Warning(
                    "AGORA_AUTO_KICK_SUSPECT is on but moderation is off: suspect joins are flagged "
                    "and nobody is kicked.",
                    hint="Set AGORA_CUSTOMER_ID and AGORA_CUSTOMER_SECRET, or AGORA_AUTO_KICK_SUSPECT=false.",
                    id="tokens.W035",
                )
            )
    for name, check_id in REST_SETTING_CHECKS.items():
        if name in problems:
            messages.append(Error(f"{name} {problems[name]}.", id=check_id))
    return messages


def _writable_directory(path: str) -> bool:
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


@register("metrics")
def check_metrics_settings(app_configs=None, **kwargs) -> list[Error]:
    """METRICS_ALLOWED_IPS holds addresses or networks; the multiprocess directory is writable."""
    errors = []
    for entry in settings.METRICS_ALLOWED_IPS:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            errors.append(
                Error(
                    f"METRICS_ALLOWED_IPS: {entry!r} is not an IP address or network; it admits nobody.",
                    hint="List addresses or CIDR networks, comma-separated, e.g. 10.0.0.0/8,127.0.0.1.",
                    id="tokens.E021",
                )
            )
    path = settings.PROMETHEUS_MULTIPROC_DIR
    multiprocess = path or "PROMETHEUS_MULTIPROC_DIR" in os.environ
    if settings.METRICS_ENABLED and multiprocess and not _writable_directory(path):
        errors.append(
            Error(
                f"PROMETHEUS_MULTIPROC_DIR {path!r} is not a writable directory: no metric can be recorded.",
                hint="Create it, empty, before the server starts (and empty it again at every start).",
                id="tokens.E020",
            )
        )
    return errors


@register(Tags.security, deploy=True)
def check_deployment(app_configs=None, **kwargs) -> list[Error | Warning]:
    """`check --deploy`: no development credentials, a shared throttle cache, no demo password,
    metrics summed over every process and not open to everyone."""
    problems: list[Error | Warning] = []
    for name in ("AGORA_APP_ID", "AGORA_APP_CERTIFICATE"):
        if getattr(settings, name).lower() in DEVELOPMENT_CREDENTIALS:
            problems.append(
                Error(
                    f"{name} is a development or published value, not your project's.",
                    hint="Use the App ID and certificate of your Agora project.",
                    id="tokens.E010",
                )
            )
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    if backend not in SHARED_CACHES:
        problems.append(
            Warning(
                f"The cache ({backend}) is not shared: each process counts throttles on its own.",
                hint="With several processes or hosts set CACHE_URL=redis://host:6379/0.",
                id="tokens.W011",
            )
        )
    if settings.METRICS_ENABLED and not settings.PROMETHEUS_MULTIPROC_DIR:
        problems.append(
            Warning(
                "METRICS_ENABLED without PROMETHEUS_MULTIPROC_DIR: with several worker processes each "
                "scrape of /metrics shows the counts of the one process that answered it.",
                hint="Set PROMETHEUS_MULTIPROC_DIR to a directory emptied at every server start.",
                id="tokens.W022",
            )
        )
    if settings.METRICS_ENABLED and not settings.METRICS_ALLOWED_IPS:
        problems.append(
            Warning(
                "METRICS_ENABLED without METRICS_ALLOWED_IPS: any client that reaches the server "
                "can read /metrics.",
                hint="List your Prometheus servers' addresses, or keep /metrics off the public proxy.",
                id="tokens.W023",
            )
        )
    if settings.DEMO_PASSWORD:
        problems.append(
            Warning(
                "DEMO_PASSWORD is set; the demo account is for development only.",
                hint="Unset DEMO_PASSWORD and delete the demo user in production.",
                id="tokens.W012",
            )
        )
    return problems
