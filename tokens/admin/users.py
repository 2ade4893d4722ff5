"""The user admin the project already has (django.contrib.auth's, or a custom user model's),
extended with the user's Agora slots and a link to their tokens in the audit log."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html

from tokens.admin.base import ListFilterLookupsOnly
from tokens.admin.identities import AgoraIdentityInline
from tokens.admin.moderation import MODERATE, moderation_buttons, report_revocation, revoke_link
from tokens.services import moderation

User = get_user_model()
# The user admin registered before this one (Django's UserAdmin if a custom user model has
# none): this one extends it, and tokens/admin/__init__.py puts it in its place.
user_admin_class = type(admin.site.get_model_admin(User)) if admin.site.is_registered(User) else UserAdmin


class UserWithAgoraAdmin(ListFilterLookupsOnly, user_admin_class):
    inlines = [*user_admin_class.inlines, AgoraIdentityInline]
    readonly_fields = (*user_admin_class.readonly_fields, "agora_tokens", "agora_moderation")
    actions = [*(user_admin_class.actions or []), "revoke_everything"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        agora_fields = (
            ("agora_tokens", "agora_moderation") if request.user.has_perm(MODERATE) else ("agora_tokens",)
        )
        return [*fieldsets, ("Agora", {"fields": agora_fields})]

    # Deactivating or deleting a user here revokes what they hold (tokens/signals.py) in the
    # admin's name.
    def save_model(self, request, obj, form, change):
        setattr(obj, moderation.REVOKED_BY, request.user)
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        setattr(obj, moderation.REVOKED_BY, request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:  # one by one, as Django's own delete_queryset does with signals
            self.delete_model(request, obj)

    @admin.display(description="Moderation")
    def agora_moderation(self, user) -> str:
        return format_html(
            "{} in a channel you name · {}", moderation_buttons(user_id=user.pk), revoke_link(user.pk)
        )

    @admin.action(
        description="Revoke everything (API keys; Agora bans for their live tokens)", permissions=["moderate"]
    )
    def revoke_everything(self, request, queryset):
        for user in queryset:
            done = moderation.revoke_everything(
                user=user, requested_by=request.user, reason="revoked in the admin"
            )
            report_revocation(self, request, user, done)

    def has_moderate_permission(self, request) -> bool:
        return request.user.has_perm(MODERATE)

    @admin.display(description="Issued tokens")
    def agora_tokens(self, user) -> str:
        url = reverse("admin:tokens_issuedtoken_changelist") + f"?user={user.pk}"
        return format_html(
            '<a href="{}" id="user-agora-tokens">This user\u2019s tokens in the audit log</a>', url
        )
