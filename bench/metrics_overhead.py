"""What metrics add to a token request: CPU time per request with METRICS_ENABLED off and on.

In-process, no network: Django's WSGI handler is called directly with a warm API token, the
way a server worker calls it, for POST /api/v1/tokens/rtc/ (the fast path: one SELECT, one
cache increment, one INSERT into a throwaway SQLite database).

1. Each piece metrics add, timed on its own (best of 7 runs of 20000 calls).
2. Whole requests, alternating off and on (each pair in random order) in one run, so drift and
   busy neighbours hit both settings alike, each timed with the process's CPU clock.
3. `--only off|on`: only N requests in one setting, inside itertools.starmap, for counting
   instructions with valgrind, which a busy machine does not disturb:

    .venv/bin/python bench/metrics_overhead.py [--requests 3000] [--database file|memory]
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/metrics_overhead.py
    PYTHONMALLOC=malloc PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \\
      --toggle-collect=starmap_next .venv/bin/python bench/metrics_overhead.py --only on --requests 200

Without PROMETHEUS_MULTIPROC_DIR the counts live in this process's registry; with it (an empty
directory), in the memory-mapped files that a server's worker processes share.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _setup(database_url: str):
    """Django on a migrated database with one user; a function that sends one token request."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tokenserver.settings",
        DJANGO_ENV_FILE="",
        DJANGO_DEBUG="false",
        DATABASE_URL=database_url,
        AGORA_APP_ID="970CA35de60c44645bbae8a215061b33",  # Agora's published test values
        AGORA_APP_CERTIFICATE="5CFd2fd1755d40ecb72977518be15d3b",
        THROTTLE_TOKENS_RATE="100000000/day",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from knox.models import AuthToken

    call_command("migrate", verbosity=0)
    key = AuthToken.objects.create(user=get_user_model().objects.create_user("bench"))[1]
    handler = WSGIHandler()
    body = json.dumps({"channel": "bench", "role": "publisher"}).encode()

    def request() -> None:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/tokens/rtc/", "SCRIPT_NAME": "",
            "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Token {key}", "HTTP_USER_AGENT": "bench",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }  # fmt: skip
        statuses = []
        response = handler(environ, lambda status, headers: statuses.append(status))
        b"".join(response)
        response.close()
        assert statuses == ["201 Created"], statuses

    return request


def _pieces() -> dict[str, float]:
    """Seconds of CPU per call of each piece metrics add to a fast-path token request."""
    from time import perf_counter

    from django.conf import settings
    from django.http import HttpResponse
    from django.test import RequestFactory

    from tokens import metrics

    request = RequestFactory().post("/api/v1/tokens/rtc/")  # unresolved, as on the fast path
    response = HttpResponse(b"{}", status=201, content_type="application/json")
    pieces = {
        "read settings.METRICS_ENABLED (all 'off' adds: twice a request)": lambda: settings.METRICS_ENABLED,
        "two perf_counter() calls (the middleware)": lambda: (perf_counter(), perf_counter()),
        "observe_request(): endpoint label + histogram": lambda: metrics.observe_request(
            request, response, 0.0004
        ),
        "count_token(): settings read + counter": lambda: metrics.count_token(
            service="rtc", version="007", source="api", role="publisher"
        ),
    }
    settings.METRICS_ENABLED = True
    return {
        name: min(timeit.repeat(call, number=20000, repeat=7, timer=time.process_time)) / 20000
        for name, call in pieces.items()
    }


def _trimmed_mean(values: list[float], cut: float = 0.1) -> float:
    ordered = sorted(values)
    drop = int(len(ordered) * cut)
    return statistics.fmean(ordered[drop : len(ordered) - drop])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per setting")
    parser.add_argument("--database", choices=["file", "memory"], default="file", help="SQLite database")
    parser.add_argument("--only", choices=["off", "on"], help="only requests in this setting (valgrind)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bench.sqlite3"
        request = _setup(f"sqlite:///{file}" if args.database == "file" else "sqlite://:memory:")
        from django.conf import settings

        def timed(enabled: bool) -> float:
            settings.METRICS_ENABLED = enabled
            started = time.process_time()
            request()
            return time.process_time() - started

        for i in range(300):  # warm: connections, caches, label children
            timed(enabled=bool(i % 2))
        if args.only:
            settings.METRICS_ENABLED = args.only == "on"
            list(itertools.starmap(request, itertools.repeat((), args.requests)))
            return
        from tokens import metrics  # after --only: the script also runs on trees without it

        pieces = _pieces()
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.requests):
            pair = [False, True]
            random.shuffle(pair)  # neither setting always goes first
            for enabled in pair:
                times[enabled].append(timed(enabled))

    print(f"metrics: {'multiprocess (mmap files)' if metrics.MULTIPROCESS else 'one process'}")
    print("pieces, CPU per call (best of 7 x 20000 calls):")
    for name, seconds in pieces.items():
        print(f"  {seconds * 1e6:6.2f} us  {name}")
    off_cost = 2 * next(iter(pieces.values()))
    on_cost = sum(list(pieces.values())[1:]) + off_cost / 2  # count_token includes one read
    print(f"  in all per token request: off {off_cost * 1e6:.2f} us, on {on_cost * 1e6:.2f} us")
    print(f"whole requests ({args.database} database), {args.requests} per setting, alternating:")
    for enabled, name in ((False, "off"), (True, "on")):
        values = times[enabled]
        print(
            f"  {name:3}: median {statistics.median(values) * 1e6:7.1f} us, "
            f"10%-trimmed mean {_trimmed_mean(values) * 1e6:7.1f} us CPU per request"
        )
    fastest_tenth = lambda values: statistics.quantiles(values, n=10)[0]  # noqa: E731
    for label, stat in (
        ("medians", statistics.median),
        ("trimmed means", _trimmed_mean),
        ("10th percentiles (least disturbed by neighbours)", fastest_tenth),
    ):
        off, on = stat(times[False]), stat(times[True])
        print(f"  on - off by {label}: {(on - off) * 1e6:+.1f} us ({(on - off) / off:+.2%})")


if __name__ == "__main__":
    main()
