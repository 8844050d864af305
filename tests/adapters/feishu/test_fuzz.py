"""Whatever a request to /feishu/events carries, stagebot answers it without a 5xx, and a person who typed
something to the bot gets exactly one reply card, with no traceback in it.

Requests go through the running app's WSGI entry point and the real lark-oapi dispatcher, really encrypted
and signed (tests/fakes/feishu_requests.py); replies go to the fake Feishu Open API. Each test starts one
app and runs its hypothesis examples against it, so it can check afterwards what the app did in total
(one reply per addressed message, none for the others, still answering).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.common.grammar import SPECS
from tests.adapters.feishu.conftest import BOT, ENCRYPT_KEY, VERIFICATION_TOKEN, FeishuDriver, card_texts
from tests.fakes.feishu_requests import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    card_action,
    encrypt,
    envelope,
    post_message,
    sign,
    text_message,
)

REPLY_TIMEOUT = 10.0  # seconds to wait for one reply card; replies normally take a few milliseconds
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CRASHY = re.compile(r"Traceback|\b[A-Z]\w*(?:Error|Exception)\b|<class '")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
control_text = st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=20)
chinese_text = st.text(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF) | st.sampled_from(" ,。“”"), max_size=40
)
long_word = st.tuples(st.text(min_size=1, max_size=3), st.integers(1, 1200)).map(lambda t: t[0] * t[1])
command_words = st.sampled_from([w for s in SPECS for w in (s.name, s.zh)] + ["/stage", "@_user_1", "@_all"])
command_shaped = st.lists(
    command_words | st.sampled_from(['"', "“", "--amount", "P2", "#1", "5万", "Acme"]) | st.text(max_size=10),
    min_size=1,
    max_size=6,
).map(" ".join)
message_texts = st.one_of(st.text(max_size=200), control_text, chinese_text, long_word, command_shaped)


def fresh_id(prefix: str = "om_") -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def crash_words(shown: str, typed: str) -> list[str]:
    """Crash vocabulary in what the bot said that the person did not type themselves."""
    return [m for m in CRASHY.findall(shown) if m not in typed]


def assert_no_5xx(status: int, body: bytes) -> None:
    assert status < 500, (status, body[:300])
    assert b"Traceback" not in body


# -------------------------------------------------------------------------- 1. any text, one reply card


def test_any_text_message_gets_exactly_one_reply_card(feishu: FeishuDriver) -> None:
    assert feishu.running.feishu_bot.bot_open_id() == BOT  # known, so "not addressed to the bot" is decidable
    expected: dict[str, tuple[int, str, str]] = {}  # message_id -> (replies expected, how it was sent, text)

    @settings(FUZZ, max_examples=40)
    @given(text=message_texts, how=st.sampled_from(["p2p", "group @bot", "group @other", "rich text @bot"]))
    def say(text: str, how: str) -> None:
        message_id = fresh_id()
        group = how != "p2p"
        addressed = how != "group @other"
        who = {"p2p": [], "group @bot": [(BOT, "stagebot")], "group @other": [("ou_bob", "Bob")]}
        if how == "rich text @bot":
            at = {"tag": "at", "user_id": "@_user_1", "user_name": "stagebot"}
            event = post_message(
                [[at, " ", text]],
                open_id="ou_admin",
                chat_id="oc_sales",
                chat_type="group",
                message_id=message_id,
                mentions=[(BOT, "stagebot")],
            )
        else:
            event = text_message(
                text if how == "p2p" else f"@_user_1 {text}",
                open_id="ou_alice",
                chat_id="oc_dm" if how == "p2p" else "oc_sales",
                chat_type="group" if group else "p2p",
                message_id=message_id,
                mentions=who[how] or None,
            )
        expected[message_id] = (1 if addressed else 0, how, text)
        reply = feishu.event("im.message.receive_v1", event)
        assert reply.status == 200, (reply.status, reply.body[:300])
        if not addressed:
            return  # checked once at the end: nothing is ever sent for it
        got = feishu.fake.wait_for(lambda: bool(feishu.replies_to(message_id)), REPLY_TIMEOUT)
        assert got, f"no reply within {REPLY_TIMEOUT}s to {how} {text!r}"
        for m in feishu.replies_to(message_id):
            assert m.msg_type == "interactive" and m.reply_in_thread is group, m
            for locale in ("en_us", "zh_cn"):
                shown = card_texts(m.content, locale)
                assert shown.strip(), (text, m.content)
                assert not crash_words(shown, text), (text, shown)
            assert "Traceback" not in json.dumps(m.content, ensure_ascii=False).replace(text, "")

    say()
    time.sleep(0.3)  # a reply wrongly sent for an unaddressed message, or a second one, would have landed
    for message_id, (n, how, text) in expected.items():
        assert len(feishu.replies_to(message_id)) == n, (how, text, feishu.replies_to(message_id))


# -------------------------------------------------------------------------- 2. malformed message events

DELETE = object()
CONTENTS = st.one_of(
    st.text(max_size=40),  # not JSON
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False)),  # JSON of any type
    json_values.map(lambda v: json.dumps({"text": v})),  # text of the wrong type
    st.fixed_dictionaries({}, optional={"title": json_values, "content": json_values}).map(json.dumps),  # a post
    st.dictionaries(st.sampled_from(["zh_cn", "en_us"]), json_values, max_size=2).map(json.dumps),
    json_values,  # not even a string
)
MENTIONS = (
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "key": st.sampled_from(["@_user_1", "@_user_2", "", "\x00"]) | json_values,
                "id": st.fixed_dictionaries({}, optional={"open_id": st.sampled_from([BOT, "ou_bob"]) | json_values})
                | json_values,
                "name": json_values,
            },
        )
        | json_values,
        max_size=3,
    )
    | json_values
)
FIELDS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("message",): json_values,
    ("sender",): json_values,
    ("message", "content"): CONTENTS,
    ("message", "message_type"): st.sampled_from(["text", "post", "image", "file", "sticker", "merge_forward", ""])
    | json_values,
    ("message", "chat_type"): st.sampled_from(["p2p", "group", "topic_group", "private", ""]) | json_values,
    ("message", "mentions"): MENTIONS,
    ("message", "message_id"): json_values,
    ("message", "chat_id"): json_values,
    ("message", "parent_id"): json_values,
    ("sender", "sender_id"): json_values,
    ("sender", "sender_id", "open_id"): json_values,
    ("sender", "sender_type"): st.sampled_from(["user", "app", "bot", ""]) | json_values,
}
mutations = st.lists(
    st.sampled_from(sorted(FIELDS)).flatmap(lambda path: st.tuples(st.just(path), st.just(DELETE) | FIELDS[path])),
    min_size=1,
    max_size=4,
)


def mutate(event: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    for path, value in changes:
        parent: Any = event
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue  # an earlier change replaced the parent with something that has no fields
        if value is DELETE:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    return event


def quiet(records: list[logging.LogRecord]) -> list[tuple[str, str, str]]:
    """What should not be in the log of a malformed request: a traceback, or anything from lark-oapi (it
    reaches the SDK only once the webhook has checked it readable)."""
    return [(r.name, r.levelname, r.getMessage()[:200]) for r in records if r.name == "Lark" or r.exc_info]


def test_malformed_message_events_never_get_a_5xx(feishu: FeishuDriver, caplog: pytest.LogCaptureFixture) -> None:
    @settings(FUZZ, max_examples=100)
    @given(
        text=message_texts,
        chat_type=st.sampled_from(["p2p", "group"]),
        changes=mutations,
        whole=st.none() | json_values,
    )
    def deliver(text: str, chat_type: str, changes: list[tuple[tuple[str, ...], Any]], whole: Any) -> None:
        event = text_message(
            text, open_id="ou_admin", chat_type=chat_type, message_id=fresh_id(), mentions=[(BOT, "stagebot")]
        )
        payload = envelope("im.message.receive_v1", {}, token=VERIFICATION_TOKEN, app_id=feishu.app_id)
        payload["event"] = mutate(event, changes) if whole is None else whole
        reply = feishu.send(payload)
        assert_no_5xx(reply.status, reply.body)

    with caplog.at_level(logging.WARNING):
        deliver()
    assert quiet(caplog.records) == []
    # Still answering, and nothing it sent to anyone carries a traceback.
    message_id = fresh_id()
    assert feishu.say("help", open_id="ou_admin", message_id=message_id).status == 200
    assert "help" in card_texts(feishu.wait_reply(message_id).content).lower()
    for m in feishu.fake.messages:
        assert "Traceback" not in json.dumps(m.content, ensure_ascii=False), m


# -------------------------------------------------------------------------- 3. card buttons


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, picked in proportion to its weight (st.one_of picks each branch alike)."""
    return st.sampled_from([s for w, s in choices for _ in range(w)]).flatmap(lambda s: s)


FIELD_OF = {"approve": "approval", "reject": "approval", "claim": "handoff", "show": "account", "done": "task"}
ids = weighted(
    (4, st.integers(0, 3)),  # #1 exists: an approval, a task and an account are seeded
    (1, st.integers() | st.sampled_from(["1", "²", "①", "١", "9" * 30, "9" * 5000, "", "1; drop table"])),
    (1, json_values),
)
stagebot_values = st.sampled_from([*FIELD_OF, "snooze", "explode"]).flatmap(
    lambda op: st.fixed_dictionaries(
        {"v": weighted((4, st.just(1)), (1, json_values)), "op": weighted((6, st.just(op)), (1, json_values))}
        | ({FIELD_OF[op]: ids} if op in FIELD_OF else {"account": ids, "days": ids} if op == "snooze" else {}),
        optional={"extra": json_values},
    )
)
button_values = weighted(
    (4, stagebot_values),
    (1, stagebot_values.map(json.dumps)),  # Slack's string form
    (1, json_values),  # strings, numbers, lists, null, nested dicts
)
operators = weighted(
    (4, st.sampled_from(["ou_boss", "ou_alice", "ou_admin", "ou_stranger", ""])),  # well-formed, someone
    (1, st.just(DELETE)),
    (1, st.fixed_dictionaries({}, optional={"open_id": json_values, "user_id": json_values})),
    (1, json_values),
)
actions = weighted((8, st.just(None)), (1, st.just(DELETE)), (1, json_values))  # None: the action with the value
TOAST_TYPES = {"info", "success", "error", "warning"}


def test_any_button_press_gets_a_toast_never_a_5xx(feishu: FeishuDriver, caplog: pytest.LogCaptureFixture) -> None:
    # A waiting approval (#1) and an open task (#1), so stagebot-shaped values can reach real objects.
    for line, who in (
        ('add "Beta" --stage PQL', "ou_admin"),
        ("move Beta P0", "ou_alice"),
        ("todo Beta x", "ou_admin"),
    ):
        message_id = fresh_id()
        feishu.say(line, open_id=who, message_id=message_id)
        feishu.wait_reply(message_id)

    @settings(FUZZ, max_examples=80)
    @given(value=button_values, operator=operators, action=actions, context=st.sampled_from([True, True, False]))
    def press(value: Any, operator: Any, action: Any, context: bool) -> None:
        event = card_action({}, open_id=operator if isinstance(operator, str) else "ou_boss")
        event["action"]["value"] = value
        if not isinstance(operator, str):
            if operator is DELETE:
                del event["operator"]
            else:
                event["operator"] = operator
        if action is DELETE:
            del event["action"]
        elif action is not None:
            event["action"] = action
        if not context:
            del event["context"]
        reply = feishu.event("card.action.trigger", event)
        assert_no_5xx(reply.status, reply.body)
        if reply.status != 200:
            return
        answer = reply.json
        toast = answer.get("toast")
        assert isinstance(toast, dict) and toast.get("type") in TOAST_TYPES, answer
        for locale in ("en_us", "zh_cn"):
            said = toast["i18n"][locale]
            assert isinstance(said, str) and said.strip(), (value, answer)
            assert not crash_words(said, json.dumps(value, ensure_ascii=False)), (value, said)
        if "card" in answer:
            assert answer["card"]["type"] == "raw" and toast["type"] == "success", answer

    with caplog.at_level(logging.WARNING):
        press()
    assert quiet(caplog.records) == []


# -------------------------------------------------------------------------- 4. raw bodies


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


not_ours = json_values.filter(lambda v: VERIFICATION_TOKEN not in json.dumps(v))  # never a valid request
encrypted_garbage = st.one_of(
    st.binary(max_size=80).map(lambda b: encrypt(ENCRYPT_KEY, b)),  # not UTF-8 / not JSON inside
    st.text(max_size=80).map(lambda t: encrypt(ENCRYPT_KEY, t.encode())),
    not_ours.map(lambda v: encrypt(ENCRYPT_KEY, json.dumps(v).encode())),  # JSON of any shape, no valid token
    not_ours.map(lambda v: encrypt("another-key", json.dumps(v).encode())),
    st.binary(max_size=80).map(b64),  # random bytes: wrong length, bad padding
    st.binary(min_size=16, max_size=16).map(b64),  # an IV and nothing else
    st.text(max_size=40),  # not base64 at all
    st.sampled_from(["", "====", "AAAA", b64(os.urandom(32))[:-2]]),
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode()),
    not_ours.map(lambda v: json.dumps(v).encode()),  # JSON without `encrypt` (or with a damaged one)
    st.fixed_dictionaries({"encrypt": encrypted_garbage | json_values}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"encrypt": encrypted_garbage}, optional={"challenge": json_values, "type": json_values}).map(
        lambda d: json.dumps(d).encode()
    ),
)
SIGNINGS = ["none", "valid", "valid lower-case", "wrong signature", "stale", "bad timestamp", "only a signature"]


def headers_for(body: bytes, how: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if how == "none":
        return headers
    ts, nonce = str(int(time.time()) - (3600 if how == "stale" else 0)), uuid.uuid4().hex
    if how == "bad timestamp":
        ts = "soon"
    signature = sign(ts, nonce, ENCRYPT_KEY, body if how != "wrong signature" else body + b" ")
    if how == "only a signature":
        return {**headers, HEADER_SIGNATURE: signature}
    headers |= {HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature}
    return {k.lower(): v for k, v in headers.items()} if how == "valid lower-case" else headers


def test_garbage_bodies_are_4xx_never_5xx(feishu: FeishuDriver) -> None:
    @settings(FUZZ, max_examples=150)
    @given(body=raw_bodies, how=st.sampled_from(SIGNINGS))
    def post(body: bytes, how: str) -> None:
        reply = feishu.request(body, headers_for(body, how))
        assert 400 <= reply.status < 500, (reply.status, reply.body[:300], body[:100])
        assert b"Traceback" not in reply.body

    post()
