"""GET /api/v1/channels/{channel}/participants/: who is in a channel now, from Agora's channel
events, for users the channel policy admits to it."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from tokens import validators
from tokens.serializers import ErrorOutput, ParticipantsOutput
from tokens.services import presence
from tokens.views import ERRORS, ApiView

CHANNEL_PARAMETER = OpenApiParameter(
    "channel",
    {"type": "string", **validators.NAME_SCHEMA},
    OpenApiParameter.PATH,
    description="The channel name, percent-encoded (a space is %20).",
)


class ParticipantsView(ApiView):
    """Who is in the channel now: Agora's joins not followed by a leave, in its current session."""

    @extend_schema(
        parameters=[CHANNEL_PARAMETER],
        responses={200: ParticipantsOutput, **ERRORS, 404: ErrorOutput},
    )
    def get(self, request, channel: str):
        shown = presence.participants_for(user=request.user, channel=channel)
        return Response(ParticipantsOutput(shown).data)
