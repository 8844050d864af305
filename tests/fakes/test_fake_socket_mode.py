"""The fake Socket Mode server, driven by slack_sdk's WebClient and a plain WebSocket client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.fakes.slack_socket_mode import APP_TOKEN, FakeSocketMode


@pytest.fixture
def fake() -> Iterator[FakeSocketMode]:
    with FakeSocketMode(close_after=0.5) as f:
        yield f


def open_url(fake: FakeSocketMode) -> str:
    url: str = WebClient(base_url=fake.base_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    return url


def receive(ws: Connection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return message


@pytest.mark.parametrize(
    ("token", "error"),
    [(None, "not_authed"), ("xoxb-bot", "not_allowed_token_type"), ("xapp-1-other", "invalid_auth")],
)
def test_apps_connections_open_wants_this_apps_token(fake: FakeSocketMode, token: str | None, error: str) -> None:
    client = WebClient(base_url=fake.base_url)
    with pytest.raises(SlackApiError) as raised:
        client.api_call("apps.connections.open", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert raised.value.response["error"] == error
    assert fake.opens == 0


def test_hello_then_envelopes_and_acks_are_recorded(fake: FakeSocketMode) -> None:
    url = open_url(fake)
    assert url.startswith(f"ws://127.0.0.1:{fake.ws_port}/link/?ticket=")
    with connect(url) as ws:
        hello = receive(ws)
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": "A0APP"}
        [conn] = fake.wait_for_connections(1)

        command = fake.send_command("move acme P1", user="U0ALICE", response_url="http://x/commands/1")
        got = receive(ws)
        assert got["type"] == "slash_commands" and got["accepts_response_payload"] is True
        assert got["envelope_id"] == command.envelope_id
        assert got["payload"]["command"] == "/stage" and got["payload"]["text"] == "move acme P1"
        assert got["payload"]["user_id"] == "U0ALICE" and got["payload"]["team_id"] == "T0TEAM"

        press = fake.send_action(user="U0BOSS", action_id="approve", value="{}", response_url="http://x/actions/1")
        got = receive(ws)
        assert (got["type"], got["payload"]["type"]) == ("interactive", "block_actions")
        assert got["payload"]["actions"][0]["action_id"] == "approve"

        event = fake.send_event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
        got = receive(ws)
        assert (got["type"], got["payload"]["type"], got["retry_attempt"]) == ("events_api", "event_callback", 0)

        ws.send(json.dumps({"envelope_id": command.envelope_id, "payload": {"text": "done"}}))
        ws.send(json.dumps({"envelope_id": press.envelope_id}))
        ack = fake.wait_for_ack(command)
        assert (ack.connection, ack.payload) == (conn.id, {"text": "done"})
        assert fake.wait_for_ack(press).payload is None
        assert 0 <= fake.latency(command) < 5
        assert fake.acks_of(event) == []


def test_a_ticket_opens_one_connection(fake: FakeSocketMode) -> None:
    url = open_url(fake)
    with connect(url) as ws:
        receive(ws)
        with pytest.raises(InvalidStatus) as raised:
            connect(url)
        assert raised.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(url.replace("ticket=", "ticket=forged"))
    assert len(fake.connections) == 1


def test_refresh_requested_leaves_the_old_connection_open_until_close_after(fake: FakeSocketMode) -> None:
    with connect(open_url(fake)) as old:
        receive(old)
        fake.send_disconnect("refresh_requested")
        assert receive(old) == {
            "type": "disconnect",
            "reason": "refresh_requested",
            "debug_info": {"host": "applink-fake-1"},
        }
        with connect(open_url(fake)) as new:
            assert receive(new)["num_connections"] == 2
            first, second = fake.wait_for_connections(2)
            assert first.open and first.disconnects_sent == ["refresh_requested"]
            # Slack still delivers on the old connection until it is closed, and takes acks on either.
            late = fake.send_command("on the old one", user="U0ALICE", response_url="http://x/r", connection=first)
            assert receive(old)["envelope_id"] == late.envelope_id
            new.send(json.dumps({"envelope_id": late.envelope_id}))
            assert fake.wait_for_ack(late).connection == second.id
            assert fake.send_command("on the new one", user="U0ALICE", response_url="http://x/r").connection == 2
            fake.wait_until_closed(first, timeout=5)
            assert (first.closed_by, first.close_code) == ("server", 1001)
            assert second.open


@pytest.mark.parametrize("reason", ["warning", "link_disabled"])
def test_other_disconnect_reasons_are_sent_as_is(fake: FakeSocketMode, reason: str) -> None:
    with connect(open_url(fake)) as ws:
        receive(ws)
        conn = fake.send_disconnect(reason, close_after=60)
        assert receive(ws)["reason"] == reason
        assert conn.open
    fake.wait_until_closed(conn)
    assert conn.closed_by == "client"


def test_a_burst_is_written_back_to_back(fake: FakeSocketMode) -> None:
    with connect(open_url(fake)) as ws:
        receive(ws)
        with fake.burst():
            conn = fake.send_disconnect("refresh_requested", close_after=60)
            envelope = fake.send_event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
            assert conn.disconnects_sent == [] and fake.envelopes == []  # nothing written yet
        assert receive(ws)["type"] == "disconnect"
        assert receive(ws)["envelope_id"] == envelope.envelope_id
        assert fake.envelopes == [envelope] and envelope.sent_at <= time.monotonic()
