"""A running stagebot with Slack enabled, wired to a fake Slack Web API, driven through its WSGI app."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.serve import Running, start
from lifecycle.delivery.outbox import RetryPolicy
from tests.conftest import copy_migrated
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    FORM,
    JSON,
    SECRET,
    TEAMS_TOML,
    block_action,
    event_callback,
    signed_headers,
    slash_command,
)
from tests.wsgi import call_wsgi

CONFIG = (
    """\
[database]
url = "sqlite:///{db}"

[slack]
enabled = true
api_url = "{api}"

[scheduler]
enabled = false

[access]
admins = ["slack:U0ADMIN"]

"""
    + TEAMS_TOML
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class SlackDriver:
    """Sends signed requests into the running app's WSGI entry point, as Slack would."""

    def __init__(self, running: Running, fake: FakeSlack) -> None:
        self.running = running
        self.fake = fake

    def request(self, method: str, path: str, body: str, headers: dict[str, str]) -> Reply:
        status, hdrs, out = call_wsgi(self.running.wsgi, method, path, body.encode(), headers)
        return Reply(status, hdrs, out.decode())

    def command(self, text: str, user: str = "U0ADMIN", **header_overrides: Any) -> Reply:
        body = slash_command(text, user=user, response_url=self.fake.response_url("cmd"))
        headers = signed_headers(body, content_type=FORM)
        headers.update(header_overrides)
        return self.request("POST", "/slack/events", body, headers)

    def press(self, value: str, action_id: str, user: str) -> Reply:
        body = block_action(user=user, action_id=action_id, value=value, response_url=self.fake.response_url("btn"))
        return self.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))

    def event(self, event: dict[str, Any], event_id: str | None = None, **extra: str) -> Reply:
        body = event_callback(event, event_id=event_id)
        headers = signed_headers(body, content_type=JSON)
        headers.update(extra)
        return self.request("POST", "/slack/events", body, headers)

    def drain(self) -> None:
        self.running.app.dispatcher.drain()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def slack(tmp_path: Path, fake: FakeSlack, sqlite_template: Path) -> Iterator[SlackDriver]:
    copy_migrated(sqlite_template, tmp_path / "stagebot.db")  # start() then finds it up to date
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(textwrap.dedent(CONFIG).format(db=tmp_path / "stagebot.db", api=fake.base_url))
    settings = load_settings(str(cfg), {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET})
    running = start(settings, workers=8)
    running.app.dispatcher.policy = RetryPolicy(base_seconds=0.05, max_seconds=0.5)
    try:
        yield SlackDriver(running, fake)
    finally:
        running.stop()
