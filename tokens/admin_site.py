"""The admin site: Django's, with a clear answer when a login is locked out."""

from django.contrib import admin
from django.template.response import TemplateResponse

from tokens.exceptions import TokenServiceError


class TokenServerAdminSite(admin.AdminSite):
    site_header = "Agora token server"
    site_title = "Agora token server"
    index_title = "Administration"

    def login(self, request, extra_context=None):
        try:
            return super().login(request, extra_context)
        except TokenServiceError as exc:
            if exc.code != "login_locked":
                raise
            locked = exc
        context = {**self.each_context(request), "title": "Log in", "message": locked.message}
        response = TemplateResponse(request, "admin/login_locked.html", context, status=locked.status)
        for name, value in locked.headers.items():
            response[name] = value
        return response
