"""The real bolt app behind stagebot's WSGI entry point, with really signed requests and the real
WebClient posting to a fake Slack Web API: commands, buttons, App Home, bad input, API faults."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.adapters.slack.conftest import SlackDriver
from tests.clocks import drive, take_over
from tests.fakes.slack_api import FakeSlack


def ephemeral_text(reply: Any) -> str:
    assert reply.status == 200, reply.body
    data = reply.json
    assert data["response_type"] == "ephemeral"
    return str(data["text"])


def posts_to(fake: FakeSlack, channel: str) -> list[str]:
    return [str(c.body.get("text", "")) for c in fake.calls_to("chat.postMessage") if c.body.get("channel") == channel]


def wait_posts(fake: FakeSlack, channel: str, predicate: Any, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = posts_to(fake, channel)
        if predicate(texts):
            return texts
        time.sleep(0.05)
    raise AssertionError(f"{channel} got {posts_to(fake, channel)}")


def buttons(call_body: dict[str, Any]) -> dict[str, str]:
    blocks = call_body["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    out = {}
    for b in blocks:
        for el in b.get("elements", []):
            if el.get("type") == "button":
                out[el["action_id"]] = el["value"]
    return out


def test_a_command_moves_an_account_and_the_owner_channel_hears_of_it(slack: SlackDriver, fake: FakeSlack) -> None:
    started = time.monotonic()
    reply = slack.command('add "Acme Corp" --amount 50k', user="U0MARY")
    assert time.monotonic() - started < 2.5  # the ack carries the answer, well within Slack's 3 s
    assert "Added Acme Corp" in ephemeral_text(reply)
    started = time.monotonic()
    reply = slack.command("move Acme SQL first call held", user="U0MARY")
    assert time.monotonic() - started < 2.5
    assert "Acme Corp" in ephemeral_text(reply) and "SQL" in reply.json["text"]
    texts = wait_posts(fake, "C0SALES", lambda ts: any("moved" in t for t in ts))
    moved = next(t for t in texts if "moved" in t)
    assert "Acme Corp" in moved and "MQL" in moved and "SQL" in moved and "first call held" in moved
    # Sales also gets the handoff prompt with a Take ownership button (a second later: the
    # channel is paced at about one message per second).
    wait_posts(fake, "C0SALES", lambda ts: any("Handoff" in t for t in ts))
    prompt = next(c for c in fake.calls_to("chat.postMessage") if "Handoff" in str(c.body.get("text")))
    assert "stagebot:claim" in buttons(prompt.body)


def test_the_approval_flow_by_buttons(slack: SlackDriver, fake: FakeSlack) -> None:
    dispatcher, clock = take_over(slack.running)  # channel pacing on a clock the test moves
    slack.command('add "Beta" --stage PQL --amount 20k', user="U0ADMIN")
    reply = slack.command("move Beta P0 trial went well", user="U0ALICE")
    assert "needs approval" in ephemeral_text(reply)
    drive(dispatcher, clock, lambda: any("Approval #" in t for t in posts_to(fake, "C0SALES")))
    card_call = next(c for c in fake.calls_to("chat.postMessage") if "stagebot:approve" in buttons(c.body))
    assert card_call.body["channel"] == "C0SALES"
    values = buttons(card_call.body)
    assert set(values) == {"stagebot:approve", "stagebot:reject"}

    # A sales member who is not an approver is refused, privately, and nothing changes.
    slack.press(values["stagebot:approve"], "stagebot:approve", user="U0ALICE")
    refusal = fake.wait_for("response_url", 1)[-1]
    assert "Only Sales approvers" in refusal.body["text"] and refusal.body["response_type"] == "ephemeral"
    assert "PQL" in ephemeral_text(slack.command("show Beta"))

    # The approver's press moves the account to P0 and updates the card in place.
    slack.press(values["stagebot:approve"], "stagebot:approve", user="U0BOSS")
    fake.wait_for("response_url", 2)  # the press is answered on a followup thread
    drive(dispatcher, clock, lambda: len(fake.calls_to("chat.update")) >= 1)
    update = fake.calls_to("chat.update")[0]
    assert update.body["channel"] == "C0SALES" and update.body["ts"] == card_call.response["ts"]
    assert "U0BOSS" in json.dumps(update.body) and "stagebot:approve" not in json.dumps(update.body)
    assert "Stage: P0 Signed" in ephemeral_text(slack.command("show Beta"))

    # A second press (double click, or another approver) is answered "already decided".
    slack.press(values["stagebot:reject"], "stagebot:reject", user="U0BOSS")
    answers = fake.wait_for("response_url", 3)
    assert "already decided by slack:U0BOSS" in answers[-1].body["text"]
    clock.advance(60)
    dispatcher.drain()
    assert len(fake.calls_to("chat.update")) == 1


def test_a_button_answer_slack_refuses_as_blocks_arrives_as_plain_text(slack: SlackDriver, fake: FakeSlack) -> None:
    dispatcher, clock = take_over(slack.running)  # the card waits its turn in #sales: jump to it
    slack.command('add "Beta" --stage PQL --amount 20k', user="U0ADMIN")
    slack.command("move Beta P0 trial went well", user="U0ALICE")
    drive(dispatcher, clock, lambda: any("Approval #" in t for t in posts_to(fake, "C0SALES")))
    card_call = next(c for c in fake.calls_to("chat.postMessage") if "stagebot:approve" in buttons(c.body))
    fake.fail("response_url", status=400, error="invalid_blocks", retry_after=None)  # as Slack answers one
    slack.press(buttons(card_call.body)["stagebot:approve"], "stagebot:approve", user="U0ALICE")
    refused, plain = fake.wait_for("response_url", 2)[:2]
    assert refused.answered == 400 and "blocks" in refused.body
    assert "blocks" not in plain.body and "Only Sales approvers" in plain.body["text"]
    assert plain.body["response_type"] == "ephemeral"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", 'Unknown command "frobnicate"'),
        ("move Nobody P2", 'No account named "Nobody"'),
        ("move Gamma P4", "From MQL you can move to: SQL Opportunity"),
        ("", "Commands"),
        ("x" * 3000, "commands are at most 2000"),
        ("move Gamma SQL the payload is ready", "Gamma: MQL Lead"),
        ("add payload", "Added payload"),
        ("move Gamma P9", 'Unknown stage "P9"'),
        ('move "Gamma', "quote is not closed"),
    ],
)
def test_bad_input_gets_a_clear_ephemeral_answer(slack: SlackDriver, text: str, expected: str) -> None:
    slack.command("add Gamma", user="U0ADMIN")
    reply = slack.command(text, user="U0ADMIN")
    assert reply.status == 200
    assert expected in ephemeral_text(reply)
    assert "Traceback" not in reply.body


def test_unknown_people_are_told_how_to_get_access(slack: SlackDriver) -> None:
    text = ephemeral_text(slack.command("add Delta", user="U0STRANGER"))
    assert "slack:U0STRANGER" in text and "not in any stagebot team" in text


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        ({"x-slack-signature": "v0=" + "0" * 64}, 401),
        ({"x-slack-request-timestamp": str(int(time.time()) - 600)}, 401),
    ],
)
def test_bad_signatures_and_stale_requests_are_401(slack: SlackDriver, mutate: dict[str, str], status: int) -> None:
    reply = slack.command("list", **mutate)
    assert reply.status == status


def test_malformed_and_misrouted_requests_are_4xx(slack: SlackDriver) -> None:
    assert slack.request("POST", "/slack/events", "{not json", {"content-type": "application/json"}).status == 400
    assert slack.request("GET", "/slack/events", "", {}).status == 405
    assert slack.request("GET", "/nowhere", "", {}).status == 404
    body = "payload=" + "%7Bbroken"
    assert (
        slack.request("POST", "/slack/events", body, {"content-type": "application/x-www-form-urlencoded"}).status
        == 400
    )
    assert slack.request("GET", "/healthz", "", {}).status == 200


def test_damaged_button_values_are_answered_not_crashed(slack: SlackDriver, fake: FakeSlack) -> None:
    assert slack.press("not json", "stagebot:approve", user="U0BOSS").status == 200
    assert slack.press('{"v": 1, "op": "approve", "approval": 999}', "stagebot:approve", user="U0BOSS").status == 200
    answers = fake.wait_for("response_url", 2)
    assert "older message or is damaged" in answers[0].body["text"]
    assert "No approval #999" in answers[1].body["text"]
    # Strict JSON: a duplicate key is damage, not "the last one wins".
    twice = '{"v": 1, "op": "approve", "approval": 1, "approval": 999}'
    assert slack.press(twice, "stagebot:approve", user="U0BOSS").status == 200
    assert "older message or is damaged" in fake.wait_for("response_url", 3)[2].body["text"]


def test_app_home_is_published_once_per_event_even_when_slack_retries(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command("add Epsilon --stage SQL --owner @U0ALICE", user="U0ADMIN")
    event = {"type": "app_home_opened", "user": "U0ALICE", "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    assert slack.event(event, event_id="Ev0001").status == 200
    published = fake.wait_for("views.publish", 1)
    assert published[0].body["user_id"] == "U0ALICE"
    assert "Epsilon" in json.dumps(published[0].body["view"])
    assert (
        slack.event(
            event, event_id="Ev0001", **{"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
        ).status
        == 200
    )
    time.sleep(0.5)
    assert len(fake.calls_to("views.publish")) == 1


def test_rate_limits_and_server_errors_delay_but_never_lose_or_repeat(slack: SlackDriver, fake: FakeSlack) -> None:
    # Paced and retried on a clock the test moves: ~17 s of waiting on real time, now milliseconds.
    dispatcher, clock = take_over(slack.running)
    fake.fail("chat.postMessage", status=429, error="ratelimited", retry_after=1, times=3)
    fake.fail("chat.postMessage", status=500, error="internal_error", retry_after=None, times=3)
    names = ["Acct A", "Acct B", "Acct C"]
    for n in names:
        slack.command(f'add "{n}" --stage P2', user="U0ADMIN")
    for target in ("P3", "P4"):
        for n in names:
            assert "→" in ephemeral_text(slack.command(f'move "{n}" {target}', user="U0ADMIN"))
    # P3 and P4 belong to CS alone: six stage changes, each to arrive in #cs exactly once.
    waited = drive(dispatcher, clock, lambda: sum("moved" in t for t in posts_to(fake, "C0CS")) >= 6)
    assert waited >= 3  # three 429s asking for a second each, and one post a second per channel
    moved = [t for t in posts_to(fake, "C0CS") if "moved" in t]
    assert len(moved) == 6 and len(set(moved)) == 6
    for n in names:
        mine = [t for t in moved if t.startswith(n)]
        assert len(mine) == 2 and "→ P3" in mine[0] and "→ P4" in mine[1]  # in order per account
    failed = [c for c in fake.calls_to("chat.postMessage") if c.answered != 200]
    assert len(failed) == 6  # the faults really happened


def test_a_channel_slack_refuses_is_not_retried_and_admins_are_told(slack: SlackDriver, fake: FakeSlack) -> None:
    dispatcher, clock = take_over(slack.running)
    fake.fail_channel("C0CS", "channel_not_found")
    slack.command('add "Zeta" --stage P3', user="U0ADMIN")
    slack.command("move Zeta P4", user="U0ADMIN")

    def tries() -> list[Any]:
        return [
            c for c in fake.calls_to("chat.postMessage") if c.body.get("channel") == "C0CS" and "moved" in str(c.body)
        ]

    drive(dispatcher, clock, lambda: len(tries()) >= 1)
    for _ in range(10):  # ten minutes later, a wrong retry would have happened
        clock.advance(60)
        dispatcher.drain()
    assert len(tries()) == 1  # permanent: tried once, never again
    admin_help = slack.command("help", user="U0ADMIN").json
    assert "channel_not_found" in admin_help["text"] and "C0CS" in admin_help["text"]
    member_help = slack.command("help", user="U0CAROL").json
    assert "channel_not_found" not in member_help["text"]


def test_socket_mode_requests_reach_the_same_listeners(slack: SlackDriver) -> None:
    from slack_bolt import BoltRequest

    from tests.fakes.slack_requests import TEAM

    bolt = slack.running.slack_app
    assert bolt is not None
    body = {
        "team_id": TEAM,
        "user_id": "U0ADMIN",
        "command": "/stage",
        "text": "add Eta",
        "trigger_id": "socket-1",
        "response_url": slack.fake.response_url("sock"),
        "channel_id": "C0ANY",
    }
    resp = bolt.dispatch(BoltRequest(body=body, mode="socket_mode"))
    assert resp.status == 200 and "Added Eta" in resp.body
    # No HTTP server bound a request id: each Socket Mode request gets one of its own, stored with
    # the notifications it caused.
    first = correlation_ids(slack)
    body.update(text="add Iota", trigger_id="socket-2")
    assert "Added Iota" in bolt.dispatch(BoltRequest(body=body, mode="socket_mode")).body
    second = correlation_ids(slack) - first
    assert len(first) == len(second) == 1
    assert all(cid is not None and len(cid) == 16 for cid in first | second)


def correlation_ids(slack: SlackDriver) -> set[str | None]:
    from sqlalchemy import select

    from lifecycle.db.models import OutboxRow, table

    with slack.running.app.db.reader() as uow:
        return set(uow.conn.execute(select(table(OutboxRow).c.correlation_id)).scalars())


def test_open_handoffs_are_listed_with_a_take_ownership_button_that_works(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command('add "Theta" --stage SQL', user="U0ADMIN")
    slack.command("move Theta P0 signed directly", user="U0ALICE")
    reply = slack.command("handoffs", user="U0CAROL")
    assert reply.status == 200 and "Theta" in reply.json["text"]
    value = buttons(reply.json)["stagebot:claim"]
    slack.press(value, "stagebot:claim", user="U0CAROL")
    answer = fake.wait_for("response_url", 1)[-1]
    assert "You now own Theta" in answer.body["text"]
    assert (
        "slack:U0CAROL" in ephemeral_text(slack.command("show Theta")) or "@U0CAROL" in slack.command("show Theta").body
    )
    assert "No handoffs" in ephemeral_text(slack.command("handoffs", user="U0CAROL"))
    event = {"type": "app_home_opened", "user": "U0CAROL", "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    slack.event(event)
    home = fake.wait_for("views.publish", 1)[-1]
    assert "Theta" in json.dumps(home.body["view"])  # Carol owns it now


def test_the_console_posts_to_slack_too_when_slack_is_enabled(
    tmp_path: Any, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import textwrap

    from bot.cli import main
    from tests.adapters.slack.conftest import CONFIG
    from tests.fakes.slack_requests import SECRET

    cfg = tmp_path / "console.toml"
    cfg.write_text(textwrap.dedent(CONFIG).format(db=tmp_path / "c.db", api=fake.base_url))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    out = io.StringIO()
    code = main(
        ["console", "--config", str(cfg)], stdin=io.StringIO('add "Iota" --stage P3\nmove Iota P4\n'), stdout=out
    )
    assert code == 0
    assert "[#cs] Iota moved P3 Go-Live" in out.getvalue()
    posted = fake.wait_for("chat.postMessage", 1)
    assert any(c.body.get("channel") == "C0CS" and "Iota" in str(c.body.get("text")) for c in posted)


def test_slack_html_escaping_in_command_text_is_undone(slack: SlackDriver) -> None:
    from lifecycle.domain import commands as c
    from lifecycle.domain.access import Actor

    # Slack sends what people type as &amp; &lt; &gt;, while real mentions stay <@U…>.
    reply = ephemeral_text(slack.command("add AT&amp;T &lt;EMEA&gt; --owner <@U0ALICE|alice>"))
    assert "AT&amp;T &lt;EMEA&gt;" in reply and "&amp;amp;" not in reply  # escaped once, for display
    card = slack.running.app.core.ask(c.ShowAccount(actor=Actor("slack", "U0ADMIN"), account="AT&T"))
    assert card.account.name == "AT&T <EMEA>" and card.account.owner == "slack:U0ALICE"  # type: ignore[union-attr]


def test_the_report_is_answered_as_a_table(slack: SlackDriver) -> None:
    slack.command('add "Rep Co" --stage SQL --amount 10k', user="U0ADMIN")
    text = ephemeral_text(slack.command("report", user="U0ADMIN"))
    assert "Report · all time" in text and "Bottleneck: SQL" in text and "Weighted total 2,000" in text
    zh = slack.command("报表 --team sales", user="U0ADMIN").json
    assert "```" in json.dumps(zh["blocks"], ensure_ascii=False)
    bad = ephemeral_text(slack.command("report --since yesterday", user="U0ADMIN"))
    assert "is not a date" in bad


def test_the_report_chart_is_shared_in_the_channel_it_was_asked_in(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command('add "Rep Co" --stage SQL --amount 10k', user="U0ADMIN")
    assert "Bottleneck: SQL" in ephemeral_text(slack.command("report", user="U0ALICE"))
    fake.wait_for("files.completeUploadExternal", 1)
    (upload,) = fake.uploads
    assert upload.channel == "C0ANY" and upload.title == "stagebot report"
    assert upload.data[:8] == b"\x89PNG\r\n\x1a\n" and upload.filename.endswith(".png")
    assert upload.initial_comment == "Report asked for by <@U0ALICE>"


def test_where_the_chart_cannot_be_posted_the_asker_is_told_how_to_fix_it(slack: SlackDriver, fake: FakeSlack) -> None:
    fake.fail_channel("C0ANY", "not_in_channel")
    assert "Report" in ephemeral_text(slack.command("report", user="U0ALICE"))
    (said,) = fake.wait_for("response_url", 1)
    assert "invite me first" in said.body["text"] and said.body["response_type"] == "ephemeral"
    assert not fake.uploads


def test_app_home_shows_the_figures_of_the_viewers_team(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command('add "Rep Co" --stage SQL --amount 10k', user="U0ADMIN")
    event = {"type": "app_home_opened", "user": "U0ALICE", "channel": "D0X", "tab": "home", "event_ts": "1.0"}
    assert slack.event(event, event_id="EvHome1").status == 200
    view = json.dumps(fake.wait_for("views.publish", 1)[0].body["view"])
    assert "Team figures" in view and "team sales" in view and "Bottleneck: SQL" in view
