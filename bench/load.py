"""Driving wrk with bench/load.lua: one measured run, its figures, and what a round records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import BENCH, BenchError
from bench.lanes import log

LUA = BENCH / "load.lua"


@dataclass
class Round:
    lane: str
    server: str
    side: str  # project | tutorial
    endpoint: str
    users: str
    connections: int
    table: str  # empty | seeded | twin (the seeded lane's empty twin)
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    socket_detail: dict
    ok: int
    sent: int
    answered: int
    audit_expected: int | None = None  # rows the 2xx answers should have written
    audit_delta: int | None = None


def ensure_wrk() -> str:
    """wrk's version, installing it (apt-get) when it is missing."""
    if shutil.which("wrk"):
        result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        return result.stdout.splitlines()[0].strip()
    log("wrk is missing: apt-get install -y wrk")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    return ensure_wrk()


def parse_timeline(lines: list[str]) -> dict:
    """The BENCH_TIMELINE lines of all wrk threads, summed: {"bucket_ms": ms, "slices": {slice:
    [2xx, 503, other 5xx, other]}}, a slice being CLOCK_MONOTONIC // bucket_ms."""
    bucket_ms, slices = 0, {}
    for line in lines:
        if not line.startswith("BENCH_TIMELINE "):
            continue
        _, bucket, *entries = line.split(maxsplit=2)
        bucket_ms = int(bucket)
        for entry in "".join(entries).split(";"):
            if entry.strip():
                slice_, *counts = (int(n) for n in entry.split())
                if slice_ >= 0:  # -1: a thread that received nothing
                    total = slices.setdefault(slice_, [0, 0, 0, 0])
                    slices[slice_] = [a + b for a, b in zip(total, counts, strict=True)]
    return {"bucket_ms": bucket_ms, "slices": slices}


def wrk(
    port: int, path: str, body: dict | None, tokens: Path, connections: int, *,
    duration: int, drain: int, threads: int, bucket_ms: int = 0,
) -> dict:  # fmt: skip
    """One wrk run: `duration` seconds of requests, then up to `drain` seconds for the last ones
    to be answered: once every wrk thread reports that it has nothing in flight (load.lua), wrk
    is ended with SIGINT, which makes it print its figures as usual. With `bucket_ms`, also the
    answers' timeline by class (parse_timeline)."""
    threads = min(threads, connections)
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration + drain}s",
        "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{port}",
        "--", str(tokens), "GET" if body is None else "POST", path, "-" if body is None else json.dumps(body),
        str(duration * 1000), str(bucket_ms),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, drained = [], 0
    for line in process.stdout:
        lines.append(line)
        if line.startswith("BENCH_DRAINED"):
            drained += 1
            if drained == threads:
                process.send_signal(signal.SIGINT)
    stderr = process.stderr.read()
    process.wait()
    results = [line for line in lines if line.startswith("BENCH_RESULT ")]
    if process.returncode != 0 or not results:
        raise BenchError(f"wrk failed ({' '.join(argv)}):\n{''.join(lines)[-3000:]}\n{stderr}")
    result = json.loads(results[-1].removeprefix("BENCH_RESULT "))
    result["rps"] = result["answered_in_window"] / duration
    if bucket_ms:
        result["timeline"] = parse_timeline(lines)
    return result


def flush_disk(reason: str) -> None:
    """Write dirty pages back before measuring, so that a figure cannot pay for another
    phase's writes (a suspect, not the proven cause, of a slow PostgreSQL phase right after
    the SQLite lane's seed: docs/bench-history.md, "Oddities seen"). The log shows how long."""
    started = time.monotonic()
    os.sync()
    log(f"disk flushed ({reason}) in {time.monotonic() - started:.1f} s")
