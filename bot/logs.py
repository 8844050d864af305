"""Logging of every stagebot command: text or JSON lines on stderr, each record with the
correlation id of the request (or delivery) it belongs to, and every configured secret masked.

Masking is the last line of defence, applied to the finished line (message, arguments and any
traceback): no code path should log a secret in the first place.

Libraries log through the same handler: their records propagate to the root logger, where
stagebot's handler formats, masks and filters them by the configured level. A library that
installs a handler of its own (lark-oapi does) is `adopt`ed once imported.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from lifecycle.domain import correlation

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(correlation)s: %(message)s"
MASK = "[redacted]"
HANDLER_NAME = "stagebot"
MIN_SECRET = 6  # shorter values would mask ordinary words; no real token is this short


class _Correlation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        cid = correlation.current.get()
        record.correlation_id = cid
        record.correlation = f" [{cid}]" if cid else ""
        return True


class _Masking(logging.Formatter):
    """Masks secrets in whatever the wrapped formatting produced."""

    def __init__(self, secrets: Iterable[str], fmt: str | None = None) -> None:
        super().__init__(fmt)
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)

    def mask(self, line: str) -> str:
        for s in self.secrets:
            if s in line:
                line = line.replace(s, MASK)
        return line

    def format(self, record: logging.LogRecord) -> str:
        return self.mask(super().format(record))


class JsonFormatter(_Masking):
    """One JSON object per line: ts, level, logger, message, correlation_id, thread, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.mask(record.getMessage()),  # before JSON escaping could split a secret
            "correlation_id": getattr(record, "correlation_id", None),
            "thread": record.threadName,
        }
        if record.exc_info:
            out["exc"] = self.mask(self.formatException(record.exc_info))
        return self.mask(json.dumps(out, ensure_ascii=False))


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test runner swaps it per test)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(
    *, fmt: str = "text", level: str = "warning", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Log to `stream` (stderr) in `fmt` at `level`, replacing the handler a previous call installed
    (and leaving others alone: a test runner's capture handler, say)."""
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.addFilter(_Correlation())
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else _Masking(secrets, TEXT_FORMAT))
    handler.set_name(HANDLER_NAME)
    # On the handler too: a library logger with a level of its own (lark-oapi sets "Lark" to WARNING
    # whenever one of its clients is built) would otherwise pass records below ours.
    handler.setLevel(level.upper())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def adopt(name: str) -> None:
    """Route the library logger `name` through stagebot's handler alone: remove the handlers the
    library put on it and let its records propagate to the root logger.

    lark-oapi's logger "Lark" gets a StreamHandler to stdout when `lark_oapi.core.log` is imported;
    left in place, every SDK record is printed a second time as plain `[Lark] …` text, outside the
    JSON format and the masking. So this is called right after lark-oapi is imported (bot/bootstrap.py).
    """
    logger = logging.getLogger(name)
    for own in list(logger.handlers):
        logger.removeHandler(own)
    logger.propagate = True
