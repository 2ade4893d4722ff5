import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tokens.checks import check_agora_settings, check_deployment


def _ids(messages):
    return sorted(m.id for m in messages)


def test_a_complete_configuration_passes():
    assert check_agora_settings() == []


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("AGORA_APP_ID", "", "tokens.E001"),
        ("AGORA_APP_ID", "970CA35de60c44645bbae8a215061b3", "tokens.E001"),
        ("AGORA_APP_CERTIFICATE", "", "tokens.E002"),
        ("AGORA_APP_CERTIFICATE", "z" * 32, "tokens.E002"),
        ("AGORA_TOKEN_VERSION", "008", "tokens.E003"),
        ("AGORA_COMPAT_TOKEN_VERSION", "7", "tokens.E004"),
        ("AGORA_TOKEN_MAX_TTL", 90000, "tokens.E005"),
        ("AGORA_TOKEN_TTL", 30, "tokens.E006"),
        ("AGORA_PUBLISHER_POLICY", "closed", "tokens.E007"),
        ("TRUSTED_PROXY_COUNT", -1, "tokens.E008"),
    ],
)
def test_each_bad_setting_is_named_by_its_own_check(settings, name, value, check_id):
    setattr(settings, name, value)
    errors = check_agora_settings()
    assert _ids(errors) == [check_id]
    assert name in errors[0].msg


def test_ttl_above_the_configured_maximum_is_reported(settings):
    settings.AGORA_TOKEN_MAX_TTL = 600
    settings.AGORA_TOKEN_TTL = 3600
    assert _ids(check_agora_settings()) == ["tokens.E006"]


def test_manage_py_check_fails_without_credentials(settings):
    settings.AGORA_APP_ID = ""
    with pytest.raises(SystemCheckError, match=r"tokens\.E001"):
        call_command("check")


def test_deploy_check_rejects_the_development_and_published_credentials(settings):
    settings.AGORA_APP_ID = "0123456789abcdef0123456789abcdef"
    settings.AGORA_APP_CERTIFICATE = "521c7307f1d547e080c34585dd20662e"  # the tutorial's
    assert _ids(m for m in check_deployment() if m.level >= 40) == ["tokens.E010", "tokens.E010"]


def test_deploy_check_asks_for_a_shared_cache_and_no_demo_password(settings):
    settings.DEMO_PASSWORD = "x"
    assert {"tokens.W011", "tokens.W012"} <= set(_ids(check_deployment()))
    settings.DEMO_PASSWORD = ""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}
    }
    assert _ids(check_deployment()) == []


def test_env_example_ships_credentials_that_check_deploy_reports():
    from pathlib import Path

    lines = (Path(__file__).resolve().parent.parent / ".env.example").read_text().splitlines()
    pairs = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    from tokens.agora import is_hex32
    from tokens.checks import DEVELOPMENT_CREDENTIALS

    for name in ("AGORA_APP_ID", "AGORA_APP_CERTIFICATE"):
        assert is_hex32(pairs[name])
        assert pairs[name] in DEVELOPMENT_CREDENTIALS


def test_auto_kick_without_moderation_is_a_warning_naming_both(settings):
    from tokens.checks import check_agora_rest_settings

    settings.AGORA_CUSTOMER_ID = settings.AGORA_CUSTOMER_SECRET = ""
    settings.AGORA_AUTO_KICK_SUSPECT = True
    assert "tokens.W035" in [m.id for m in check_agora_rest_settings()]
    settings.AGORA_AUTO_KICK_SUSPECT = False
    assert "tokens.W035" not in [m.id for m in check_agora_rest_settings()]
