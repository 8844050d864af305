"""What the engineer on call sees of a running stagebot: /metrics, and request ids that tie a
slash command to the notifications it caused."""

from __future__ import annotations

from sqlalchemy import select

from bot.metrics import sample
from lifecycle.db.models import OutboxRow, table
from tests.adapters.slack.conftest import SlackDriver
from tests.clocks import drive, take_over
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, signed_headers, slash_command


def scrape(slack: SlackDriver) -> str:
    reply = slack.request("GET", "/metrics", "", {})
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
    return reply.body


def test_metrics_count_commands_transitions_deliveries_and_requests(slack: SlackDriver, fake: FakeSlack) -> None:
    slack.command("add Metro --stage P1", user="U0ADMIN")
    slack.command("move Metro P2", user="U0ADMIN")
    slack.command("move Metro P9", user="U0ADMIN")  # refused: no such stage
    slack.command("show Metro", user="U0ADMIN")
    fake.fail("chat.postMessage", status=500, error="internal_error", times=1)
    # Retried after its backoff, then paced at one post a second: on a clock the test moves.
    dispatcher, clock = take_over(slack.running)
    drive(dispatcher, clock, lambda: dispatcher.pending() == 0)
    text = scrape(slack)

    def commands(result: str) -> float | None:
        return sample(text, "stagebot_commands_total", platform="slack", kind="command", result=result)

    assert (commands("applied"), commands("refused"), commands("read")) == (2.0, 1.0, 1.0)
    assert sample(text, "stagebot_transitions_total", stage="P2", platform="slack") == 1.0
    assert sample(text, "stagebot_transitions_total", stage="P1", platform="slack") == 1.0  # created there
    assert (sample(text, "stagebot_deliveries_total", platform="slack", result="delivered", code="") or 0) >= 1
    assert sample(text, "stagebot_deliveries_total", platform="slack", result="retry", code="internal_error") == 1.0
    assert sample(text, "stagebot_http_requests_total", route="/slack/events", status="200") == 4.0
    assert sample(text, "stagebot_database_up") == 1.0
    assert sample(text, "stagebot_outbox_pending", target="slack") is None  # all delivered


def test_unknown_paths_share_one_metrics_label(slack: SlackDriver) -> None:
    for path in ("/wp-login.php", "/.env", "/admin"):
        assert slack.request("GET", path, "", {}).status == 404
    text = scrape(slack)
    assert sample(text, "stagebot_http_requests_total", route="unmatched", status="404") == 3.0
    assert "wp-login" not in text


def test_a_request_id_is_echoed_and_stored_with_the_notifications_it_caused(slack: SlackDriver) -> None:
    body = slash_command("add Traced --stage P1", user="U0ADMIN", response_url=slack.fake.response_url("c"))
    headers = {**signed_headers(body, content_type=FORM), "x-request-id": "lb-7f3a9c"}
    reply = slack.request("POST", "/slack/events", body, headers)
    assert reply.status == 200 and reply.headers["X-Request-Id"] == "lb-7f3a9c"
    with slack.running.app.db.reader() as uow:
        ids = {r for (r,) in uow.conn.execute(select(table(OutboxRow).c.correlation_id))}
    assert ids == {"lb-7f3a9c"}
    # A hostile id is not trusted (nor logged): a fresh one is made instead.
    headers = {**signed_headers(body, content_type=FORM), "x-request-id": "x\r\nSet-Cookie: a=b"}
    fresh = slack.request("POST", "/slack/events", body, headers).headers["X-Request-Id"]
    assert len(fresh) == 16 and fresh.isalnum()
