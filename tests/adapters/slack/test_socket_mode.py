"""stagebot's bolt App over Socket Mode, connected the way `stagebot serve` connects it, to a fake
Socket Mode server: envelopes keep being acknowledged within Slack's 3 s while Slack refreshes
the connection (``disconnect`` / ``refresh_requested``, which it does routinely)."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select

from adapters.slack.socket_mode import SocketMode
from bot.config import load_settings
from bot.serve import Running, connect_socket_mode, start
from lifecycle.db.models import Account, StageChange, table
from lifecycle.delivery.outbox import RetryPolicy
from tests.adapters.slack.conftest import CONFIG
from tests.adapters.slack.test_app import wait_posts
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET
from tests.fakes.slack_socket_mode import APP_TOKEN, Envelope, FakeSocketMode

SLACK_ACK_DEADLINE = 3.0  # Slack's limit; a command not acknowledged by then fails for the user


@pytest.fixture
def socket() -> Iterator[FakeSocketMode]:
    with FakeSocketMode(close_after=10) as f:
        yield f


@pytest.fixture
def running(tmp_path: Path, fake: FakeSlack, socket: FakeSocketMode) -> Iterator[Running]:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(textwrap.dedent(CONFIG).format(db=tmp_path / "stagebot.db", api=fake.base_url))
    settings = load_settings(str(cfg), {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET})
    running = start(settings, workers=8)
    running.app.dispatcher.policy = RetryPolicy(base_seconds=0.05, max_seconds=0.5)
    try:
        running.closers.append(connect_socket_mode(running.slack_app, APP_TOKEN, api_url=socket.base_url, workers=8))
        socket.wait_for_connections(1)  # the client's handshake can finish before the server's does
        yield running
    finally:
        running.stop()


def ack_text(socket: FakeSocketMode, envelope: Envelope) -> str:
    ack = socket.wait_for_ack(envelope, timeout=10)
    assert ack.payload is not None, ack
    return str(ack.payload["text"])


def stage_changes_to(running: Running, account: str, stage: str) -> int:
    accounts, changes = table(Account), table(StageChange)
    with running.app.db.reader() as uow:
        query = (
            select(func.count())
            .select_from(changes.join(accounts, changes.c.account_id == accounts.c.id))
            .where(accounts.c.name == account, changes.c.to_stage == stage)
        )
        return int(uow.conn.execute(query).scalar_one())


def test_envelopes_are_acknowledged_in_time_across_a_connection_refresh(
    running: Running, fake: FakeSlack, socket: FakeSocketMode
) -> None:
    def command(text: str, **where: Any) -> Envelope:
        return socket.send_command(text, user="U0MARY", response_url=fake.response_url("sock"), **where)

    before = command('add "Acme Corp"')
    assert "Added Acme Corp" in ack_text(socket, before)

    with socket.burst():  # Slack asks for a refresh with these already on their way over the old connection
        old = socket.send_disconnect("refresh_requested")
        on_old = [
            command("move Acme SQL first call held", connection=old),
            socket.send_event({"type": "app_home_opened", "user": "U0MARY", "tab": "home"}, connection=old),
        ]
    new = socket.wait_for_connections(2)[1]
    # Slack routes new envelopes to the new connection as soon as it is open.
    on_new = [command('add "Beta"', connection=new), command('add "Gamma"', connection=new), command("show Acme")]
    envelopes = [before, *on_old, *on_new]
    for envelope in envelopes:
        socket.wait_for_ack(envelope, timeout=10)
    late = {e.payload.get("text", e.type): round(socket.latency(e), 3) for e in envelopes}
    assert all(seconds < SLACK_ACK_DEADLINE for seconds in late.values()), late
    assert all(len(socket.acks_of(e)) == 1 for e in envelopes)

    # Each command was applied once and answered in its ack; the move reached the owner channel.
    assert "SQL" in ack_text(socket, on_old[0])
    assert "Added Beta" in ack_text(socket, on_new[0]) and "Added Gamma" in ack_text(socket, on_new[1])
    assert "Acme Corp" in ack_text(socket, on_new[2])
    assert stage_changes_to(running, "Acme Corp", "SQL") == 1
    moved = wait_posts(fake, "C0SALES", lambda ts: any("moved" in t for t in ts))
    assert sum("Acme Corp" in t and "moved" in t for t in moved) == 1

    # The refreshed link keeps working after the old connection is gone.
    socket.wait_until_closed(old, timeout=15)
    after = command("show Beta")
    assert "Beta" in ack_text(socket, after)
    assert socket.latency(after) < SLACK_ACK_DEADLINE
    assert len(socket.open_connections()) == 1


def test_a_second_refresh_and_a_warning_are_survived_too(
    running: Running, fake: FakeSlack, socket: FakeSocketMode
) -> None:
    def command(text: str) -> Envelope:
        return socket.send_command(text, user="U0MARY", response_url=fake.response_url("sock"))

    for round_, reason in enumerate(["refresh_requested", "warning", "refresh_requested"], start=2):
        socket.send_disconnect(reason)
        socket.wait_for_connections(round_)
        envelope = command(f'add "Round {round_}"')
        assert f"Added Round {round_}" in ack_text(socket, envelope)
        assert socket.latency(envelope) < SLACK_ACK_DEADLINE
    time.sleep(0.2)  # let the client retire the connections it replaced
    assert [c.id for c in socket.open_connections()] == [4]


def bare_app(listener: Any) -> App:
    """A plain bolt App (no auth.test) with one /stage listener: for what the link itself does."""
    app = App(
        client=WebClient(base_url="http://127.0.0.1:9/api/"),
        authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id="T0TEAM", bot_token="xoxb-test"),
        request_verification_enabled=False,
    )
    app.command("/stage")(listener)
    return app


def test_closing_answers_the_envelopes_already_taken(socket: FakeSocketMode) -> None:
    started = threading.Event()

    def slow(ack: Any, command: dict[str, Any]) -> None:
        started.set()
        time.sleep(0.5)
        ack(f"done: {command['text']}")

    link = SocketMode(bare_app(slow), APP_TOKEN, api_url=socket.base_url, workers=2)
    link.connect()
    try:
        socket.wait_for_connections(1)
        envelope = socket.send_command("slow one", user="U0MARY", response_url="http://127.0.0.1:9/r")
        assert started.wait(5)
    finally:
        link.close()
    assert socket.wait_for_ack(envelope, timeout=1).payload == {"text": "done: slow one"}
    [conn] = socket.connections
    socket.wait_until_closed(conn, timeout=5)
    assert conn.closed_by == "client"


def test_a_refused_app_token_fails_the_start_and_leaves_nothing_running(socket: FakeSocketMode) -> None:
    link = SocketMode(bare_app(lambda ack: ack()), "xapp-1-revoked", api_url=socket.base_url)
    with pytest.raises(SlackApiError) as raised:
        link.connect(timeout=10)
    assert raised.value.response["error"] == "invalid_auth"
    assert socket.connections == []
    assert not any(t.name == "slack-socket-loop" and t.is_alive() for t in threading.enumerate())
