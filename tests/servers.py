"""Run the project as a separate server process, the production way, for tests that need a
real process boundary (outages, chunked bodies, two processes sharing a database and cache) and
for the benchmark (bench/), which starts, waits for and stops its servers with the same pieces."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
NODE_TOOLS = ROOT / "tests" / "node"  # node scripts run by tests, with their own package-lock.json

# The project's own variables (and the servers' and make's): a served app reads none of the
# caller's, so a developer's shell or CI's environment cannot change what is measured or tested.
PROJECT_VARIABLES = (
    "DJANGO_", "AGORA_", "DATABASE_", "CACHE_", "THROTTLE_", "LOGIN_", "METRICS_", "PROMETHEUS_",
    "AUTH_TOKEN_", "TRUSTED_PROXY", "LOG_LEVEL", "DEMO_", "WEB_CONCURRENCY", "GRANIAN_",
    "GUNICORN_CMD_ARGS", "MAKE", "MFLAGS",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**overrides: str) -> dict[str, str]:
    """A production-like environment: DEBUG off, no .env, test credentials unless given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(PROJECT_VARIABLES) and key not in ("HOST", "PORT")
    }
    env.update(
        DJANGO_ENV_FILE="",
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
    )
    if not {"AGORA_APP_ID", "AGORA_APP_CERTIFICATE"} <= overrides.keys():
        from tests.conftest import APP_CERTIFICATE, APP_ID  # needs Django's settings: tests only

        env.update(AGORA_APP_ID=APP_ID, AGORA_APP_CERTIFICATE=APP_CERTIFICATE)
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run manage.py with `env`; its stdout."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class ServerProcess:
    """A server process in a session of its own (stopping its process group stops its workers
    too), its output appended to `log_path`."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT, name=""):
        self.argv, self.log_path, self.name = argv, log_path, name or Path(argv[0]).name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def main_pid(self) -> int:
        """The server's main process: make's child for `make serve` (the recipe execs it)."""
        pid = self.popen.pid
        if Path(self.argv[0]).name == "make":
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return pid

    def wait_until_answering(self, url: str, *, timeout: float = 30, healthy: bool = False) -> None:
        """Until `url` answers over HTTP (`healthy`: with a 200); RuntimeError with the server's
        output if it exits or does not answer in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own server)
                    return
            except urllib.error.HTTPError:
                if not healthy:
                    return  # it answers (503 is an answer)
            except OSError:
                pass
            if not self.alive() or time.monotonic() > deadline:
                state = "exited" if not self.alive() else f"did not answer {url} within {timeout:.0f} s"
                raise RuntimeError(f"{self.name} {state} ({self.log_path}):\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the main process, which stops its workers in order (sent to the whole group,
        a worker could exit first and be logged as an unexpected exit); then to the group, then
        SIGKILL to whatever is left."""
        if self.alive():
            for target in (self.main_pid(), -self.popen.pid):  # a negative pid: the group
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=timeout)
                    break
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole group, at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def granian_argv(port: int, workers: int, blocking_threads: int = 1) -> list[str]:
    """The production server's command, as `make serve` runs it (granian, WSGI)."""
    return [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--blocking-threads", str(blocking_threads),
        "--log-level", "warning", "tokenserver.wsgi:application",
    ]  # fmt: skip


@contextlib.contextmanager
def running_server(env: dict[str, str], *, workers: int = 1):
    """Serve the project in its own process with the production server, as `make serve` runs
    it (granian, WSGI, one thread per worker), until the block ends; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="server-") as logs:
        process = ServerProcess(granian_argv(port, workers), env, Path(logs) / "server.log", name="server")
        try:
            process.wait_until_answering(base + "/healthz")
            yield base
        finally:
            process.stop(timeout=10)


def raw_http(base_url: str, request: bytes) -> bytes:
    """Send bytes exactly as given to a live server and return everything it answers."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def chunked_rtm_request(key: str) -> bytes:
    """A raw POST /api/v1/tokens/rtm/ whose body, `{"expires_in":60,"version":"006"}`, is sent
    with Transfer-Encoding: chunked (no Content-Length): read as empty, it would issue a
    default token (007, an hour) instead of being refused."""
    body = b'{"expires_in":60,"version":"006"}'
    return (
        b"POST /api/v1/tokens/rtm/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Token " + key.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    )


def call(base: str, method: str, path: str, body: bytes | str | None = None, headers=None):
    """One HTTP request; (status, headers, parsed JSON body or None)."""
    import json

    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our own server)
            status, answer_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, error.headers, error.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, answer_headers, parsed


class TcpProxy:
    """A TCP forwarder between the app and a service (PostgreSQL, Redis), to cut the service
    off and bring it back without touching it: `cut()` closes every live connection and
    refuses new ones, `restore()` accepts again on the same port."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        import threading

        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut


def service_reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def missing(what: str) -> NoReturn:
    """Skip a test whose service or program is missing here, or fail it when REQUIRE_SERVICES
    is set (.ci/run sets it: CI has PostgreSQL, Redis, Chromium and wrk, so a missing one there
    is a failure, not a skip)."""
    import pytest

    if os.environ.get("REQUIRE_SERVICES"):
        pytest.fail(f"REQUIRE_SERVICES is set, but {what}")
    pytest.skip(what)


def require_service(name: str, port: int) -> None:
    """Skip when a local service is missing, unless REQUIRE_SERVICES is set (see missing())."""
    if not service_reachable(port):
        missing(f"{name} is not running on 127.0.0.1:{port}")


def npm_installed(directory: Path = NODE_TOOLS) -> str:
    """The path of `node`, once `npm ci` has installed `directory`'s package-lock.json into its
    node_modules (again only when the lock file changes). No node or npm, or a failed install,
    skips the test, or fails it under REQUIRE_SERVICES (see missing())."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        missing(
            f"Node.js and npm are needed (found node: {node or 'no'}, npm: {npm or 'no'}; "
            "`apt-get install nodejs npm`)"
        )
    lock = directory / "package-lock.json"
    stamp = directory / "node_modules" / ".installed-from-lock-sha256"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    with lock.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one install at a time, whichever process asks
        if not (stamp.is_file() and stamp.read_text() == wanted):
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=directory, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if result.returncode != 0:
                missing(f"`npm ci` in {directory} failed: {result.stderr.strip()[-1500:]}")
            stamp.write_text(wanted)
    return node
