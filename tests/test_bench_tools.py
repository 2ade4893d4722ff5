"""The benchmark's own database tools (bench/lanetool.py) against today's schema: a seeder
that no longer fits the audit table would only fail an hour into `make bench`."""

import importlib.util
import time
from pathlib import Path

import pytest
from django.db import connection

from tokens.models import IssuedToken
from tokens.services.identities import get_or_create_identity

pytestmark = pytest.mark.django_db


def _lanetool():
    path = Path(__file__).resolve().parent.parent / "bench" / "lanetool.py"
    spec = importlib.util.spec_from_file_location("bench_lanetool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_seeder_writes_audit_rows_the_schema_and_the_admin_accept(django_user_model):
    lanetool = _lanetool()
    users = [django_user_model.objects.create(username=f"{lanetool.USER_PREFIX}{i}") for i in range(3)]
    identity = get_or_create_identity(user=users[0])
    get_or_create_identity(user=users[0], slot="screen")  # a second slot must not double the rows
    with connection.cursor() as cursor:
        for statement in lanetool._seed_sql(connection.vendor, 300, int(time.time())):
            cursor.execute(statement)
    rows = IssuedToken.objects.all()
    assert rows.count() == 300
    assert set(rows.values_list("slot", flat=True)) == {"main"}
    assert set(rows.values_list("service", flat=True)) == {"rtc", "rtm"}
    assert set(rows.values_list("user_id", flat=True)) == {user.pk for user in users}
    assert set(rows.filter(user=users[0]).values_list("uid", flat=True)) == {identity.uid}
    assert all(1 <= uid <= 2**32 - 1 for uid in rows.values_list("uid", flat=True))
    assert all(row.expires_at > row.issued_at and len(row.token_sha256) == 64 for row in rows[:50])
