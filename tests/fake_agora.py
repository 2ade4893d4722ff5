"""A fake of Agora's Channel Management REST API: a real HTTP server on 127.0.0.1 (a free port,
a thread per connection) that holds the documented contract, for tests/test_agora_rest.py.

What it does as Agora documents it: HTTP Basic auth with one customer id and secret (401
`{"message": ...}` otherwise) for one App ID; ban rules created, listed, re-timed and deleted
by id, `time` (minutes) or `time_in_seconds` clamped into 1..1440 / 10..86430 as Agora does,
0 kicking only, `time_in_seconds` winning over `time`, 60 minutes when neither is given; the
user list (communication or live broadcasting, `/hosts_only` or `?hosts_only`) and the user
status of channels the test sets. What Agora leaves undocumented, it decides: a rule with
neither channel, uid nor ip, an unknown privilege or a field of the wrong type is a 400
`{"message": ...}`; an unknown rule id is a 404.

Tests make it fail: `fail_next(count, fault)` answers the next `count` requests with an HTTP
status (500, 503, 504, 429 with `retry_after`, 400...), a hang past the client's timeout
("hang") or a connection closed without an answer ("drop"); with `after_processing=True` the
request is carried out first and only its answer is lost. Every request is recorded
(`requests`: method, path, query, headers, JSON body), faults included, and so is every
connection the server accepted (`connections`).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PRIVILEGES = {"join_channel", "publish_audio", "publish_video"}
# How long a hang lasts at most (or until the server stops): well past any test timeout.
HANG_SECONDS = 5.0


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    json: object  # the parsed body; None when there was none or it was not JSON
    body: bytes


@dataclass
class _Fault:
    kind: int | str  # an HTTP status, "hang" or "drop"
    retry_after: str | None
    after_processing: bool


@dataclass
class Channel:
    """A channel as the test sets it: everyone (communication) or hosts and audience (live)."""

    users: list[int] = field(default_factory=list)
    broadcasters: list[int] = field(default_factory=list)
    audience: list[int] = field(default_factory=list)
    live: bool = False
    joined_at: int = 1_700_000_000
    platform: int = 7  # Web


class FakeAgora:
    """Start with `start()` (or as a context manager); `url` is its base URL."""

    def __init__(self, *, customer_id: str, customer_secret: str, app_id: str) -> None:
        self.app_id = app_id
        self._authorization = (
            "Basic " + base64.b64encode(f"{customer_id}:{customer_secret}".encode()).decode()
        )
        self.rules: dict[int, dict] = {}
        self.channels: dict[str, Channel] = {}
        self.requests: list[Recorded] = []
        self.connections = 0
        self.errors: list[BaseException] = []  # what went wrong inside the fake itself
        self._ids = itertools.count(1953)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------

    def start(self) -> FakeAgora:
        fake = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                with fake._lock:
                    fake.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request, client_address):
                error = sys.exc_info()[1]
                if not isinstance(error, ConnectionError):  # the client hung up: not the fake's fault
                    fake.errors.append(error)

        self._server = Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-agora", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases every hang
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAgora:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(
        self, count: int, fault: int | str, *, retry_after: str | None = None, after_processing: bool = False
    ) -> None:
        """Answer the next `count` requests with `fault`: an HTTP status, "hang" or "drop"."""
        assert isinstance(fault, int) or fault in ("hang", "drop"), fault
        with self._lock:
            self._faults += [_Fault(fault, retry_after, after_processing) for _ in range(count)]

    def set_channel(self, name: str, **members) -> Channel:
        """Put users in channel `name`: `users=[...]` (communication), or `broadcasters=[...]`
        and `audience=[...]` (live broadcasting)."""
        live = "broadcasters" in members or "audience" in members
        channel = Channel(live=live, **members)
        self.channels[name] = channel
        return channel

    def requests_to(self, method: str, path_start: str = "/") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_start)]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, recorded: Recorded) -> tuple[int, dict]:
        """The (status, JSON body) Agora would answer."""
        if recorded.headers.get("authorization") != self._authorization:
            return 401, {"message": "Invalid authentication credentials"}
        parts = [unquote(p) for p in recorded.path.split("/")[1:]]
        if recorded.path == "/dev/v1/kicking-rule":
            if recorded.method == "GET":
                return self._list_rules(recorded.query)
            if recorded.headers.get("content-type", "").split(";")[0] != "application/json":
                return 415, {"message": "Unsupported Media Type"}
            if not isinstance(recorded.json, dict):
                return 400, {"message": "invalid request body"}
            handler = {"POST": self._create_rule, "PUT": self._update_rule, "DELETE": self._delete_rule}
            if recorded.method in handler:
                return handler[recorded.method](recorded.json)
            return 405, {"message": "Method Not Allowed"}
        if recorded.method == "GET" and parts[:4] == ["dev", "v1", "channel", "user"]:
            rest = parts[4:]
            if len(rest) == 4 and rest[0] == "property":
                return self._user_status(rest[1], rest[2], rest[3])
            if len(rest) in (2, 3) and (len(rest) == 2 or rest[2] == "hosts_only"):
                return self._channel_users(rest[0], rest[1], len(rest) == 3 or "hosts_only" in recorded.query)
        return 404, {"message": "no Route matched with those values"}

    def _app_id_error(self, app_id: object) -> tuple[int, dict] | None:
        if not isinstance(app_id, str) or len(app_id) != 32:
            return 400, {"message": "invalid appid"}
        if app_id != self.app_id:
            return 401, {"message": "Invalid authentication credentials"}  # an App ID the key does not cover
        return None

    def _duration(self, body: dict) -> tuple[timedelta, None] | tuple[None, tuple[int, dict]]:
        for name, low, high, unit in (("time_in_seconds", 10, 86430, 1), ("time", 1, 1440, 60)):
            if name in body:
                value = body[name]
                if not isinstance(value, int | float) or isinstance(value, bool):
                    return None, (400, {"message": f"invalid {name}"})
                if value != 0:
                    value = min(max(value, low), high)  # Agora clamps
                return timedelta(seconds=value * unit), None
        return timedelta(minutes=60), None

    def _create_rule(self, body: dict) -> tuple[int, dict]:
        if error := self._app_id_error(body.get("appid")):
            return error
        cname, uid, ip = body.get("cname"), body.get("uid"), body.get("ip")
        if cname is not None and (not isinstance(cname, str) or not cname):
            return 400, {"message": "invalid cname"}
        if uid is not None and (not isinstance(uid, int) or isinstance(uid, bool) or uid == 0):
            return 400, {"message": "invalid uid"}
        if ip is not None and (not isinstance(ip, str) or ip in ("", "0")):
            return 400, {"message": "invalid ip"}
        if cname is None and uid is None and ip is None:
            return 400, {"message": "cname, uid or ip is required"}
        privileges = body.get("privileges")
        if not isinstance(privileges, list) or not privileges or not set(privileges) <= PRIVILEGES:
            return 400, {"message": "invalid privileges"}
        lasting, error = self._duration(body)
        if error:
            return error
        now = datetime.now(UTC)
        with self._lock:
            rule_id = next(self._ids)
            self.rules[rule_id] = {
                "id": rule_id,
                "appid": self.app_id,
                "uid": uid,
                "opid": rule_id + 10_000,
                "cname": cname,
                "ip": ip,
                "ts": now + lasting,
                "privileges": list(privileges),
                "createAt": now,
                "updateAt": now,
            }
        return 200, {"status": "success", "id": rule_id}

    def _rule_for(self, body: dict) -> tuple[dict | None, tuple[int, dict] | None]:
        if error := self._app_id_error(body.get("appid")):
            return None, error
        rule_id = body.get("id")
        if not isinstance(rule_id, int) or isinstance(rule_id, bool):
            return None, (400, {"message": "invalid id"})
        rule = self.rules.get(rule_id)
        if rule is None:
            return None, (404, {"message": "rule not found"})
        return rule, None

    def _update_rule(self, body: dict) -> tuple[int, dict]:
        rule, error = self._rule_for(body)
        if error:
            return error
        lasting, error = self._duration(body)
        if error:
            return error
        now = datetime.now(UTC)
        with self._lock:
            rule.update(ts=now + lasting, updateAt=now)
        return 200, {"status": "success"}

    def _delete_rule(self, body: dict) -> tuple[int, dict]:
        rule, error = self._rule_for(body)
        if error:
            return error
        with self._lock:
            del self.rules[rule["id"]]
        return 200, {"status": "success", "id": rule["id"]}

    def _list_rules(self, query: dict) -> tuple[int, dict]:
        if error := self._app_id_error((query.get("appid") or [None])[0]):
            return error
        with self._lock:
            rules = [
                {**rule, **{name: _iso(rule[name]) for name in ("ts", "createAt", "updateAt")}}
                for rule in self.rules.values()
            ]
        return 200, {"status": "success", "rules": rules}

    def _channel_users(self, app_id: str, name: str, hosts_only: bool) -> tuple[int, dict]:
        if error := self._app_id_error(app_id):
            return error
        channel = self.channels.get(name)
        if channel is None:
            return 200, {"success": True, "data": {"channel_exist": False}}
        if not channel.live:
            data = {"channel_exist": True, "mode": 1, "total": len(channel.users), "users": channel.users}
        elif hosts_only:
            data = {"channel_exist": True, "mode": 2, "broadcasters": channel.broadcasters}
        else:
            data = {
                "channel_exist": True,
                "mode": 2,
                "broadcasters": channel.broadcasters,
                "audience": channel.audience[:10_000],
                "audience_total": len(channel.audience),
            }
        return 200, {"success": True, "data": data}

    def _user_status(self, app_id: str, uid_text: str, name: str) -> tuple[int, dict]:
        if error := self._app_id_error(app_id):
            return error
        if not uid_text.isdigit():
            return 400, {"message": "invalid uid"}
        uid, channel = int(uid_text), self.channels.get(name)
        role = None
        if channel is not None:
            if uid in channel.users:
                role = 1
            elif uid in channel.broadcasters:
                role = 2
            elif uid in channel.audience:
                role = 3
        if role is None:
            return 200, {"success": True, "data": {"in_channel": False}}
        data = {
            "in_channel": True,
            "uid": uid,
            "join": channel.joined_at,
            "role": role,
            "platform": channel.platform,
        }
        return 200, {"success": True, "data": data}

    # --- faults ----------------------------------------------------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def hang(self) -> None:
        self._stopping.wait(HANG_SECONDS)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _handler_for(fake: FakeAgora) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Agora's servers
        timeout = 5  # an idle kept connection is closed, so no thread outlives a test by long
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed ACK

        def log_message(self, format, *args):
            pass  # quiet: the test asserts on `requests`

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            recorded = Recorded(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                json=parsed,
                body=raw,
            )
            with fake._lock:
                fake.requests.append(recorded)
            fault = fake._take_fault()
            if fault is not None and fault.after_processing:
                fake.handle(recorded)  # done; only the answer goes wrong
            if fault is None:
                self._send(*fake.handle(recorded))
            elif fault.kind == "hang":
                fake.hang()
                self._drop()
            elif fault.kind == "drop":
                self._drop()
            else:
                message = {429: "API rate limit exceeded"}.get(fault.kind, f"fault {fault.kind}")
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(fault.kind, {"message": message}, headers)

        def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 (http.server's names)

    return Handler
