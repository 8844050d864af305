"""The HTTP side of `stagebot serve`: a small WSGI app served by waitress.

Routes: POST /slack/events (bolt), POST /feishu/events, POST /api/v1/signals, GET /healthz,
GET /metrics. Bad requests get 4xx with a JSON error body; nothing a client sends produces a 5xx
or a stack trace. Each request runs under a correlation id (the caller's X-Request-Id when it is a
sane token, else a new one), echoed in the response and carried into the notifications it causes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.config import ServerSection
from lifecycle.db.uow import Database
from lifecycle.domain import correlation

log = logging.getLogger("stagebot.http")
# `[server] max_body_bytes`'s default. waitress refuses bigger bodies before they are read (see
# bot/listener.py); the app checks again, so it is safe behind any server.
MAX_BODY: int = ServerSection.model_fields["max_body_bytes"].default

StartResponse = Callable[..., Any]
Handler = Callable[[bytes, dict[str, str], str], tuple[int, dict[str, str], bytes]]


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class WsgiApp:
    """Routes requests to handlers taking (raw body, lower-case headers, query string)."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.max_body = max_body  # bytes; a bigger declared body is answered 413 unread
        # (route, status, seconds) after each request: the metrics' hook
        self.observe: Callable[[str, int, float], None] = lambda route, status, seconds: None

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        handler = self.routes.get((method, path))
        with correlation.bound(correlation.accept(environ.get("HTTP_X_REQUEST_ID"))) as request_id:
            if handler is None:
                allowed = [m for (m, p) in self.routes if p == path]
                status, headers, body = _json(
                    405 if allowed else 404, {"error": "method not allowed" if allowed else "not found"}
                )
            else:
                status, headers, body = self._call(handler, environ)
        start_response(
            f"{status} {REASONS.get(status, '')}".strip(),
            [*headers.items(), ("Content-Length", str(len(body))), ("X-Request-Id", request_id or "")],
        )
        # Unknown paths share one label, so scanners cannot blow up the metrics' cardinality.
        self.observe(path if handler is not None else "unmatched", status, time.perf_counter() - started)
        return [body]

    def _call(self, handler: Handler, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json(400, {"error": "bad Content-Length"})
        if length > self.max_body:
            return _json(413, {"error": "request body too large"})
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            return handler(raw, headers, environ.get("QUERY_STRING", ""))
        except DBAPIError as exc:  # the database stayed away through the retries: say so, retryably
            log.error(
                "database unavailable for %s %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc.orig
            )
            status, headers, body = _json(503, {"error": "database unavailable; try again shortly"})
            return status, {**headers, "Retry-After": "2"}, body
        except Exception:  # a bug: logged with its traceback, answered without one
            log.exception("handler for %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return _json(500, {"error": "internal error; it has been logged"})


def health_handler(db: Database) -> Handler:
    def health(raw: bytes, headers: dict[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with db.reader() as uow:
                uow.conn.execute(text("SELECT 1"))
        except Exception as exc:
            return _json(503, {"ok": False, "database": type(exc).__name__})
        return _json(200, {"ok": True})

    return health
