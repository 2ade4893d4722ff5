"""Password authentication with limits on guessing, for every login (API and admin alike)."""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.views.decorators.debug import sensitive_variables

from tokens.clients import client_ip
from tokens.services.accounts import start_login_attempt

logger = logging.getLogger(__name__)


class GuardedModelBackend(ModelBackend):
    """Django's ModelBackend, with each attempt counted against its client IP and account
    before the password is checked (429 `login_locked` past the limits) and given back when
    the password is right. Failed attempts are logged, never with the password."""

    @sensitive_variables("password", "kwargs")
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        ip = client_ip(request) if request is not None else None
        attempt = start_login_attempt(username=username, client_ip=ip)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            logger.warning("login failed: account %r from %s", username, ip or "unknown address")
            return None
        attempt.succeeded()
        return user
