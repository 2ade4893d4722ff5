"""Request body parsing."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """DRF's JSONParser, answering 400 (never a 500) for JSON nested deeper than Python's
    recursion limit: a ~1000-deep `[[[...]]]` would otherwise raise RecursionError."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
