"""Buttons pressed in the App Home: Slack sends them with the Home view as their container and no
response_url, so the answer is the presser's Home, published again with the outcome on top and the
decided approval or taken handoff gone. The real bolt app, really signed requests shaped as Slack
sends a Home press, and the real WebClient against the fake Slack."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from tests.adapters.slack.conftest import SlackDriver
from tests.clocks import drive, take_over
from tests.fakes.slack_api import FakeSlack, SlackCall
from tests.fakes.slack_requests import FORM, home_block_action, signed_headers


def open_home(slack: SlackDriver, fake: FakeSlack, user: str) -> dict[str, Any]:
    """The Home `user` sees on opening the tab."""
    before = len(fake.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    assert slack.event(event).status == 200
    view: dict[str, Any] = fake.wait_for("views.publish", before + 1)[-1].body["view"]
    return view


def home_buttons(view: dict[str, Any]) -> dict[str, str]:
    """action_id -> value of the first button of each kind (in actions blocks and section accessories)."""
    out: dict[str, str] = {}
    for b in view["blocks"]:
        for el in [*b.get("elements", []), b.get("accessory") or {}]:
            if el.get("type") == "button":
                out.setdefault(el["action_id"], el["value"])
    return out


def press_in_home(slack: SlackDriver, body: str) -> None:
    reply = slack.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))
    assert reply.status == 200, reply.body


def publishes_for(fake: FakeSlack, user: str, count: int) -> list[SlackCall]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        calls = [x for x in fake.calls_to("views.publish") if x.body.get("user_id") == user]
        if len(calls) >= count:
            return calls
        time.sleep(0.05)
    raise AssertionError(f"{user} got {len(calls)} Home publishes: {[x.summary() for x in fake.calls]}")


def posts_to(fake: FakeSlack, channel: str, count: int = 1) -> list[SlackCall]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        calls = [x for x in fake.calls_to("chat.postMessage") if x.body.get("channel") == channel]
        if len(calls) >= count:
            return calls
        time.sleep(0.05)
    raise AssertionError(f"{channel} got {len(calls)} posts: {[x.summary() for x in fake.calls]}")


def stage_of(slack: SlackDriver, account: str) -> str:
    card = slack.running.app.core.ask(c.ShowAccount(actor=Actor("slack", "U0ADMIN"), account=account))
    return str(card.account.stage)  # type: ignore[union-attr]


def ask_approval(slack: SlackDriver, fake: FakeSlack) -> dict[str, str]:
    """Beta waits on a sales approver; the approve and reject values from the approver's Home."""
    slack.command('add "Beta" --stage PQL --amount 20k', user="U0ADMIN")
    assert "needs approval" in slack.command("move Beta P0 trial went well", user="U0ALICE").json["text"]
    posts_to(fake, "C0SALES")  # the approval card, which a decision updates in place
    values = home_buttons(open_home(slack, fake, "U0BOSS"))
    assert {"stagebot:approve", "stagebot:reject"} <= set(values)
    return values


# A rejection sends the account to the transition's reject_to stage (SQL in the default pipeline).
@pytest.mark.parametrize(("button", "said", "stage"), [("approve", "approved", "P0"), ("reject", "rejected", "SQL")])
def test_a_decision_in_the_home_is_applied_once_and_shown_in_the_republished_home(
    slack: SlackDriver, fake: FakeSlack, button: str, said: str, stage: str
) -> None:
    values = ask_approval(slack, fake)
    action = f"stagebot:{button}"
    body = home_block_action(user="U0BOSS", action_id=action, value=values[action])
    press_in_home(slack, body)
    press_in_home(slack, body)  # the same press delivered again
    first, again = publishes_for(fake, "U0BOSS", 3)[1:3]
    for publish in (first, again):
        view = publish.body["view"]
        shown = json.dumps(view)
        assert view["type"] == "home" and "hash" not in publish.body
        assert f"Approval #1 {said}" in view["blocks"][0]["text"]["text"]  # the outcome on top
        assert view["blocks"][1]["type"] == "divider"
        assert "stagebot:approve" not in shown and "stagebot:reject" not in shown  # the decided approval is gone
        assert "No approvals or handoffs are waiting on you" in shown
    assert stage_of(slack, "Beta") == stage
    dispatcher, clock = take_over(slack.running)  # the card's update waits its turn in #sales: jump to it
    drive(dispatcher, clock, lambda: len(fake.calls_to("chat.update")) >= 1)
    clock.advance(60)
    dispatcher.drain()
    assert len(fake.calls_to("chat.update")) == 1  # the channel's card updated once: decided once
    # No response_url in a Home press, and no channel to answer in: nothing but the Home.
    assert not fake.calls_to("response_url") and not fake.calls_to("chat.postEphemeral")
    assert not [x for x in fake.calls_to("chat.postMessage") if x.body.get("channel") == "U0BOSS"]


def test_taking_a_handoff_in_the_home_shows_it_taken(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command('add "Theta" --stage SQL', user="U0ADMIN")
    slack.command("move Theta P0 signed directly", user="U0ALICE")
    value = home_buttons(open_home(slack, fake, "U0CAROL"))["stagebot:claim"]
    press_in_home(slack, home_block_action(user="U0CAROL", action_id="stagebot:claim", value=value))
    view = publishes_for(fake, "U0CAROL", 2)[1].body["view"]
    assert "You now own *Theta*" in view["blocks"][0]["text"]["text"]
    assert "stagebot:claim" not in json.dumps(view)  # the handoff taken is no longer offered
    assert "No approvals or handoffs are waiting on you" in json.dumps(view)
    assert not fake.calls_to("response_url")


def test_a_refusal_in_the_home_is_shown_in_the_home(slack: SlackDriver, fake: FakeSlack) -> None:
    values = ask_approval(slack, fake)
    # Alice is in sales but no approver: her press (on a Home that still showed the button) is refused.
    press_in_home(
        slack, home_block_action(user="U0ALICE", action_id="stagebot:approve", value=values["stagebot:approve"])
    )
    view = publishes_for(fake, "U0ALICE", 1)[0].body["view"]
    assert "Only Sales approvers" in view["blocks"][0]["text"]["text"]
    assert stage_of(slack, "Beta") == "PQL"


def test_a_home_slack_refuses_is_answered_in_the_apps_dm_instead(
    slack: SlackDriver, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    values = ask_approval(slack, fake)
    fake.fail("views.publish", status=200, error="invalid_blocks", retry_after=None)
    press_in_home(
        slack, home_block_action(user="U0BOSS", action_id="stagebot:approve", value=values["stagebot:approve"])
    )
    said = posts_to(fake, "U0BOSS")
    assert "Approval #1 approved" in said[0].body["text"] and "blocks" not in said[0].body
    assert stage_of(slack, "Beta") == "P0"


def test_a_home_answer_refused_twice_is_logged_with_slacks_reasons(
    slack: SlackDriver, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    values = ask_approval(slack, fake)
    fake.fail("views.publish", status=200, error="view_too_large", retry_after=None)
    fake.fail_channel("U0BOSS", "messages_tab_disabled")  # the DM too
    with caplog.at_level(logging.WARNING, logger="stagebot.slack"):
        press_in_home(
            slack, home_block_action(user="U0BOSS", action_id="stagebot:approve", value=values["stagebot:approve"])
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not [r for r in caplog.records if r.levelno == logging.ERROR]:
            time.sleep(0.05)
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "view_too_large" in error.getMessage() and "messages_tab_disabled" in error.getMessage()
    assert "U0BOSS" in error.getMessage() and "xoxb" not in error.getMessage()
