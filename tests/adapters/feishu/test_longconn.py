"""The long connection (mode = "websocket"): lark-oapi's real ws.Client against a local fake endpoint
that speaks Feishu's protobuf frames; commands, card callbacks and the liveness watchdog."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.serve import Running
from lifecycle.db.models import OutboxRow, table
from tests.adapters.feishu.conftest import BOT, FeishuDriver, card_buttons, card_texts, start_feishu
from tests.fakes.feishu_api import FakeFeishu, FakeLongConnection
from tests.fakes.feishu_requests import card_action, envelope, text_message


@pytest.fixture
def longconn(tmp_path: Path, fake: FakeFeishu) -> Iterator[tuple[FeishuDriver, FakeLongConnection]]:
    with FakeLongConnection(fake, ping_interval=1) as ws:
        running: Running = start_feishu(tmp_path, fake, mode="websocket", liveness=2)
        try:
            assert ws.wait_connected(1, timeout=15), "the long connection did not connect"
            yield FeishuDriver(running, fake), ws
        finally:
            running.stop()


def over_ws(ws: FakeLongConnection, feishu: FeishuDriver, event_type: str, event: dict, **kw: object) -> dict:
    # Over the long connection the envelope's token is empty and nothing is signed or encrypted.
    ack = ws.send_event(envelope(event_type, event, token="", app_id=feishu.app_id, **kw))  # type: ignore[arg-type]
    assert ack is not None, "no ack"
    return ack


def test_a_command_over_the_long_connection_moves_an_account(
    longconn: tuple[FeishuDriver, FakeLongConnection],
) -> None:
    feishu, ws = longconn
    add, move = f"om_{uuid.uuid4().hex[:12]}", f"om_{uuid.uuid4().hex[:12]}"
    assert (
        over_ws(
            ws, feishu, "im.message.receive_v1", text_message("add Wsco --stage P1", open_id="ou_admin", message_id=add)
        )["code"]
        == 200
    )
    assert "Added Wsco" in card_texts(feishu.wait_reply(add).content)
    event = text_message(
        "@_user_1 move Wsco P2",
        open_id="ou_carol",
        chat_id="oc_cs",
        chat_type="group",
        message_id=move,
        mentions=[(BOT, "stagebot")],
    )
    assert over_ws(ws, feishu, "im.message.receive_v1", event)["code"] == 200
    assert "P2" in card_texts(feishu.wait_reply(move).content)
    texts = lambda: [card_texts(m.content) for m in feishu.to_chat("oc_cs")]  # noqa: E731
    assert feishu.fake.wait_for(lambda: any("moved" in t and "Wsco" in t for t in texts()))
    # No HTTP request carried an id: each event got one of its own, stored with what it caused.
    t = table(OutboxRow)
    with feishu.running.app.db.reader() as uow:
        ids = {(kind, cid) for kind, cid in uow.conn.execute(select(t.c.kind, t.c.correlation_id))}
    by_kind = {kind: cid for kind, cid in ids}
    assert len(ids) == len(by_kind)  # one id per kind: AccountAdded and StageChanged
    assert all(cid is not None and len(cid) == 16 for cid in by_kind.values())
    assert by_kind["AccountAdded"] != by_kind["StageChanged"]


def test_a_card_callback_over_the_long_connection_is_answered_in_the_ack(
    longconn: tuple[FeishuDriver, FakeLongConnection],
) -> None:
    feishu, ws = longconn
    for text, who in (("add Cardco --stage PQL", "ou_admin"), ("move Cardco P0", "ou_alice")):
        mid = f"om_{uuid.uuid4().hex[:12]}"
        over_ws(ws, feishu, "im.message.receive_v1", text_message(text, open_id=who, message_id=mid))
        feishu.wait_reply(mid)
    assert feishu.fake.wait_for(lambda: any(card_buttons(m.content) for m in feishu.to_chat("oc_sales")))
    card = next(m for m in feishu.to_chat("oc_sales") if card_buttons(m.content))
    value = card_buttons(card.content)[0]["behaviors"][0]["value"]
    ack = over_ws(
        ws, feishu, "card.action.trigger", card_action(value, open_id="ou_boss", open_message_id=card.message_id)
    )
    assert ack["code"] == 200 and ack["data"]["toast"]["type"] == "success"
    assert "Approved by @ou_boss" in card_texts(ack["data"]["card"]["data"])


@pytest.mark.slow  # real-time watchdog and lark reconnect: ~12 s
def test_the_watchdog_reconnects_a_connection_that_went_silent(
    longconn: tuple[FeishuDriver, FakeLongConnection],
) -> None:
    feishu, ws = longconn
    before = ws.endpoint_calls
    ws.go_silent()  # half-open: no pongs, no frames, no close
    ws.resume()  # new connections behave again
    assert ws.wait_connected(2, timeout=30), "no reconnect after the connection went silent"
    assert ws.endpoint_calls > before
    assert feishu.running.feishu_longconn.forced_reconnects >= 1
    mid = f"om_{uuid.uuid4().hex[:12]}"
    assert (
        over_ws(ws, feishu, "im.message.receive_v1", text_message("list", open_id="ou_admin", message_id=mid))["code"]
        == 200
    )
    feishu.wait_reply(mid)
