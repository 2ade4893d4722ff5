"""Who may get which token: the publisher policy (AGORA_PUBLISHER_POLICY)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser

from tokens.exceptions import TokenServiceError

POLICY_OPEN, POLICY_PERMISSION = PUBLISHER_POLICIES = ("open", "permission")


def check_publisher_allowed(user: AbstractBaseUser) -> None:
    """403 `publisher_not_allowed` unless the policy lets this user publish."""
    policy = settings.AGORA_PUBLISHER_POLICY
    if policy == POLICY_OPEN:
        return
    if policy == POLICY_PERMISSION and user.has_perm("tokens.publish"):
        return
    raise TokenServiceError(
        "publisher_not_allowed",
        "role: this account may not request publisher tokens.",
        status=403,
        fields={"role": ["Publisher tokens need the tokens.publish permission."]},
    )
