"""Recorded, real-shaped Slack request bodies (tests/fakes/payloads/slack/), signed and sent to the
real bolt app that `build_app` makes (through `stagebot serve`'s WSGI app, as in production): each
is accepted and does what it should. The builders in tests/fakes/slack_requests.py make the other
tests' requests; these files pin the shape Slack documents, so a builder drifting from it shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from tests.adapters.slack.conftest import Reply, SlackDriver
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, JSON, signed_headers

PAYLOADS = Path(__file__).parents[2] / "fakes" / "payloads" / "slack"


def recorded(name: str, **fill: str) -> str:
    text = (PAYLOADS / name).read_text().strip()
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    return text


def post(slack: SlackDriver, body: str, content_type: str) -> Reply:
    return slack.request("POST", "/slack/events", body, signed_headers(body, content_type=content_type))


def interaction(slack: SlackDriver, name: str, **fill: str) -> Reply:
    payload = recorded(name, **fill)
    json.loads(payload)  # still valid JSON once filled in
    return post(slack, "payload=" + quote(payload, safe=""), FORM)


def stage_of(slack: SlackDriver, account: str) -> str:
    card: Any = slack.running.app.core.ask(c.ShowAccount(actor=Actor("slack", "U0ADMIN"), account=account))
    return str(card.account.stage)


def approval_waiting(slack: SlackDriver) -> None:
    """Approval #1 of a fresh database: Recorded, PQL → P0, for a sales approver (U0BOSS)."""
    form = recorded("slash_command.form", response_url=quote(slack.fake.response_url("cmd"), safe=""))
    assert "Added Recorded" in post(slack, form, FORM).json["text"]
    assert "needs approval" in slack.command("move Recorded P0 trial went well", user="U0ALICE").json["text"]


def test_url_verification_echoes_the_challenge(slack: SlackDriver) -> None:
    reply = post(slack, recorded("url_verification.json"), JSON)
    assert reply.status == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in reply.body


def test_a_slash_command_is_answered_in_its_ack(slack: SlackDriver) -> None:
    form = recorded("slash_command.form", response_url=quote(slack.fake.response_url("cmd"), safe=""))
    reply = post(slack, form, FORM)
    assert reply.status == 200
    assert "Added Recorded" in reply.json["text"] and reply.json["response_type"] == "ephemeral"
    assert stage_of(slack, "Recorded") == "PQL"


def test_a_button_in_a_message_is_acked_and_answered_through_the_response_url(
    slack: SlackDriver, fake: FakeSlack
) -> None:
    approval_waiting(slack)
    reply = interaction(slack, "block_actions_message.json", response_url=fake.response_url("btn"))
    assert reply.status == 200 and reply.body == ""  # the ack; the answer follows
    answer = fake.wait_for("response_url", 1)[-1]
    assert answer.body["response_type"] == "ephemeral" and "Recorded" in answer.body["text"]
    assert stage_of(slack, "Recorded") == "P0"


def test_a_button_in_the_app_home_republishes_the_pressers_home(slack: SlackDriver, fake: FakeSlack) -> None:
    approval_waiting(slack)
    before = len(fake.calls_to("views.publish"))
    reply = interaction(slack, "block_actions_home.json")
    assert reply.status == 200
    home = fake.wait_for("views.publish", before + 1)[-1]
    assert home.body["user_id"] == "U0BOSS" and home.body["view"]["type"] == "home"
    assert "hash" not in home.body  # built after the press: the newest Home, never refused as stale
    assert stage_of(slack, "Recorded") == "SQL"  # rejected: back where it came from


def test_app_home_opened_publishes_the_home(slack: SlackDriver, fake: FakeSlack) -> None:
    reply = post(slack, recorded("app_home_opened.json"), JSON)
    assert reply.status == 200
    home = fake.wait_for("views.publish", 1)[-1]
    assert home.body["user_id"] == "U0ALICE" and home.body["view"]["type"] == "home"
