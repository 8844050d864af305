"""Waiting for a `stagebot serve` started as a subprocess to answer GET /healthz, for the tests,
the chaos harness and the benchmarks that start one. Each caller turns a failure into its own
error, with its own log tail."""

from __future__ import annotations

import http.client
import subprocess
import time

POLL = 0.1  # seconds between tries


def probe(port: int, *, timeout: float = 5.0) -> str | None:
    """One GET /healthz on 127.0.0.1: None for a 200, else what came back instead."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        body = resp.read()
        return None if resp.status == 200 else f"{resp.status} {body[:200]!r}"
    except (OSError, http.client.HTTPException) as exc:
        return repr(exc)
    finally:
        conn.close()


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    """Poll until GET /healthz answers 200 (None), or why not: the process exited, or `timeout`
    seconds passed (with the last answer)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode} before answering GET /healthz"
        got = probe(port)
        if got is None:
            return None
        last = got
        time.sleep(POLL)
    return f"GET /healthz did not answer 200 within {timeout:g} s (last: {last})"
