from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Agora tokens"

    def ready(self) -> None:
        from tokens import checks, signals  # noqa: F401 (checks registers the system checks)

        signals.connect()  # live revocation when a user is deactivated or deleted


class TokenServerAdminConfig(AdminConfig):
    """django.contrib.admin, served by TokenServerAdminSite."""

    default_site = "tokens.admin_site.TokenServerAdminSite"
