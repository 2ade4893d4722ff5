"""The OpenAPI schema states every rule the server enforces: unknown fields refused
(additionalProperties: false), lengths, ranges and patterns from tokens.validators, and the
combinations of fields refused together."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus what our strict serializers and fields declare."""

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(serializer, "rejects_unknown_fields", False):
            schema["additionalProperties"] = False
        refused = getattr(serializer, "refused_combinations", ()) if direction == "request" else ()
        if refused:
            schema["allOf"] = [{"not": combination} for combination in refused]
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        extra = getattr(field, "schema_extra", None)
        if callable(extra):
            extra = extra()  # rules read from settings when the schema is generated
        if extra:
            schema.update(extra)
