"""Request guards that apply before any view (the admin's included)."""

from tokens.exceptions import json_error


class RejectNulBytesMiddleware:
    """400 for a NUL byte in the path or query string. PostgreSQL cannot store or compare
    text with NUL, so a filter like the admin's `?username__exact=%00` would be a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.GET
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, vs in query.lists() for v in vs):
            return json_error(400, "invalid", "The URL contains a NUL byte.")
        return self.get_response(request)
