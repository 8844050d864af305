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


def test_a_library_logger_with_a_level_of_its_own_still_obeys_ours() -> None:
    # lark-oapi sets its "Lark" logger to WARNING whenever one of its clients is built.
    lib = logging.getLogger("test.lib.leveled")
    lib.setLevel(logging.WARNING)
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure(fmt="json", level="error", stream=buf)
    try:
        lib.warning("below stagebot's level")
        lib.error("at stagebot's level")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert [json.loads(x)["message"] for x in buf.getvalue().splitlines()] == ["at stagebot's level"]


def test_an_adopted_library_logs_through_ours_alone() -> None:
    # As lark_oapi/core/log.py does at import: a plain-text handler of its own, to stdout.
    lib = logging.getLogger("test.lib.adopted")
    own = io.StringIO()
    plain = logging.StreamHandler(own)
    plain.setFormatter(logging.Formatter("[Lib] %(message)s"))
    lib.addHandler(plain)
    logs.adopt("test.lib.adopted")
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure(fmt="json", level="warning", secrets=[SECRET], stream=buf)
    try:
        lib.warning("token=%s", SECRET)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert own.getvalue() == ""
    [record] = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert record["logger"] == "test.lib.adopted" and record["message"] == "token=[redacted]"
