"""The admin site: Django's, with a clear answer when a login is locked out.

Beside the tokens.admin package, not in it: importing any module of the package runs its
__init__, which registers the model admins on the default site, and Django imports this
class while it builds that very site (their registrations would go to a site it then
replaces).
"""

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
