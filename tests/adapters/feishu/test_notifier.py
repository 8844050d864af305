"""Notifications to Feishu group chats through the outbox, against a fake Open API that misbehaves:
rate limits, server errors, a 502 page, a revoked token, a chat the bot has left, a refused card."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.feishu.notifier import FeishuNotifier
from lifecycle.delivery.outbox import Delivery
from lifecycle.domain import events as ev
from tests.adapters.feishu.conftest import FeishuDriver, card_texts
from tests.adapters.feishu.test_app import answer
from tests.clocks import drive, take_over
from tests.fakes.feishu_api import (
    BAD_GATEWAY,
    BOT_NOT_IN_CHAT,
    CHAT_RATE,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeFeishu,
    Scripted,
)


def moved_cards(fake: FakeFeishu, chat: str) -> list[str]:
    return [
        card_texts(m.content)
        for m in fake.messages
        if m.receive_id == chat and m.reply_to is None and "moved" in card_texts(m.content)
    ]


def test_rate_limits_and_server_errors_delay_but_never_lose_or_repeat(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    # Paced and retried on a clock the test moves (it waited ~8.6 s of real time before).
    dispatcher, clock = take_over(feishu.running)
    names = ["Acct A", "Acct B", "Acct C"]
    for n in names:
        answer(feishu, f'add "{n}" --stage P2')
    feishu.drain()
    fake.script("create", RATE_LIMITED, CHAT_RATE, SERVER_ERROR, BAD_GATEWAY, RATE_LIMITED, SERVER_ERROR)
    for target in ("P3", "P4"):
        for n in names:
            assert "→" in answer(feishu, f'move "{n}" {target}')
    sent_at: list[float] = []  # the simulated time by which each create call had been made

    def note() -> None:
        sent_at.extend([clock()] * (len(fake.calls_of("create")) - len(sent_at)))

    note()
    # P3 and P4 belong to CS alone: six stage changes, each to arrive in oc_cs exactly once.
    drive(dispatcher, clock, lambda: len(moved_cards(fake, "oc_cs")) >= 6, each_round=note)
    clock.advance(5.0)  # room for a (wrong) late repeat
    dispatcher.drain()
    moved = moved_cards(fake, "oc_cs")
    assert len(moved) == 6 and len(set(moved)) == 6
    for n in names:
        mine = [t for t in moved if t.startswith(n)]
        assert len(mine) == 2 and "P3" in mine[0].splitlines()[0] and "P4" in mine[1].splitlines()[0]
    refused = [c for c in fake.calls_of("create") if c.status != 200]
    assert len(refused) == 6  # the faults really happened
    # The gateway limit's reset header (1 s) was honoured: nothing was sent to Feishu until then.
    creates = fake.calls_of("create")
    first_limited = next(i for i, c in enumerate(creates) if c.code == 99991400)
    assert sent_at[first_limited + 1] - sent_at[first_limited] >= 0.9


def test_a_rejected_token_is_refreshed_and_the_message_still_arrives(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, "add Tok --stage P2")
    feishu.drain()
    issued = fake.tokens_issued
    fake.revoke_tokens()
    answer(feishu, "move Tok P3")
    assert fake.wait_for(lambda: len(moved_cards(fake, "oc_cs")) == 1, timeout=30)
    assert fake.tokens_issued > issued


def test_a_chat_the_bot_cannot_post_to_is_tried_once_and_not_retried(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    dispatcher, clock = take_over(feishu.running)
    fake.refuse_chat("oc_cs", BOT_NOT_IN_CHAT)
    answer(feishu, "add Left --stage P3")
    answer(feishu, "move Left P4")

    def tries() -> list[object]:
        return [c for c in fake.calls_of("create") if c.json.get("receive_id") == "oc_cs" and "moved" in str(c.json)]

    drive(dispatcher, clock, lambda: len(tries()) >= 1)
    for _ in range(10):  # ten minutes later, a wrong retry would have happened
        clock.advance(60)
        dispatcher.drain()
    assert len(tries()) == 1


def test_a_card_feishu_refuses_is_sent_as_text(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, "add Plain --stage P3")
    assert fake.wait_for(lambda: len(fake.calls_of("create")) == 1)  # the new account's card to CS
    fake.script("create", Scripted(400, 230099, "Failed to create card content, ErrCode: 11310"))
    answer(feishu, "move Plain P4")
    assert fake.wait_for(lambda: any(m.msg_type == "text" for m in fake.messages))
    text = next(m for m in fake.messages if m.msg_type == "text").content["text"]
    assert "Plain" in text and "P4" in text


def test_a_retried_send_carries_the_same_uuid_so_feishu_posts_once(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    notifier = feishu.running.app.dispatcher.notifiers["feishu"]
    assert isinstance(notifier, FeishuNotifier)
    notifier.pacer.min_interval = 0
    event = ev.StageChanged(
        account_id=1,
        account="Uuid Co",
        at=datetime(2026, 3, 2, tzinfo=UTC),
        actor="feishu:ou_admin",
        audience=("cs",),
        from_stage="P2",
        to_stage="P3",
        transition="advance",
    )
    delivery = Delivery(outbox_id=1, event_id="e-1", target="feishu", attempt=1, event=event)
    first = list(notifier.deliver(delivery))
    # The answer to the first send was "lost": the dispatcher tries again with the same delivery.
    second = list(notifier.deliver(Delivery(outbox_id=1, event_id="e-1", target="feishu", attempt=2, event=event)))
    assert first[0].message_id == second[0].message_id
    assert len([m for m in fake.messages if "Uuid Co" in str(m.content)]) == 1
    assert len({c.json["uuid"] for c in fake.calls_of("create")}) == 1
