"""A running stagebot with Feishu enabled, wired to a fake Feishu Open API, driven through its WSGI app
with really encrypted and signed requests."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.serve import Running, start
from lifecycle.delivery.outbox import RetryPolicy
from tests.conftest import copy_migrated
from tests.fakes.feishu_api import FakeFeishu, Message, reset_lark_token_cache
from tests.fakes.feishu_requests import card_action, envelope, signed, text_message
from tests.wsgi import call_wsgi

ENCRYPT_KEY = "test-encrypt-key"
VERIFICATION_TOKEN = "test-verification-token"
BOT = "ou_stagebot"

TEAMS_TOML = """\
[teams.marketing]
feishu_chat = "oc_marketing"
members = ["feishu:ou_mary"]

[teams.sales]
feishu_chat = "oc_sales"
members = ["feishu:ou_alice"]
approvers = ["feishu:ou_boss"]

[teams.cs]
feishu_chat = "oc_cs"
members = ["feishu:ou_carol"]

[teams.support]
feishu_chat = "oc_support"
members = ["feishu:ou_dave"]
"""

CONFIG = (
    """\
[database]
url = "sqlite:///{db}"

[feishu]
enabled = true
mode = "{mode}"
domain = "{api}"
liveness_seconds = {liveness}

[scheduler]
enabled = false

[access]
admins = ["feishu:ou_admin"]

"""
    + TEAMS_TOML
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def feishu_env(app_id: str) -> dict[str, str]:
    return {
        "FEISHU_APP_ID": app_id,
        "FEISHU_APP_SECRET": "test-app-secret",
        "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN,
        "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
    }


def start_feishu(tmp_path: Path, fake: FakeFeishu, *, mode: str = "webhook", liveness: float = 360) -> Running:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(
        textwrap.dedent(CONFIG).format(db=tmp_path / "stagebot.db", api=fake.url, mode=mode, liveness=liveness)
    )
    # A fresh app id per test: lark-oapi caches tenant tokens per app id, process-wide.
    settings = load_settings(str(cfg), feishu_env(f"cli_{uuid.uuid4().hex[:12]}"))
    running = start(settings, workers=8)
    running.app.dispatcher.policy = RetryPolicy(base_seconds=0.05, max_seconds=0.5)
    return running


class FeishuDriver:
    """Sends requests into the running app's WSGI entry point, as Feishu would."""

    def __init__(self, running: Running, fake: FakeFeishu) -> None:
        self.running = running
        self.fake = fake
        self.app_id = running.app.settings.secret("FEISHU_APP_ID") or ""

    def request(self, body: bytes, headers: dict[str, str], path: str = "/feishu/events") -> Reply:
        return Reply(*call_wsgi(self.running.wsgi, "POST", path, body, headers))

    def send(self, payload: dict[str, Any], **signing: Any) -> Reply:
        body, headers = signed(payload, encrypt_key=ENCRYPT_KEY, **signing)
        return self.request(body, headers)

    def event(self, event_type: str, event: dict[str, Any], *, event_id: str | None = None, **signing: Any) -> Reply:
        payload = envelope(event_type, event, token=VERIFICATION_TOKEN, app_id=self.app_id, event_id=event_id)
        return self.send(payload, **signing)

    def say(self, text: str, *, open_id: str = "ou_alice", **kw: Any) -> Reply:
        """A text message to the bot (a direct chat unless chat_type="group")."""
        event_id = kw.pop("event_id", None)
        return self.event("im.message.receive_v1", text_message(text, open_id=open_id, **kw), event_id=event_id)

    def press(self, value: Any, *, open_id: str, open_message_id: str = "om_1", event_id: str | None = None) -> Reply:
        event = card_action({}, open_id=open_id, open_message_id=open_message_id)
        event["action"]["value"] = value
        return self.event("card.action.trigger", event, event_id=event_id)

    def replies_to(self, message_id: str) -> list[Message]:
        return [m for m in self.fake.messages if m.reply_to == message_id]

    def wait_reply(self, message_id: str, timeout: float = 10.0) -> Message:
        assert self.fake.wait_for(lambda: bool(self.replies_to(message_id)), timeout), f"no reply to {message_id}"
        return self.replies_to(message_id)[0]

    def to_chat(self, chat_id: str) -> list[Message]:
        return [m for m in self.fake.messages if m.receive_id == chat_id and m.reply_to is None]

    def drain(self) -> None:
        self.running.app.dispatcher.drain()


def card_texts(content: Any, locale: str = "en_us") -> str:
    """Every text of a card (title, fields as `label: value`, body) as a reader with `locale` sees it,
    joined by newlines.

    Short texts carry `i18n_content`; body texts are sent once, in the bot's language (`content`).
    """

    def shown(text: dict[str, Any]) -> str:
        return str(text["i18n_content"][locale] if "i18n_content" in text else text["content"])

    out = [shown(content["header"]["title"])]
    for el in content["body"]["elements"]:
        if el.get("tag") == "div":
            out.append(shown(el["text"]))
        for col in el.get("columns") or []:
            texts = [shown(x["text"]) for x in col["elements"] if x.get("tag") == "div"]
            if len(texts) == 2:  # a field: its label above its value
                out.append(f"{texts[0]}: {texts[1]}")
    return "\n".join(out)


def card_buttons(content: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for el in content["body"]["elements"]:
        if el.get("tag") == "column_set":
            for col in el["columns"]:
                found += [b for b in col["elements"] if b.get("tag") == "button"]
    return found


@pytest.fixture
def fake() -> Iterator[FakeFeishu]:
    reset_lark_token_cache()
    with FakeFeishu(bot_open_id=BOT) as f:
        yield f


@pytest.fixture
def feishu(tmp_path: Path, fake: FakeFeishu, sqlite_template: Path) -> Iterator[FeishuDriver]:
    copy_migrated(sqlite_template, tmp_path / "stagebot.db")  # start() then finds it up to date
    running = start_feishu(tmp_path, fake)
    try:
        yield FeishuDriver(running, fake)
    finally:
        running.stop()
