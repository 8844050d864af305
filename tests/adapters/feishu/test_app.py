"""The real lark-oapi dispatcher behind stagebot's WSGI entry point, with really encrypted and signed
requests and the real lark-oapi client talking to a fake Feishu Open API: commands, card buttons,
bad input, dedupe."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pytest

from tests.adapters.feishu.conftest import (
    BOT,
    ENCRYPT_KEY,
    VERIFICATION_TOKEN,
    FeishuDriver,
    card_buttons,
    card_texts,
)
from tests.fakes.feishu_api import FakeFeishu, Scripted
from tests.fakes.feishu_requests import envelope, post_message, signed, text_message, url_verification


def mid() -> str:
    return f"om_{uuid.uuid4().hex[:16]}"


def answer(feishu: FeishuDriver, text: str, *, open_id: str = "ou_admin", **kw: Any) -> str:
    """Say `text` to the bot and return the English text of the card it replies with."""
    message_id = kw.pop("message_id", None) or mid()
    reply = feishu.say(text, open_id=open_id, message_id=message_id, **kw)
    assert reply.status == 200, reply.body
    return card_texts(feishu.wait_reply(message_id).content)


def wait_chat(feishu: FeishuDriver, chat: str, predicate: Any, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = [card_texts(m.content) for m in feishu.to_chat(chat) if m.msg_type == "interactive"]
        if predicate(texts):
            return texts
        time.sleep(0.05)
    raise AssertionError(f"{chat} got {[m.content for m in feishu.to_chat(chat)]}")


def test_url_verification_is_answered_with_the_challenge(feishu: FeishuDriver) -> None:
    reply = feishu.send(url_verification("c-123", VERIFICATION_TOKEN))
    assert reply.status == 200 and reply.json == {"challenge": "c-123"}
    assert feishu.send(url_verification("c-123", "wrong")).status == 401


def test_a_direct_message_moves_an_account_and_the_owner_chat_gets_a_card(feishu: FeishuDriver) -> None:
    assert "Added Acme Corp" in answer(feishu, 'add "Acme Corp" --amount 50k', open_id="ou_mary")
    started = time.monotonic()
    said = answer(feishu, "move Acme SQL first call held", open_id="ou_mary")
    assert time.monotonic() - started < 3
    assert "Acme Corp" in said and "SQL" in said
    texts = wait_chat(feishu, "oc_sales", lambda ts: any("moved" in t for t in ts))
    moved = next(t for t in texts if "moved" in t)
    assert "Acme Corp" in moved and "MQL" in moved and "SQL" in moved and "first call held" in moved
    card = next(m for m in feishu.to_chat("oc_sales") if "moved" in card_texts(m.content)).content
    assert card["schema"] == "2.0" and card["config"]["update_multi"] is True
    zh = card_texts(card, "zh_cn")
    mql, sql = (feishu.running.app.core.pipeline.stage(k).zh for k in ("MQL", "SQL"))
    assert "Acme Corp" in zh and f"{mql} → " in zh and sql in zh  # the Chinese stage labels


def test_an_at_mention_in_a_group_moves_an_account(feishu: FeishuDriver) -> None:
    answer(feishu, "add Globex --stage P1", open_id="ou_admin")
    message_id = mid()
    reply = feishu.say(
        "@_user_1 move Globex P2 first test sent",
        open_id="ou_carol",
        chat_id="oc_cs",
        chat_type="group",
        message_id=message_id,
        mentions=[(BOT, "stagebot")],
    )
    assert reply.status == 200
    got = feishu.wait_reply(message_id)
    assert got.reply_in_thread is True  # in a group the answer goes to the person's thread
    assert "Globex" in card_texts(got.content) and "P2" in card_texts(got.content)
    texts = wait_chat(feishu, "oc_cs", lambda ts: any("moved" in t and "Globex" in t for t in ts))
    assert any("P1" in t and "P2" in t for t in texts)


def test_group_messages_that_do_not_mention_the_bot_are_left_alone(feishu: FeishuDriver) -> None:
    message_id = mid()
    feishu.say("@_user_1 list", chat_id="oc_cs", chat_type="group", message_id=message_id, mentions=[("ou_bob", "Bob")])
    time.sleep(0.5)
    assert feishu.replies_to(message_id) == []


def test_a_rich_text_message_is_a_command_too(feishu: FeishuDriver) -> None:
    message_id = mid()
    event = post_message(
        [[{"tag": "at", "user_id": "@_user_1", "user_name": "stagebot"}, " add Initech ", "--amount 5万"]],
        open_id="ou_admin",
        chat_id="oc_sales",
        chat_type="group",
        message_id=message_id,
        mentions=[(BOT, "stagebot")],
        locale="zh_cn",
    )
    assert feishu.event("im.message.receive_v1", event).status == 200
    assert "Added Initech" in card_texts(feishu.wait_reply(message_id).content)


def test_mentions_of_people_become_people_in_the_command(feishu: FeishuDriver) -> None:
    answer(feishu, "add Hooli --stage SQL")
    said = answer(
        feishu,
        "@_user_1 assign Hooli @_user_2",
        chat_id="oc_sales",
        chat_type="group",
        mentions=[(BOT, "stagebot"), ("ou_alice", "Alice")],
    )
    assert "owned by @ou_alice" in said


def stage_of(feishu: FeishuDriver, account: str) -> str:
    from lifecycle.domain import commands as c
    from lifecycle.domain.access import Actor

    card = feishu.running.app.core.ask(c.ShowAccount(actor=Actor("feishu", "ou_admin"), account=account))
    return str(card.account.stage)  # type: ignore[union-attr]


def test_text_before_the_bots_mention_is_not_the_command(feishu: FeishuDriver) -> None:
    answer(feishu, "add Gamma")
    said = answer(
        feishu,
        "@_user_1 FYI @_user_2 move Gamma SQL first call held",
        open_id="ou_mary",
        chat_id="oc_marketing",
        chat_type="group",
        mentions=[("ou_dora", "Dora"), (BOT, "stagebot")],
    )
    assert "Gamma" in said and "SQL" in said and "Unknown command" not in said
    assert stage_of(feishu, "Gamma") == "SQL"


def test_rich_text_before_the_bots_mention_is_not_the_command(feishu: FeishuDriver) -> None:
    answer(feishu, "add Gamma")
    message_id = mid()
    event = post_message(
        [["Team, ", {"tag": "at", "user_id": "@_user_1", "user_name": "stagebot"}, " move Gamma SQL call held"]],
        open_id="ou_mary",
        chat_id="oc_marketing",
        chat_type="group",
        message_id=message_id,
        mentions=[(BOT, "stagebot")],
        locale="zh_cn",
    )
    assert feishu.event("im.message.receive_v1", event).status == 200
    said = card_texts(feishu.wait_reply(message_id).content)
    assert "Gamma" in said and "Unknown command" not in said
    assert stage_of(feishu, "Gamma") == "SQL"


def test_people_mentioned_after_the_bot_stay_arguments_even_with_text_before_it(feishu: FeishuDriver) -> None:
    answer(feishu, "add Hooli --stage SQL")
    said = answer(
        feishu,
        "Hi @_user_1, @_user_2 assign Hooli @_user_3",
        chat_id="oc_sales",
        chat_type="group",
        mentions=[("ou_dora", "Dora"), (BOT, "stagebot"), ("ou_alice", "Alice")],
    )
    assert "owned by @ou_alice" in said


def test_an_unknown_command_never_echoes_a_raw_open_id(feishu: FeishuDriver) -> None:
    said = answer(
        feishu,
        "@_user_1 @_user_2 please look",
        chat_id="oc_sales",
        chat_type="group",
        mentions=[(BOT, "stagebot"), ("ou_dora", "Dora Li")],
    )
    assert 'Unknown command "@DoraLi"' in said and "ou_dora" not in said
    said = answer(feishu, "@_user_1 hello", mentions=[("ou_bob", "")])  # a direct message, a nameless mention
    assert 'Unknown command "@someone"' in said and "ou_bob" not in said


def approval_card(feishu: FeishuDriver) -> tuple[str, dict[str, Any]]:
    wait_chat(feishu, "oc_sales", lambda ts: any("Approval #" in t for t in ts))
    msg = next(m for m in feishu.to_chat("oc_sales") if card_buttons(m.content))
    return msg.message_id, msg.content


def test_the_approval_flow_by_card_buttons(feishu: FeishuDriver) -> None:
    answer(feishu, 'add "Beta" --stage PQL --amount 20k')
    assert "needs approval" in answer(feishu, "move Beta P0 trial went well", open_id="ou_alice")
    message_id, card = approval_card(feishu)
    approve, reject = card_buttons(card)
    assert approve["type"] == "primary" and reject["type"] == "danger" and "confirm" in reject
    approve_value = approve["behaviors"][0]["value"]
    assert isinstance(approve_value, dict) and approve_value["op"] == "approve"  # an object, not a string
    assert approve["text"]["i18n_content"]["zh_cn"] == "批准"

    # A sales member who is not an approver is refused with an error toast; nothing changes.
    refused = feishu.press(approve_value, open_id="ou_alice", open_message_id=message_id)
    assert refused.status == 200
    assert refused.json["toast"]["type"] == "error" and "Only Sales approvers" in refused.json["toast"]["i18n"]["en_us"]
    assert "card" not in refused.json
    assert "PQL" in answer(feishu, "show Beta")

    # The approver's press: answered within the callback, with a toast and the decided card.
    started = time.monotonic()
    done = feishu.press(approve_value, open_id="ou_boss", open_message_id=message_id)
    took = time.monotonic() - started
    assert took < 1.5, f"the callback took {took:.2f}s; Feishu gives up at 3 s"
    assert done.status == 200 and done.json["toast"]["type"] == "success"
    new_card = done.json["card"]
    assert new_card["type"] == "raw" and card_buttons(new_card["data"]) == []
    assert "Approved by @ou_boss" in card_texts(new_card["data"])
    assert "Stage: P0 Signed" in answer(feishu, "show Beta")

    # The posted card is also updated in place (PATCH) for everyone, by the outbox.
    assert feishu.fake.wait_for(lambda: any(p[0] == message_id for p in feishu.fake.patches))
    patched = next(c for m, c in feishu.fake.patches if m == message_id)
    assert "Approved by @ou_boss" in card_texts(patched) and card_buttons(patched) == []

    # A second press (double click, or another approver) is answered "already decided".
    again = feishu.press(reject["behaviors"][0]["value"], open_id="ou_boss", open_message_id=message_id)
    assert again.status == 200 and "already decided by feishu:ou_boss" in again.json["toast"]["i18n"]["en_us"]
    assert "Stage: P0 Signed" in answer(feishu, "show Beta")


def test_a_redelivered_button_press_is_answered_again_but_applied_once(feishu: FeishuDriver) -> None:
    answer(feishu, 'add "Gamma" --stage PQL')
    answer(feishu, "move Gamma P0", open_id="ou_alice")
    message_id, card = approval_card(feishu)
    value = card_buttons(card)[1]["behaviors"][0]["value"]  # reject
    first = feishu.press(value, open_id="ou_boss", open_message_id=message_id, event_id="ev-press-1")
    second = feishu.press(value, open_id="ou_boss", open_message_id=message_id, event_id="ev-press-1")
    assert first.json["toast"]["type"] == "success" and second.json["toast"]["type"] == "info"
    assert "nothing changed" in second.json["toast"]["i18n"]["en_us"]
    history = answer(feishu, "history Gamma")
    assert history.count("PQL → SQL") + history.count("PQL Product-qualified → SQL") <= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", 'Unknown command "frobnicate"'),
        ("move Nobody P2", 'No account named "Nobody"'),
        ("move Delta P4", "From MQL you can move to: SQL Opportunity"),
        ("x" * 3000, "too long to be a command"),
        ('move "Delta', "quote is not closed"),
        ("/stage show Delta", "Delta (#"),
        ("report", "Bottleneck"),
    ],
)
def test_bad_input_gets_a_clear_answer(feishu: FeishuDriver, text: str, expected: str) -> None:
    answer(feishu, "add Delta")
    said = answer(feishu, text)
    assert expected in said
    assert "Traceback" not in said


def test_a_message_with_only_a_mention_gets_help(feishu: FeishuDriver) -> None:
    said = answer(feishu, "@_user_1", chat_id="oc_cs", chat_type="group", mentions=[(BOT, "stagebot")])
    assert "Type a command after mentioning me" in said and "move" in said


def test_unknown_people_are_told_how_to_get_access(feishu: FeishuDriver) -> None:
    said = answer(feishu, "add Stranger Inc", open_id="ou_stranger")
    assert "feishu:ou_stranger" in said and "not in any stagebot team" in said


def test_non_text_messages_get_a_hint(feishu: FeishuDriver) -> None:
    event = text_message("ignored", open_id="ou_admin", message_id=(message_id := mid()))
    event["message"]["message_type"] = "image"
    event["message"]["content"] = json.dumps({"image_key": "img_x"})
    feishu.event("im.message.receive_v1", event)
    assert "text commands only" in card_texts(feishu.wait_reply(message_id).content)


def tampered(feishu: FeishuDriver) -> int:
    body, headers = signed(text_message("list"), encrypt_key=ENCRYPT_KEY)
    headers["X-Lark-Signature"] = "0" * 64
    return feishu.request(body, headers).status


@pytest.mark.parametrize(
    ("case", "status"),
    [("tampered signature", 401), ("stale timestamp", 401), ("wrong token", 401), ("lower-case headers", 200)],
)
def test_request_checks(feishu: FeishuDriver, case: str, status: int) -> None:
    message_id = mid()
    payload = envelope(
        "im.message.receive_v1",
        text_message("list", open_id="ou_admin", message_id=message_id),
        token="wrong" if case == "wrong token" else VERIFICATION_TOKEN,
        app_id=feishu.app_id,
    )
    kw: dict[str, Any] = {}
    if case == "stale timestamp":
        kw["timestamp"] = int(time.time()) - 600
    if case == "lower-case headers":
        kw["lower_case_headers"] = True
    body, headers = signed(payload, encrypt_key=ENCRYPT_KEY, **kw)
    if case == "tampered signature":
        headers["X-Lark-Signature"] = "0" * 64
    reply = feishu.request(body, headers)
    assert reply.status == status, reply.body
    assert b"Traceback" not in reply.body
    if status == 200:
        feishu.wait_reply(message_id)
    else:
        time.sleep(0.2)
        assert feishu.replies_to(message_id) == []


def test_malformed_bodies_are_4xx_never_5xx(feishu: FeishuDriver) -> None:
    assert feishu.request(b"{not json", {"Content-Type": "application/json"}).status == 400
    assert feishu.request(b'{"encrypt": "not base64 at all!"}', {"Content-Type": "application/json"}).status == 400
    assert feishu.request(b'{"encrypt": 5}', {}).status == 400
    assert feishu.request(b"[]", {}).status == 400
    plain, headers = signed(text_message("list"), encrypt_key=ENCRYPT_KEY, encrypt=False)
    assert feishu.request(plain, headers).status == 400  # an Encrypt Key is configured: plain bodies are refused
    # A signed, encrypted envelope whose event is not a message at all.
    reply = feishu.event("im.message.receive_v1", {"message": "nonsense", "sender": 7})
    assert reply.status < 500


def test_an_unsubscribed_event_type_is_acknowledged_not_500(feishu: FeishuDriver) -> None:
    reply = feishu.event("contact.user.created_v3", {"object": {"open_id": "ou_new"}})
    assert reply.status == 200 and "ignored" in reply.json["msg"]


def test_a_string_button_value_gets_an_error_toast(feishu: FeishuDriver) -> None:
    reply = feishu.press('{"v":1,"op":"approve","approval":1}', open_id="ou_boss")
    assert reply.status == 200 and reply.json["toast"]["type"] == "error"
    damaged = feishu.press({"v": 1, "op": "approve", "approval": "x"}, open_id="ou_boss")
    assert damaged.status == 200 and "older message or is damaged" in damaged.json["toast"]["i18n"]["en_us"]
    missing = feishu.press({"v": 1, "op": "approve", "approval": 999}, open_id="ou_boss")
    assert "No approval #999" in missing.json["toast"]["i18n"]["en_us"]


def test_a_replayed_request_is_not_run_twice(feishu: FeishuDriver) -> None:
    answer(feishu, "add Replay --stage P1")
    message_id = mid()
    payload = envelope(
        "im.message.receive_v1",
        text_message("move Replay P2", open_id="ou_admin", message_id=message_id),
        token=VERIFICATION_TOKEN,
        app_id=feishu.app_id,
    )
    body, headers = signed(payload, encrypt_key=ENCRYPT_KEY)
    assert feishu.request(body, headers).status == 200
    assert feishu.request(body, headers).status == 200  # the same bytes, nonce and all
    feishu.wait_reply(message_id)
    time.sleep(0.3)
    assert len(feishu.replies_to(message_id)) == 1


def test_the_same_event_or_message_delivered_twice_is_applied_once(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, "add Dup --stage P1")
    first = mid()
    # The same event_id twice (a webhook retry).
    for _ in range(2):
        assert feishu.say("move Dup P2", open_id="ou_admin", message_id=first, event_id="ev-dup-1").status == 200
    # The same message with a new event_id (a long-connection backfill).
    assert feishu.say("move Dup P2", open_id="ou_admin", message_id=first, event_id="ev-dup-2").status == 200
    feishu.wait_reply(first)
    time.sleep(0.5)
    assert len(feishu.replies_to(first)) == 1
    history = answer(feishu, "history Dup")
    assert history.count("→ P2") == 1, history


def test_admins_see_refused_notifications_in_help(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    from tests.fakes.feishu_api import BOT_NOT_IN_CHAT

    fake.refuse_chat("oc_cs", BOT_NOT_IN_CHAT)
    answer(feishu, "add Zeta --stage P3")
    answer(feishu, "move Zeta P4")
    feishu.drain()
    assert "230002" in answer(feishu, "help") and "oc_cs" in answer(feishu, "help")
    assert "230002" not in answer(feishu, "help", open_id="ou_carol")


def test_the_bot_added_to_a_group_says_which_chat_id_to_configure(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    feishu.event("im.chat.member.bot.added_v1", {"chat_id": "oc_new", "name": "New team", "operator_id": {}})
    assert fake.wait_for(lambda: bool(feishu.to_chat("oc_new")))
    assert 'feishu_chat = "oc_new"' in card_texts(feishu.to_chat("oc_new")[0].content)


def test_a_bot_menu_click_answers_the_clicker_directly(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, 'add "Menu Co" --stage PQL')
    answer(feishu, 'move "Menu Co" P0', open_id="ou_alice")
    operator = {"operator_name": "Boss", "operator_id": {"open_id": "ou_boss", "union_id": "on_b", "user_id": "b"}}
    reply = feishu.event("application.bot.menu_v6", {"operator": operator, "event_key": "approvals", "timestamp": 1})
    assert reply.status == 200

    def to_boss() -> list[Any]:
        return [m for m in fake.messages if m.receive_id_type == "open_id" and m.receive_id == "ou_boss"]

    assert fake.wait_for(lambda: bool(to_boss()))
    assert "Menu Co" in card_texts(to_boss()[0].content)
    # A menu item stagebot does not know is acknowledged and ignored.
    assert feishu.event("application.bot.menu_v6", {"operator": operator, "event_key": "nope"}).status == 200


def card_images(content: Any) -> list[str]:
    return [el["img_key"] for el in content["body"]["elements"] if el.get("tag") == "img"]


def test_report_is_one_card_with_the_chart_above_the_table(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, 'add "Rep Co" --stage SQL --amount 10k')
    message_id = mid()
    assert feishu.say("报表", open_id="ou_admin", message_id=message_id).status == 200
    card = feishu.wait_reply(message_id).content
    (key,) = card_images(card)
    (image,) = [i for i in fake.images if i.image_key == key]
    assert image.image_type == "message" and image.data[:8] == b"\x89PNG\r\n\x1a\n" and len(image.data) > 20_000
    # The table is sent once, in the bot's language (en here); a Chinese client shows the title in Chinese.
    assert "Bottleneck: SQL" in card_texts(card) and card_texts(card, "zh_cn").startswith("报表")
    assert "could not be attached" not in card_texts(card)


def test_a_failed_chart_upload_still_answers_with_the_figures(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    from tests.fakes.feishu_api import SERVER_ERROR

    answer(feishu, 'add "Rep Co" --stage SQL --amount 10k')
    fake.script("image", SERVER_ERROR)
    text = answer(feishu, "report")
    assert "Bottleneck: SQL" in text and "The chart could not be attached this time." in text
    assert not fake.images


def test_the_report_menu_sends_a_card_per_team_of_the_clicker(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, 'add "Rep Co" --stage SQL --amount 10k')
    operator = {"operator_name": "Alice", "operator_id": {"open_id": "ou_alice", "union_id": "on_a", "user_id": "a"}}
    assert feishu.event("application.bot.menu_v6", {"operator": operator, "event_key": "report"}).status == 200

    def to_alice() -> list[Any]:
        return [m for m in fake.messages if m.receive_id_type == "open_id" and m.receive_id == "ou_alice"]

    assert fake.wait_for(lambda: bool(to_alice()))
    time.sleep(0.3)
    (msg,) = to_alice()  # alice is in one team, sales
    text = card_texts(msg.content)
    assert "Report · team sales" in text and "team sales" in text.splitlines()[1]
    assert len(card_images(msg.content)) == 1


def test_message_fields_of_the_wrong_type_get_a_hint_not_silence(feishu: FeishuDriver) -> None:
    # Feishu never sends these, but a proxy or a replayed body might: the sender is still answered.
    odd = text_message("show Acme", open_id="ou_admin", message_id=(first := mid()))
    odd["message"]["content"] = 123
    assert feishu.event("im.message.receive_v1", odd).status == 200
    assert "I read text commands only" in card_texts(feishu.wait_reply(first).content)
    odd = text_message("@_user_1 help", open_id="ou_admin", message_id=(second := mid()))
    odd["message"]["mentions"] = [{"key": 5, "id": {"open_id": 7}, "name": "x"}]
    assert feishu.event("im.message.receive_v1", odd).status == 200
    assert "Unknown command" in card_texts(feishu.wait_reply(second).content)  # answered, not dropped


# A card Feishu will not take: too large (230025), or one it cannot build (230099, sub-code in msg).
CARD_TOO_LARGE = Scripted(400, 230025, "The message content is too large.")
CARD_BAD = Scripted(400, 230099, "Failed to create card content, ext=ErrCode: 11310; ErrMsg: element exceeds the limit")


def test_a_reply_card_feishu_refuses_arrives_as_plain_text(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, "add Delta")
    fake.script("reply", CARD_TOO_LARGE)
    message_id = mid()
    feishu.say("show Delta", open_id="ou_admin", message_id=message_id)
    got = feishu.wait_reply(message_id)
    assert got.msg_type == "text" and "Delta (#" in got.content["text"]
    refused = [x for x in fake.calls_of("reply") if x.code == 230025]
    assert len(refused) == 1 and refused[0].json["msg_type"] == "interactive"
    assert refused[0].json["uuid"] != got.uuid  # its own uuid: Feishu sends one message per uuid


def test_a_direct_card_feishu_refuses_arrives_as_plain_text(feishu: FeishuDriver, fake: FakeFeishu) -> None:
    answer(feishu, 'add "Menu Co" --stage PQL')
    answer(feishu, 'move "Menu Co" P0', open_id="ou_alice")
    fake.script("create", CARD_BAD)
    operator = {"operator_name": "Boss", "operator_id": {"open_id": "ou_boss", "union_id": "on_b", "user_id": "b"}}
    feishu.event("application.bot.menu_v6", {"operator": operator, "event_key": "approvals", "timestamp": 1})

    def to_boss() -> list[Any]:
        return [m for m in fake.messages if m.receive_id == "ou_boss"]

    assert fake.wait_for(lambda: bool(to_boss()))
    (got,) = to_boss()
    assert got.msg_type == "text" and "Menu Co" in got.content["text"]


def test_an_answer_refused_as_card_and_as_text_is_logged_at_error_with_feishus_codes(
    feishu: FeishuDriver, fake: FakeFeishu, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script("reply", CARD_BAD, CARD_TOO_LARGE)
    with caplog.at_level(logging.WARNING, logger="stagebot.feishu"):
        feishu.say("help", open_id="ou_admin", message_id=(message_id := mid()))
        assert fake.wait_for(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message_id in error and "230099" in error and "230025" in error
    assert "test-app-secret" not in error and "Bearer" not in error
    assert feishu.replies_to(message_id) == []
