from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Agora tokens"

    def ready(self) -> None:
        from tokens import checks, receivers  # noqa: F401 (checks registers the system checks)

        receivers.connect()  # live revocation; the auto-kick of suspect joins


class TokenServerAdminConfig(AdminConfig):
    """django.contrib.admin, served by TokenServerAdminSite."""

    default_site = "tokens.admin_site.TokenServerAdminSite"
