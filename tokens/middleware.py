"""Middleware: request guards that apply before any view (the admin's included), and the
static files server."""

import os

from whitenoise.middleware import WhiteNoiseMiddleware

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


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, without its "No directory at" warning for a STATIC_ROOT that collectstatic
    has not filled. The warning is for setups that need collectstatic; this one serves the
    installed apps' files either way (WHITENOISE_USE_FINDERS), so a missing STATIC_ROOT is
    normal and every worker warning about it at start-up is noise. Once the directory exists
    it is indexed as before."""

    def add_files(self, root, prefix=None):
        # The only case in which WhiteNoise warns: indexing at start-up a directory that is missing.
        if root is self.static_root and not self.autorefresh and not os.path.isdir(root):
            return
        super().add_files(root, prefix)
