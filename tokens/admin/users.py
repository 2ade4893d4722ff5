"""The user admin the project already has (django.contrib.auth's, or a custom user model's),
extended with the user's Agora slots and a link to their tokens in the audit log."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html

from tokens.admin.base import ListFilterLookupsOnly
from tokens.admin.identities import AgoraIdentityInline

User = get_user_model()
# The user admin registered before this one (Django's UserAdmin if a custom user model has
# none): this one extends it, and tokens/admin/__init__.py puts it in its place.
user_admin_class = type(admin.site.get_model_admin(User)) if admin.site.is_registered(User) else UserAdmin


class UserWithAgoraAdmin(ListFilterLookupsOnly, user_admin_class):
    inlines = [*user_admin_class.inlines, AgoraIdentityInline]
    readonly_fields = (*user_admin_class.readonly_fields, "agora_tokens")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [*fieldsets, ("Agora", {"fields": ("agora_tokens",)})]

    @admin.display(description="Issued tokens")
    def agora_tokens(self, user) -> str:
        url = reverse("admin:tokens_issuedtoken_changelist") + f"?user={user.pk}"
        return format_html(
            '<a href="{}" id="user-agora-tokens">This user\u2019s tokens in the audit log</a>', url
        )
