"""Request body parsing."""

import json
from functools import cache

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant


@cache
def _decoder(strict: bool) -> json.JSONDecoder:
    # json.loads() with any option builds a new decoder every call.
    return json.JSONDecoder(parse_constant=strict_constant if strict else None)


class StrictJSONParser(JSONParser):
    """DRF's JSONParser, answering 400 (never a 500) for JSON nested deeper than Python's
    recursion limit: a ~1000-deep `[[[...]]]` would otherwise raise RecursionError. It decodes
    the body at once rather than through a codecs stream reader (DRF hands JSON parsers the
    body in memory anyway), with the same errors."""

    def parse(self, stream, media_type=None, parser_context=None):
        return self.parse_bytes(stream.read(), (parser_context or {}).get("encoding"))

    def parse_bytes(self, body: bytes, encoding: str | None) -> object:
        """`body` as parse() would read it from a stream; `encoding`: the request's charset
        (None: DEFAULT_CHARSET)."""
        encoding = get_encoding({} if encoding is None else {"encoding": encoding})
        try:
            return _decoder(self.strict).decode(body.decode(encoding))
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
