"""Issue 18 end to end: one person across Slack and Feishu, with real signed (Slack) and encrypted,
signed (Feishu) requests into one running stagebot with both platforms enabled, against the fake
Slack Web API and the fake Feishu Open API.

Alice owns an account through Slack, then lists it as hers and moves it from Feishu; each platform's
team channel names her in its own form (Slack `<@U0ALICE>`, Feishu `<at id=ou_alice></at>`), and
neither shows the other's id.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.serve import start
from lifecycle.delivery.outbox import RetryPolicy
from tests.adapters.feishu.conftest import BOT, FeishuDriver, card_texts, feishu_env
from tests.adapters.slack.conftest import SlackDriver
from tests.conftest import copy_migrated
from tests.fakes.feishu_api import FakeFeishu, Message, reset_lark_token_cache
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET

CONFIG = """\
[database]
url = "sqlite:///{db}"

[slack]
enabled = true
api_url = "{slack_api}"

[feishu]
enabled = true
mode = "webhook"
domain = "{feishu_api}"

[scheduler]
enabled = false

[people.alice]
name = "Alice Wang"
email = "alice@acme.example"
slack = "U0ALICE"
feishu = "ou_alice"

[people.bob]
name = "Bob Li"
slack = "U0BOB"

[teams.sales]
slack_channel = "C0SALES"
feishu_chat = "oc_sales"
members = ["alice"]
approvers = ["bob"]

[access]
admins = ["slack:U0ADMIN"]
"""


@pytest.fixture
def both(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[SlackDriver, FeishuDriver]]:
    reset_lark_token_cache()
    with FakeSlack() as fake_slack, FakeFeishu(bot_open_id=BOT) as fake_feishu:
        copy_migrated(sqlite_template, tmp_path / "stagebot.db")
        cfg = tmp_path / "stagebot.toml"
        db = tmp_path / "stagebot.db"
        cfg.write_text(textwrap.dedent(CONFIG).format(db=db, slack_api=fake_slack.base_url, feishu_api=fake_feishu.url))
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET}
        env |= feishu_env(f"cli_{uuid.uuid4().hex[:12]}")
        running = start(load_settings(str(cfg), env), workers=8)
        running.app.dispatcher.policy = RetryPolicy(base_seconds=0.05, max_seconds=0.5)
        try:
            yield SlackDriver(running, fake_slack), FeishuDriver(running, fake_feishu)
        finally:
            running.stop()


def slack_answer(slack: SlackDriver, text: str, user: str) -> str:
    """The ephemeral answer, carried by the slash command's ack."""
    reply = slack.command(text, user=user)
    assert reply.status == 200
    return reply.body


def feishu_answer(feishu: FeishuDriver, text: str, open_id: str) -> str:
    message_id = f"om_{uuid.uuid4().hex[:12]}"
    assert feishu.say(text, open_id=open_id, message_id=message_id).status == 200
    return json.dumps(feishu.wait_reply(message_id).content, ensure_ascii=False)


def slack_post(slack: SlackDriver, channel: str, says: str) -> str:
    """The first post to `channel` whose text has `says`, once the dispatcher delivered it."""

    def found() -> list[dict[str, Any]]:
        calls = slack.fake.calls_to("chat.postMessage")
        return [c.body for c in calls if c.body.get("channel") == channel and says in c.body.get("text", "")]

    deadline = time.monotonic() + 10
    while not found() and time.monotonic() < deadline:
        slack.drain()
        time.sleep(0.02)
    assert found(), f"no Slack post to {channel} saying {says!r}"
    return json.dumps(found()[0])


def feishu_post(feishu: FeishuDriver, chat: str, says: str) -> Message:
    def found() -> list[Message]:
        return [m for m in feishu.to_chat(chat) if says in card_texts(m.content)]

    assert feishu.fake.wait_for(lambda: bool(found()), 10), f"no Feishu post to {chat} saying {says!r}"
    return found()[0]


def test_alice_owns_through_slack_acts_from_feishu_and_each_platform_mentions_her(
    both: tuple[SlackDriver, FeishuDriver],
) -> None:
    slack, feishu = both
    assert "Added" in slack_answer(slack, 'add "Acme Corp" --stage SQL', user="U0ADMIN")
    # Alice takes it in Slack, naming herself with a Slack mention.
    assert "Acme Corp" in slack_answer(slack, "assign Acme <@U0ALICE>", user="U0ALICE")
    assigned_slack = slack_post(slack, "C0SALES", "now owned by")
    assert "<@U0ALICE>" in assigned_slack and "ou_alice" not in assigned_slack
    assigned_feishu = feishu_post(feishu, "oc_sales", "now owned by").content
    shown = json.dumps(assigned_feishu)
    assert "<at id=ou_alice></at>" in shown and "U0ALICE" not in shown
    assert "Alice Wang" in card_texts(assigned_feishu)

    # From Feishu she is the same person: the account is hers, and hers to move.
    assert "Acme Corp" in feishu_answer(feishu, "list --mine", open_id="ou_alice")
    moved = feishu_answer(feishu, "move Acme PQL", open_id="ou_alice")
    assert "PQL" in moved and "not in any" not in moved
    moved_slack = slack_post(slack, "C0SALES", "moved")
    assert "<@U0ALICE>" in moved_slack and "ou_alice" not in moved_slack
    moved_feishu = json.dumps(feishu_post(feishu, "oc_sales", "moved").content)
    assert "<at id=ou_alice></at>" in moved_feishu and "U0ALICE" not in moved_feishu

    # From Slack, too, the account stays hers.
    assert "Acme Corp" in slack_answer(slack, "list --mine", user="U0ALICE")


def test_owners_are_named_by_key_or_email_and_strangers_get_their_config_line(
    both: tuple[SlackDriver, FeishuDriver],
) -> None:
    slack, feishu = both
    slack_answer(slack, "add Beta --stage SQL", user="U0ADMIN")
    assert "Alice Wang" in feishu_answer(feishu, "assign Beta alice@acme.example", open_id="ou_alice")
    refused = slack_answer(slack, "assign Beta mallory", user="U0ALICE")
    assert "cannot own an account" in refused and "alice, bob" in refused
    stranger = feishu_answer(feishu, "list", open_id="ou_newbie")
    assert '[people.you] feishu = \\"ou_newbie\\"' in stranger
