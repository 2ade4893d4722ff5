"""The OpenAPI schema states every rule the server enforces: unknown fields refused
(additionalProperties: false), lengths, ranges and patterns from tokens.validators, and the
rules a serializer states across its fields (`schema_extra`)."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus what our strict serializers and fields declare."""

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(serializer, "rejects_unknown_fields", False):
            schema["additionalProperties"] = False
        if direction == "request" and getattr(serializer, "schema_extra", None):
            schema.update(serializer.schema_extra)  # rules across fields (one of two, one given)
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        extra = getattr(field, "schema_extra", None)
        if callable(extra):
            extra = extra()  # rules read from settings when the schema is generated
        if extra:
            schema.update(extra)
