from django.contrib import admin
from django.urls import include, path

from tokens.views import DocsView, SchemaView, index

urlpatterns = [
    path("", index, name="index"),
    path("", include("tokens.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
]

# Requests that never reach a DRF view still get the API's one error shape.
handler400 = "tokens.exceptions.bad_request"
handler403 = "tokens.exceptions.permission_denied"
handler404 = "tokens.exceptions.page_not_found"
handler500 = "tokens.exceptions.server_error"
