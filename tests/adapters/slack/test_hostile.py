"""Hostile but correctly signed Slack requests (issue 19): odd ids and over-long fields are answered,
never a 5xx; a command without a trigger_id is still its own delivery; unknown events are acked."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlencode

import pytest

from tests.adapters.slack.conftest import SlackDriver
from tests.adapters.slack.test_app import ephemeral_text
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, JSON, block_action, event_callback, signed_headers, slash_command


def command_without(
    slack: SlackDriver, text: str, *drop: str, timestamp: int | None = None
) -> tuple[str, dict[str, str]]:
    fields = dict(parse_qsl(slash_command(text, user="U0ADMIN", response_url=slack.fake.response_url("cmd"))))
    for name in drop:
        fields.pop(name)
    body = urlencode(fields)
    return body, signed_headers(body, content_type=FORM, timestamp=timestamp)


def names(slack: SlackDriver) -> str:
    return ephemeral_text(slack.command("list"))


def test_commands_without_a_trigger_id_are_each_applied(slack: SlackDriver) -> None:
    """Both used to share the key `slack:cmd:` and the second was answered as a repeat of the first."""
    for n in ("NoTrig1", "NoTrig2"):
        body, headers = command_without(slack, f"add {n}", "trigger_id", "response_url")
        reply = slack.request("POST", "/slack/events", body, headers)
        assert "Added" in ephemeral_text(reply) and n in reply.body, reply.body
    listed = names(slack)
    assert "NoTrig1" in listed and "NoTrig2" in listed


def test_the_same_signed_request_twice_is_applied_once(slack: SlackDriver) -> None:
    body, headers = command_without(slack, "add Twice --stage SQL", "trigger_id", timestamp=int(time.time()))
    first = slack.request("POST", "/slack/events", body, headers)
    second = slack.request("POST", "/slack/events", body, headers)
    assert first.status == second.status == 200
    assert "Added Twice" in ephemeral_text(first)
    assert "Repeat of a request already applied" in ephemeral_text(second)
    assert names(slack).count("Twice") == 1


def test_an_overlong_trigger_id_is_still_one_command(slack: SlackDriver) -> None:
    fields = dict(parse_qsl(slash_command("add LongTrig", user="U0ADMIN", response_url=slack.fake.response_url("c"))))
    fields["trigger_id"] = "T" * 300
    body = urlencode(fields)
    first = slack.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))
    again = slack.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))
    assert "Added LongTrig" in ephemeral_text(first)
    assert "Repeat of a request already applied" in ephemeral_text(again)


def test_overlong_fields_are_refused_naming_the_field(slack: SlackDriver) -> None:
    for text, says in [
        ("add Ext --external-id " + "x" * 129, "external id is 129 characters; at most 128"),
        ("add Seg --segment " + "s" * 65, "segment is 65 characters; at most 64"),
        ("add Own --owner @" + "U" * 300, "The owner is"),
    ]:
        answer = ephemeral_text(slack.command(text))
        assert says in answer, answer
        assert "went wrong" not in answer


def test_an_app_home_event_with_an_odd_event_id_is_handled_not_an_outage(slack: SlackDriver, fake: FakeSlack) -> None:
    event = {"type": "app_home_opened", "user": "U0ALICE", "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    for event_id in ("Ev\x00NUL", "E" * 5000):
        reply = slack.event(event, event_id=event_id)
        assert reply.status == 200, reply.body
    assert len(fake.wait_for("views.publish", 2)) == 2
    again = slack.event(event, event_id="E" * 5000, **{"x-slack-retry-num": "1"})
    assert again.status == 200
    time.sleep(0.3)
    assert len(fake.calls_to("views.publish")) == 2  # the retry of the long id was recognised


def test_unknown_event_types_are_acknowledged_so_slack_does_not_retry(slack: SlackDriver) -> None:
    for event in ({"type": "reaction_added", "user": "U0ALICE"}, {"type": "x\x00"}):
        body = event_callback(event)
        reply = slack.request("POST", "/slack/events", body, signed_headers(body, content_type=JSON))
        assert reply.status == 200, (event, reply.status, reply.body)
    body = event_callback({"type": ["app_home_opened"]})  # not an event Slack could send: malformed
    assert slack.request("POST", "/slack/events", body, signed_headers(body, content_type=JSON)).status == 400


def test_a_person_in_no_team_sees_how_to_be_added_not_the_accounts(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command("add Secret Co --stage SQL")
    assert "not in any stagebot team" in ephemeral_text(slack.command("list", user="U0STRANGER"))
    assert "not in any stagebot team" in ephemeral_text(slack.command("show Secret Co", user="U0STRANGER"))
    event = {"type": "app_home_opened", "user": "U0STRANGER", "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    assert slack.event(event).status == 200
    (home,) = fake.wait_for("views.publish", 1)
    view = json.dumps(home.body["view"])
    assert "not in any stagebot team" in view and "Secret Co" not in view


def test_a_response_url_that_is_not_a_url_is_a_logged_refusal_not_a_bug(
    slack: SlackDriver, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the HTTP fuzz suite: a signed press whose response_url was a date logged a traceback
    ("bug while sending the answer") from urllib's ValueError."""
    for url in ("0001-01-01T00:00:00+14:00", "ftp://x", "http://[::1", "http://h:99999/x", "http://h/\x06é"):
        body = block_action(user="U0BOSS", action_id="stagebot:claim", value="{}", response_url=url)
        reply = slack.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))
        assert reply.status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum("not a URL" in r.getMessage() for r in caplog.records) < 5:
        time.sleep(0.05)
    assert sum("not a URL" in r.getMessage() for r in caplog.records) >= 5
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("user", ["U\x00", "U\ud800", "U" * 300])
def test_an_app_home_for_a_user_id_no_one_can_have_is_answered_not_a_bug(
    slack: SlackDriver, fake: FakeSlack, caplog: pytest.LogCaptureFixture, user: str
) -> None:
    """Found by the fuzz suite on PostgreSQL: "could not publish the App Home" with a DataError traceback."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    assert slack.event(event).status == 200
    (home,) = fake.wait_for("views.publish", 1)
    assert "Your user id" in json.dumps(home.body["view"])  # the core's words, naming the field
    assert not [r for r in caplog.records if r.exc_info]
