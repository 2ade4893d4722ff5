from django.urls import path

from tokens import channel_views, views, webhooks
from tokens.joinpath import views as token_views

app_name = "tokens"

urlpatterns = [
    path("api/v1/auth/token/", views.ApiTokenView.as_view(), name="auth-token"),
    path("api/v1/me/", views.MeView.as_view(), name="me"),
    # Any text up to /participants/ is the channel (a "/" in it gets a 400 naming the channel).
    path(
        "api/v1/channels/<path:channel>/participants/",
        channel_views.ParticipantsView.as_view(),
        name="channel-participants",
    ),
    path("api/v1/tokens/rtc/", token_views.RtcTokenView.as_view(), name="rtc-token"),
    path("api/v1/tokens/rtm/", token_views.RtmTokenView.as_view(), name="rtm-token"),
    path("api/v1/tokens/rtc-rtm/", token_views.RtcRtmTokenView.as_view(), name="rtc-rtm-token"),
    path("api/v1/tokens/chat/", token_views.ChatTokenView.as_view(), name="chat-token"),
    path("api/v1/tokens/chat/app/", token_views.ChatAppTokenView.as_view(), name="chat-app-token"),
    path("api/v1/tokens/recorder/", token_views.RecorderTokenView.as_view(), name="recorder-token"),
    # The tutorial's contract, kept for its clients (login now required).
    path("rtctoken", token_views.CompatRtcTokenView.as_view(), name="compat-rtc-token"),
    path("rtmtoken", token_views.CompatRtmTokenView.as_view(), name="compat-rtm-token"),
    path("healthz", views.HealthView.as_view(), name="health"),
    # Kick, ban, mute and lift (moderators only; 503 without Agora's REST credentials).
    path(
        "api/v1/channels/<str:channel>/moderation/",
        views.ChannelModerationView.as_view(),
        name="channel-moderation",
    ),
    # Agora's channel event notifications (NCS); 404 while AGORA_NCS_SECRET is unset.
    path("webhooks/agora/", webhooks.agora_webhook, name="agora-webhook"),
    path("metrics", views.prometheus_metrics, name="metrics"),
]
