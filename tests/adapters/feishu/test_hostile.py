"""Hostile input at POST /feishu/events (issue 19): requests encrypted and signed with the right keys
whose envelope is still wrong, answered 400 with the field named, never a 500, never a silent drop,
and never a traceback in the log; the URL-verification challenge echoed as valid JSON; duplicate
JSON keys refused. Driven through the running app's WSGI entry point and the real lark-oapi
dispatcher (tests/fakes/feishu_requests.py)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.feishu.envelope import MAX_ID
from tests.adapters.feishu.conftest import ENCRYPT_KEY, VERIFICATION_TOKEN, FeishuDriver, card_texts
from tests.fakes.feishu_requests import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    card_action,
    encrypt,
    envelope,
    sign,
    text_message,
    url_verification,
)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # the field removed


def mid() -> str:
    return f"om_{uuid.uuid4().hex[:16]}"


def put(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`payload` with the field at dotted `path` set to `value` (removed when MISSING)."""
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    if value is MISSING:
        del node[last]
    else:
        node[last] = value
    return payload


def message(feishu: FeishuDriver, message_id: str, text: str = "help", **kw: Any) -> dict[str, Any]:
    event = text_message(text, open_id=kw.pop("open_id", "ou_admin"), message_id=message_id)
    return envelope("im.message.receive_v1", event, token=VERIFICATION_TOKEN, app_id=feishu.app_id, **kw)


def other(feishu: FeishuDriver, event_type: str) -> dict[str, Any]:
    events = {
        "card.action.trigger": card_action({"v": 1, "op": "show", "account": 1}),
        "application.bot.menu_v6": {
            "operator": {"operator_id": {"open_id": "ou_boss", "union_id": "on_b", "user_id": "b"}},
            "event_key": "help",
        },
        "im.chat.member.bot.added_v1": {"chat_id": "oc_new", "name": "New team"},
    }
    return envelope(event_type, events[event_type], token=VERIFICATION_TOKEN, app_id=feishu.app_id)


def raw_signed(plaintext: bytes) -> tuple[bytes, dict[str, str]]:
    """A request whose decrypted payload is exactly `plaintext` (json.dumps cannot write duplicate keys)."""
    body = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, plaintext)}).encode()
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    return body, {
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(ts, nonce, ENCRYPT_KEY, body),
        "Content-Type": "application/json",
    }


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Every log record at WARNING or above, from any logger (lark-oapi's "Lark" included)."""
    with caplog.at_level(logging.WARNING):
        yield caplog.records


def assert_quiet(records: list[logging.LogRecord]) -> None:
    """A malformed request is the sender's problem: no traceback, nothing at ERROR, nothing from lark-oapi."""
    loud = [(r.name, r.levelname, r.getMessage()[:200]) for r in records if r.exc_info or r.levelno >= logging.ERROR]
    assert loud == [], loud
    assert [r.getMessage()[:200] for r in records if r.name == "Lark"] == []


# ------------------------------------------------------------------ the envelope's fields


MESSAGE_FIELDS = [
    # bug 1: a list-valued event_type was looked up in a frozenset (TypeError, HTTP 500)
    ("header.event_type", ["im.message.receive_v1"]),
    ("header.event_type", {"a": 1}),
    ("header.event_type", ""),
    # bug 5: ids the database cannot keep (too long for String(200), NUL refused by PostgreSQL)
    ("header.event_id", "e" * 300),
    ("header.event_id", "ev\x00nul"),
    ("header.event_id", ["ev_1"]),
    ("header.event_id", ""),
    ("header.event_id", MISSING),
    ("header.create_time", "soon"),
    ("header.create_time", ["1"]),
    ("header.tenant_key", "t\x07"),
    ("header.app_id", {"id": 1}),
    ("event.message.message_id", "om_" + "x" * 300),
    ("event.message.message_id", "om_\x00"),
    ("event.message.message_id", "om_a\nb"),
    ("event.message.message_id", 7),
    ("event.message.message_id", ""),
    ("event.message.chat_id", "oc_\u2028"),
    ("event.message.create_time", "yesterday"),
    ("event.sender.sender_id.open_id", "ou_" + "a" * 300),
    ("event.sender.sender_id.open_id", ["ou_admin"]),
    ("event.sender.sender_id.user_id", 5),
    ("event.sender.tenant_key", "t1\x00"),
    # lark-oapi cannot read these (UnmarshalException inside its dispatcher: an ERROR traceback)
    ("event.message", "nonsense"),
    ("event.sender", 7),
    ("event.sender.sender_id", ["ou_admin"]),
    ("event.message.mentions", {"key": "@_user_1"}),
    # no event at all: an AttributeError in the listener, logged with its traceback
    ("event", MISSING),
    ("event", None),
    ("event", "hello"),
]


@pytest.mark.parametrize(("path", "value"), MESSAGE_FIELDS, ids=[f"{p}={v!r:.20}" for p, v in MESSAGE_FIELDS])
def test_a_malformed_message_event_is_a_400_naming_the_field(
    feishu: FeishuDriver, records: list[logging.LogRecord], path: str, value: Any
) -> None:
    message_id = mid()
    reply = feishu.send(put(message(feishu, message_id), path, value))
    assert reply.status == 400, (reply.status, reply.body)
    assert path in reply.json["error"], reply.json
    assert b"Traceback" not in reply.body
    time.sleep(0.2)  # room for a (wrong) late reply
    assert feishu.fake.messages == []
    assert_quiet(records)


OTHER_FIELDS = [
    ("card.action.trigger", "header.event_id", "x" * 300),
    ("card.action.trigger", "event.operator.open_id", "ou_" + "b" * 300),
    ("card.action.trigger", "event.operator.open_id", ["ou_boss"]),
    ("card.action.trigger", "event.operator.tenant_key", "t\x00"),
    ("card.action.trigger", "event.context.open_message_id", "om_\x00"),
    ("card.action.trigger", "event.context", "here"),
    ("application.bot.menu_v6", "event.operator.operator_id.open_id", ["ou_boss"]),
    ("application.bot.menu_v6", "event.operator.operator_id", "ou_boss"),
    ("application.bot.menu_v6", "event", MISSING),
    ("im.chat.member.bot.added_v1", "event.chat_id", "oc_\x00"),
    ("im.chat.member.bot.added_v1", "event.chat_id", "oc_" + "c" * 300),
    ("im.chat.member.bot.added_v1", "event", MISSING),
]


@pytest.mark.parametrize(("event_type", "path", "value"), OTHER_FIELDS)
def test_other_malformed_events_are_a_400_naming_the_field(
    feishu: FeishuDriver, records: list[logging.LogRecord], event_type: str, path: str, value: Any
) -> None:
    reply = feishu.send(put(other(feishu, event_type), path, value))
    assert reply.status == 400, (reply.status, reply.body)
    assert path in reply.json["error"], reply.json
    time.sleep(0.2)
    assert feishu.fake.messages == []
    assert_quiet(records)


def test_any_other_field_lark_oapi_cannot_read_is_a_400_before_it_tries(
    feishu: FeishuDriver, records: list[logging.LogRecord]
) -> None:
    """Fields stagebot does not read are checked by the SDK's own model of the event, built by the
    webhook before the dispatcher builds it; lark-oapi names the field but not its place."""
    payload = message(feishu, mid(), "@_user_1 help")
    put(payload, "event.message.mentions", [{"key": "@_user_1", "id": "ou_not_an_object", "name": "x"}])
    reply = feishu.send(payload)
    assert reply.status == 400 and '"id"' in reply.json["error"], reply.body
    assert_quiet(records)


def test_ids_as_long_as_allowed_are_answered(feishu: FeishuDriver, records: list[logging.LogRecord]) -> None:
    """The limit is generous (Feishu's ids are 32-35 characters); an id up to it is a command like any other."""
    message_id = "om_" + "m" * (MAX_ID - 3)
    payload = message(feishu, message_id, "add Long Ids Inc", event_id="e" * MAX_ID, tenant_key="t" * MAX_ID)
    put(payload, "event.sender.sender_id.open_id", "ou_" + "a" * (MAX_ID - 3))
    reply = feishu.send(payload)
    assert reply.status == 200, reply.body
    said = card_texts(feishu.wait_reply(message_id).content)
    assert "not in any stagebot team" in said  # an unknown person, answered
    assert_quiet(records)
    # One character more is refused, and says so.
    too_long = feishu.send(message(feishu, "om_" + "m" * (MAX_ID - 2)))
    assert too_long.status == 400 and "event.message.message_id" in too_long.json["error"]
    assert str(MAX_ID) in too_long.json["error"]


def test_an_unsubscribed_event_type_with_a_sane_header_is_still_acknowledged(feishu: FeishuDriver) -> None:
    reply = feishu.event("contact.user.created_v3", {"object": {"open_id": ["odd", "but not ours to read"]}})
    assert reply.status == 200 and "ignored" in reply.json["msg"]


def test_a_malformed_event_is_refused_only_after_the_signature_check(feishu: FeishuDriver) -> None:
    payload = put(message(feishu, mid()), "header.event_type", ["x"])
    body = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, json.dumps(payload).encode())}).encode()
    forged = {HEADER_TIMESTAMP: str(int(time.time())), HEADER_NONCE: "n", HEADER_SIGNATURE: "0" * 64}
    assert feishu.request(body, forged).status == 401


# ------------------------------------------------------------------ lark-oapi's logging


def test_lark_oapi_logs_through_stagebots_handler_only(feishu: FeishuDriver) -> None:
    """lark-oapi puts a plain-text handler to stdout on its "Lark" logger at import (lark_oapi/core/log.py);
    a running bot has removed it, so the SDK's records reach stagebot's handler (JSON, masking, level) alone."""
    lark = logging.getLogger("Lark")
    assert lark.handlers == [] and lark.propagate


# ------------------------------------------------------------------ URL verification (bug 10)


@pytest.mark.parametrize("challenge", ['a"b}', "back\\slash", "</script>", "挑战", "x" * 1024])
def test_the_challenge_is_echoed_as_valid_json(feishu: FeishuDriver, challenge: str) -> None:
    reply = feishu.send(url_verification(challenge, VERIFICATION_TOKEN))
    assert reply.status == 200, reply.body
    assert json.loads(reply.body) == {"challenge": challenge}


@pytest.mark.parametrize("challenge", ["x" * 1025, "", ["a"], {"a": 1}, 5, None, "a\x00b"])
def test_a_malformed_challenge_is_a_400(feishu: FeishuDriver, challenge: Any) -> None:
    reply = feishu.send(url_verification(challenge, VERIFICATION_TOKEN))
    assert reply.status == 400, reply.body
    assert "challenge" in reply.json["error"]


def test_the_challenge_is_answered_only_after_the_token_check(feishu: FeishuDriver) -> None:
    assert feishu.send(url_verification('a"b}', "wrong")).status == 401
    assert feishu.send(url_verification("x" * 5000, "wrong")).status == 401


# ------------------------------------------------------------------ duplicate JSON keys


def test_duplicate_keys_in_a_button_value_are_refused(feishu: FeishuDriver, records: list[logging.LogRecord]) -> None:
    """Feishu hands card values over as objects, so duplicates can only be seen in the decrypted payload."""
    payload = other(feishu, "card.action.trigger")
    text = json.dumps(payload).replace('"account": 1', '"account": 1, "account": 2')
    assert text.count('"account"') == 2
    reply = feishu.request(*raw_signed(text.encode()))
    assert reply.status == 400, reply.body
    assert "duplicate" in reply.json["error"] and "account" in reply.json["error"]
    assert_quiet(records)


def test_duplicate_keys_anywhere_in_the_event_are_refused(feishu: FeishuDriver) -> None:
    message_id = mid()
    text = json.dumps(message(feishu, message_id)).replace('"schema": "2.0"', '"schema": "2.0", "schema": "2.0"')
    reply = feishu.request(*raw_signed(text.encode()))
    assert reply.status == 400 and "duplicate" in reply.json["error"], reply.body
    time.sleep(0.2)
    assert feishu.replies_to(message_id) == []
