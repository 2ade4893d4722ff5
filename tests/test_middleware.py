"""Static files: served with or without collectstatic, and no warning when it has not run."""

import warnings

from django.http import HttpResponse
from django.test import Client

from tokens.middleware import StaticFilesMiddleware


def test_missing_static_root_starts_without_a_warning(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "never-collected"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StaticFilesMiddleware(lambda request: HttpResponse())


def test_admin_static_files_are_served_without_collectstatic(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "never-collected"
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200


def test_a_collected_static_root_is_served(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    (tmp_path / "only-collected.txt").write_text("collected")
    response = Client().get("/static/only-collected.txt")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"collected"
