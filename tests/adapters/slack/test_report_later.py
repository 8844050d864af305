"""A report that is not ready in time for the ack: the command is acked as on its way, and the table
follows through the command's response_url, then the chart in the channel. The real bolt app, a
really signed request and the real WebClient against the fake Slack; the followup pool is held
until the test lets it run, so "not ready in time" is certain rather than a race."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from adapters.slack.app import build_app, http_handler
from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain import correlation
from lifecycle.domain.i18n import Lang
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.rules import Rules
from tests.conftest import ADMIN, ALICE, ROSTER, new_key, sqlite_database
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, SECRET, signed_headers, slash_command


class HeldPool(Executor):
    """An executor that runs what it is given only when `release()` is called, in the caller's thread."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.jobs.append((future, fn, args, kwargs))
        return future

    def release(self) -> None:
        while self.jobs:
            future, fn, args, kwargs = self.jobs.pop(0)
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the future, as a real pool does
                future.set_exception(exc)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


def _stagebot(tmp_path: Path, fake: FakeSlack, pool: Executor, lang: Lang = "en") -> Callable[[str, str], Any]:
    db = sqlite_database(tmp_path / "stagebot.db")
    core = Lifecycle(db, Rules(load_preset("default"), ROSTER, targets=()))
    core.execute(c.AddAccount(actor=ADMIN, key=new_key(), name="Rep Co", stage="SQL", amount=10_000))
    client = WebClient(token="xoxb-test", base_url=fake.base_url)
    app = build_app(core, signing_secret=SECRET, client=client, followups=pool, report_wait=0.05, lang=lang)
    handle = http_handler(app)

    def command(text: str, user: str) -> Any:
        body = slash_command(text, user=user, response_url=fake.response_url("cmd"))
        status, _, out = handle(body.encode(), signed_headers(body, content_type=FORM), "")
        assert status == 200, out
        return json.loads(out)

    return command


def test_a_report_not_ready_for_the_ack_follows_through_the_response_url(tmp_path: Path, fake: FakeSlack) -> None:
    pool = HeldPool()
    command = _stagebot(tmp_path, fake, pool)
    ack = command("report", ALICE.user_id)
    assert ack["response_type"] == "ephemeral"
    assert ack["text"] == "Working on the report: it follows here in a moment."
    assert not fake.calls_to("response_url") and len(pool.jobs) == 1  # nothing sent before it is ready

    pool.release()  # the report is made; the table goes out, then the chart
    (late,) = fake.wait_for("response_url", 1)
    assert late.body["response_type"] == "ephemeral" and late.body["replace_original"] is False
    assert "Report · all time" in late.body["text"] and "Bottleneck: SQL" in late.body["text"]
    assert "```" in json.dumps(late.body["blocks"])  # the same table the ack would have carried
    fake.wait_for("files.completeUploadExternal", 1)
    (upload,) = fake.uploads
    assert upload.channel == "C0ANY" and upload.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert upload.initial_comment == f"Report asked for by <@{ALICE.user_id}>"


def test_in_chinese_too(tmp_path: Path, fake: FakeSlack) -> None:
    pool = HeldPool()
    command = _stagebot(tmp_path, fake, pool, lang="zh")
    assert command("报表", ALICE.user_id)["text"] == "正在生成报表,稍后在此显示。"
    pool.release()
    (late,) = fake.wait_for("response_url", 1)
    assert "报表" in late.body["text"]


def test_other_commands_and_a_wrong_report_line_never_wait_on_the_pool(tmp_path: Path, fake: FakeSlack) -> None:
    pool = HeldPool()
    command = _stagebot(tmp_path, fake, pool)
    assert "Rep Co" in command("show Rep Co", ALICE.user_id)["text"]
    assert "is not a date" in command("report --since yesterday", ALICE.user_id)["text"]
    assert not pool.jobs  # both answered in the ack, on the request thread


class IdsSeen(logging.Handler):
    """Which correlation id was bound when each stagebot.slack line was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), correlation.current.get()))


def test_what_follows_a_late_report_logs_under_the_commands_id(tmp_path: Path, fake: FakeSlack) -> None:
    pool = HeldPool()
    command = _stagebot(tmp_path, fake, pool)
    seen = IdsSeen()
    logger = logging.getLogger("stagebot.slack")
    logger.addHandler(seen)
    try:
        fake.fail_channel("C0ANY", "not_in_channel")  # the chart cannot be shared: a warning is logged
        with correlation.bound("req-late-1"):
            command("report", ALICE.user_id)
        pool.release()  # in this (test) thread, where no id is bound
        fake.wait_for("response_url", 2)  # the table, then word that the chart was not posted
    finally:
        logger.removeHandler(seen)
    chart = [cid for message, cid in seen.lines if "could not share a report chart" in message]
    assert chart == ["req-late-1"]


def test_a_late_report_slack_refuses_as_blocks_follows_as_plain_text(tmp_path: Path, fake: FakeSlack) -> None:
    pool = HeldPool()
    command = _stagebot(tmp_path, fake, pool)
    command("report", ALICE.user_id)
    fake.fail("response_url", status=400, error="invalid_blocks", retry_after=None)  # as Slack answers a response_url
    pool.release()
    refused, plain = fake.wait_for("response_url", 2)[:2]
    assert refused.answered == 400 and "blocks" in refused.body
    assert "blocks" not in plain.body and plain.answered == 200
    assert "Bottleneck: SQL" in plain.body["text"] and plain.body["response_type"] == "ephemeral"


def test_a_late_report_refused_twice_is_logged_at_error_with_slacks_reasons(
    tmp_path: Path, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    pool = HeldPool()
    command = _stagebot(tmp_path, fake, pool)
    command("report", ALICE.user_id)
    fake.fail("response_url", status=400, error="invalid_blocks", retry_after=None)
    fake.fail("response_url", status=404, error="expired_url", retry_after=None)
    with caplog.at_level(logging.WARNING, logger="stagebot.slack"):
        pool.release()  # runs here: the log lines are in by the time it returns
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "invalid_blocks" in errors[0] and "expired_url" in errors[0]
    assert "/response/" not in errors[0] and "xoxb" not in errors[0]  # never the response_url or the token
