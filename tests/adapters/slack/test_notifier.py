"""Every notification the Slack notifier sends is accepted by a fake Slack as strict as Slack."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from adapters.common.fanout import SILENT
from adapters.slack.blocks import notification
from adapters.slack.notifier import SlackNotifier
from lifecycle.delivery.outbox import Delivery, PostedCard
from lifecycle.domain import events as ev
from lifecycle.domain.pipeline import load_preset
from tests.adapters.slack.conftest import SlackDriver
from tests.adapters.slack.samples import every_event
from tests.fakes.slack_api import FakeSlack

P = load_preset("default")
EMOJI_NAME = "👩🏽‍💻" * 28 + "<!channel>&" * 3  # a 200-character name: emoji sequences, then markup
APPROVERS = tuple(f"slack:U0APPROVER{i:02d}" for i in range(40))


@pytest.fixture(scope="module")
def strict_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def deliver(fake: FakeSlack, event: ev.Event, lang: str) -> None:
    shown = every_event(EMOJI_NAME)
    cards = {
        "approval:7": PostedCard("C0SALES", "1.000001", shown["ApprovalRequested"]),
        "handoff:3": PostedCard("C0SALES", "1.000002", shown["HandoffOpened"]),
    }
    notifier = SlackNotifier(
        WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5),
        P,
        {"sales": "C0SALES"},
        lookup=lambda target, subject: cards.get(subject),
        lang=lang,  # type: ignore[arg-type]
        min_interval=0,
    )
    delivery = Delivery(outbox_id=1, event_id="e1", target="slack", attempt=1, event=event)
    list(notifier.deliver(delivery))  # raises DeliveryError on a refusal


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("kind", sorted(every_event()))
def test_every_event_kind_is_accepted_by_slack(strict_slack: FakeSlack, kind: str, lang: str) -> None:
    fake = strict_slack
    event = every_event(EMOJI_NAME, "理由 <@U0X> " * 90, title="t" * 300, approvers=APPROVERS)[kind]
    event = event.model_copy(update={"audience": ("sales",)})
    before = len(fake.calls)
    deliver(fake, event, lang)
    sent = fake.calls[before:]
    if isinstance(event, SILENT):
        assert sent == []
        return
    (call,) = sent
    updates = isinstance(event, ev.ApprovalDecided | ev.HandoffClaimed)
    assert call.method == ("chat.update" if updates else "chat.postMessage")
    assert call.response["ok"] is True, call.response


def test_the_sla_reminder_with_its_two_snooze_buttons_is_posted(strict_slack: FakeSlack) -> None:
    fake = strict_slack
    event = every_event()["SlaReminder"].model_copy(update={"audience": ("sales",)})
    deliver(fake, event, "en")
    call = fake.calls_to("chat.postMessage")[-1]
    assert call.response["ok"] is True, call.response
    (actions,) = [b for b in call.body["blocks"] if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert len(ids) == len(set(ids)) == 3
    assert all(i.startswith("stagebot:") for i in ids)  # app.py's listener matches ^stagebot:


def test_the_renamed_snooze_buttons_still_reach_the_snooze_command(slack: SlackDriver, fake: FakeSlack) -> None:
    added = slack.command('add "Snoozy Co"', user="U0ADMIN")
    account_id = int(re.search(r"\(#(\d+)\)", added.json["text"]).group(1))  # type: ignore[union-attr]
    reminder = every_event("Snoozy Co")["SlaReminder"].model_copy(update={"account_id": account_id})
    (actions,) = [b for b in notification(reminder, P).blocks if b["type"] == "actions"]
    week = next(el for el in actions["elements"] if el["action_id"] == "stagebot:snooze:7d")
    assert slack.press(week["value"], week["action_id"], user="U0ADMIN").status == 200
    (answer,) = fake.wait_for("response_url")
    assert answer.answered == 200, answer.response
    assert "No SLA reminders for Snoozy Co until" in answer.body["text"]


def test_a_message_whose_blocks_slack_refuses_goes_as_plain_text_and_is_logged(
    strict_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake = strict_slack
    event = every_event("Plain Co")["SlaReminder"].model_copy(update={"audience": ("sales",)})
    fake.fail("chat.postMessage", status=200, error="invalid_blocks", retry_after=None)
    before = len(fake.calls)
    with caplog.at_level("ERROR", logger="stagebot.slack.notifier"):
        deliver(fake, event, "en")
    refused, plain = fake.calls[before:]
    assert refused.response["error"] == "invalid_blocks" and "blocks" in refused.body
    assert plain.response["ok"] and "blocks" not in plain.body and "Plain Co" in plain.body["text"]
    assert "invalid_blocks" in caplog.text and "C0SALES" in caplog.text


def test_a_refused_plain_text_fails_the_delivery_as_before(strict_slack: FakeSlack) -> None:
    from lifecycle.delivery.outbox import DeliveryError

    fake = strict_slack
    event = every_event("Plain Co")["SlaReminder"].model_copy(update={"audience": ("sales",)})
    fake.fail("chat.postMessage", status=200, error="invalid_blocks", retry_after=None)
    fake.fail("chat.postMessage", status=200, error="channel_not_found", retry_after=None)
    with pytest.raises(DeliveryError) as err:
        deliver(fake, event, "en")
    assert err.value.permanent and err.value.code == "channel_not_found"
