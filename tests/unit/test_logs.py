"""Log lines: JSON or text, with the correlation id, and secrets masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging

from bot import logs
from lifecycle.domain import correlation

SECRET = 'xoxb-12345-"quoted"\\path'


def lines(fmt: str) -> list[str]:
    buf = io.StringIO()
    handler = logs.configure(fmt=fmt, level="info", secrets=[SECRET, "abc"], stream=buf)
    try:
        log = logging.getLogger("stagebot.test")
        with correlation.bound("req-1"):
            log.info("token=%s", SECRET)
            try:
                raise RuntimeError(f"failed with {SECRET}")
            except RuntimeError:
                log.exception("boom")
        log.warning("abc is too short to be a secret")
    finally:
        logging.getLogger().removeHandler(handler)
    return buf.getvalue().splitlines()


def test_json_lines_carry_the_correlation_id_and_mask_secrets() -> None:
    out = lines("json")
    records = [json.loads(x) for x in out if x.startswith("{")]
    assert records[0]["message"] == "token=[redacted]"
    assert records[0]["correlation_id"] == "req-1" and records[0]["level"] == "info"
    assert "[redacted]" in records[1]["exc"] and records[1]["correlation_id"] == "req-1"
    assert records[2]["correlation_id"] is None and records[2]["message"].startswith("abc is")
    assert "12345" not in "\n".join(out)


def test_text_lines_too() -> None:
    out = "\n".join(lines("text"))
    assert "stagebot.test [req-1]: token=[redacted]" in out
    assert "12345" not in out and "RuntimeError: failed with [redacted]" in out
