"""The fake Feishu refuses what Feishu refuses in message create / reply / patch (tests/fakes/feishu_card_rules.py).

Each rule is driven through the real lark-oapi client: refused with Feishu's status and code, and accepted just
within the limit.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)

from tests.fakes import feishu_card_rules as rules
from tests.fakes.feishu_api import FakeFeishu, reset_lark_token_cache

CHAT = "oc_sales"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFeishu]:
    with FakeFeishu() as f:
        yield f


@pytest.fixture(scope="module")
def client(fake: FakeFeishu) -> lark.Client:
    reset_lark_token_cache()
    return lark.Client.builder().app_id(f"cli_{uuid.uuid4().hex[:12]}").app_secret("s").domain(fake.url).build()


def body_of(msg_type: str, content: Any, uuid_: str | None = None) -> CreateMessageRequestBody:
    b = CreateMessageRequestBody.builder().receive_id(CHAT).msg_type(msg_type).content(content)
    return (b.uuid(uuid_) if uuid_ is not None else b).build()


def create(client: lark.Client, body: CreateMessageRequestBody) -> Any:
    req = CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body).build()
    return client.im.v1.message.create(req)


def send(client: lark.Client, msg_type: str, content: Any, uuid_: str | None = None) -> Any:
    return create(client, body_of(msg_type, content, uuid_))


def wire_size(body: Any) -> int:
    """The request body's bytes exactly as lark-oapi sends them (core/http/transport.py)."""
    return len(lark.JSON.marshal(body).encode("utf-8"))


def card(*elements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A card JSON 2.0 with every documented top-level, config, header and body property the bot might use."""
    title = {"tag": "plain_text", "content": "T", "i18n_content": {"en_us": "T", "zh_cn": "标题"}}
    c: dict[str, Any] = {
        "schema": "2.0",
        "config": {
            "update_multi": True,
            "locales": ["zh_cn", "en_us"],
            "summary": {"content": "T", "i18n_content": {"en_us": "T", "zh_cn": "标题"}},
            "enable_forward": True,
            "width_mode": "fill",
        },
        "header": {"title": title, "subtitle": dict(title), "template": "blue"},
        "body": {"direction": "vertical", "padding": "12px", "elements": list(elements)},
    }
    c.update(extra)
    return c


def div(text: str = "x") -> dict[str, Any]:
    return {
        "tag": "div",
        "text": {"tag": "plain_text", "content": text, "text_size": "notation", "text_color": "grey", "lines": 3},
    }


def button() -> dict[str, Any]:
    t = {"tag": "plain_text", "content": "Go"}
    return {
        "tag": "button",
        "text": dict(t),
        "type": "primary",
        "size": "small",
        "confirm": {"title": dict(t), "text": dict(t)},
        "behaviors": [{"type": "callback", "value": {"v": 1}}],
    }


def columns() -> dict[str, Any]:
    col = {"tag": "column", "width": "auto", "vertical_align": "top", "elements": [button()]}
    return {"tag": "column_set", "flex_mode": "none", "horizontal_spacing": "small", "columns": [col]}


def image() -> dict[str, Any]:
    return {"tag": "img", "img_key": "img_v3_x", "alt": {"tag": "plain_text", "content": "chart"}, "preview": True}


def assert_refused(resp: Any, code: int, status: int = 400, says: str = "") -> None:
    assert not resp.success(), "accepted, but Feishu refuses this"
    assert (resp.raw.status_code, resp.code) == (status, code), resp.msg
    assert says in resp.msg


# ---------------------------------------------------------------------------------------------------- content


def test_content_must_be_a_json_string(client: lark.Client, fake: FakeFeishu) -> None:
    before = len(fake.messages)
    as_object = send(client, "interactive", card(div()))  # an object, not its JSON text
    assert_refused(as_object, 230001, says="param is invalid")
    assert_refused(send(client, "text", "{not json"), 230001)
    assert send(client, "interactive", json.dumps(card(div()))).success()
    assert len(fake.messages) == before + 1


# ---------------------------------------------------------------------------------------------------- sizes


def padded(msg_type: str, build: Any, target: int) -> CreateMessageRequestBody:
    """A request body of exactly `target` bytes on the wire: `build(n)` pads the content with n ASCII letters."""
    n = 0
    body = body_of(msg_type, build(n))
    n = target - wire_size(body)
    body = body_of(msg_type, build(n))
    assert wire_size(body) == target
    return body


@pytest.mark.parametrize(
    ("msg_type", "limit", "build"),
    [
        ("interactive", 30_720, lambda n: json.dumps(card(div("a" * n)), ensure_ascii=False)),
        (
            "post",
            30_720,
            lambda n: json.dumps({"zh_cn": {"title": "t", "content": [[{"tag": "text", "text": "a" * n}]]}}),
        ),
        ("text", 153_600, lambda n: json.dumps({"text": "a" * n})),
    ],
)
def test_request_body_size_limits(client: lark.Client, fake: FakeFeishu, msg_type: str, limit: int, build: Any) -> None:
    at_limit = create(client, padded(msg_type, build, limit))
    assert at_limit.success(), at_limit.msg
    assert len(fake.calls_of("create")[-1].raw) == limit  # the fake measures exactly what the SDK sent
    over = create(client, padded(msg_type, build, limit + 1))
    assert_refused(over, 230025, says="reaches its limit")


def test_the_size_counts_utf8_bytes_not_characters(client: lark.Client) -> None:
    emoji = "😀" * 8_000  # 8,000 characters (under 30,720) but 32,000 bytes in UTF-8
    assert_refused(send(client, "interactive", json.dumps(card(div(emoji)), ensure_ascii=False)), 230025)
    assert send(client, "interactive", json.dumps(card(div(emoji[:7_000])), ensure_ascii=False)).success()


def test_reply_and_patch_obey_the_same_rules(client: lark.Client) -> None:
    first = send(client, "interactive", json.dumps(card(div())))
    assert first.success()
    message_id = first.data.message_id

    def reply(content: str) -> Any:
        body = ReplyMessageRequestBody.builder().msg_type("interactive").content(content).build()
        return client.im.v1.message.reply(
            ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()
        )

    def patch(content: str) -> Any:
        body = PatchMessageRequestBody.builder().content(content).build()
        req = PatchMessageRequest.builder().message_id(message_id).request_body(body).build()
        return client.im.v1.message.patch(req)

    big = json.dumps(card(div("a" * 31_000)))
    bad = json.dumps(card(div(), elements=[]))
    assert_refused(reply(big), 230025)
    assert_refused(reply(bad), 230099, says="ErrCode: 200621")
    assert_refused(patch(big), 230025)
    assert_refused(patch(bad), 230099, says="unknown property `elements`")
    assert reply(json.dumps(card(div("a" * 29_000)))).success()
    assert patch(json.dumps(card(div("a" * 29_000)))).success()


# ---------------------------------------------------------------------------------------------------- card JSON 2.0


def test_a_card_with_only_documented_properties_is_accepted(client: lark.Client) -> None:
    resp = send(client, "interactive", json.dumps(card(div(), {"tag": "hr"}, image(), columns())))
    assert resp.success(), resp.msg


def _at(c: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = c
    for part in path.split(".") if path else ():
        node = node[int(part)] if part.isdigit() else node[part]
    return node  # type: ignore[no-any-return]


# (where in the card, a property Feishu does not document there)
UNKNOWN = [
    ("", "elements"),  # 1.0's top-level elements, reported refused in 2.0
    ("config", "wide_screen_mode"),
    ("config.summary", "tag"),  # the reviewer's finding: summary is content + i18n_content only
    ("header", "text"),
    ("header.title", "href"),
    ("body", "card_link"),
    ("body.elements.0", "value"),  # div
    ("body.elements.0.text", "i18n"),
    ("body.elements.2", "url"),  # img
    ("body.elements.3", "actions"),  # column_set
    ("body.elements.3.columns.0", "text"),  # column
    ("body.elements.3.columns.0.elements.0", "value"),  # a 1.0 button's value
    ("body.elements.3.columns.0.elements.0.confirm", "ok_text"),
    ("body.elements.3.columns.0.elements.0.behaviors.0", "url"),
]


@pytest.mark.parametrize(("where", "prop"), UNKNOWN, ids=[f"{w or 'card'}.{p}" for w, p in UNKNOWN])
def test_unknown_properties_are_refused(client: lark.Client, where: str, prop: str) -> None:
    c = card(div(), {"tag": "hr"}, image(), columns())
    assert rules.check_card(c) is None
    spoiled = copy.deepcopy(c)
    _at(spoiled, where)[prop] = "x" if prop != "elements" else []
    assert_refused(send(client, "interactive", json.dumps(spoiled)), 230099, says=f"unknown property `{prop}`")


def test_unknown_element_tags_and_misplaced_columns_are_refused(client: lark.Client) -> None:
    assert_refused(send(client, "interactive", json.dumps(card({"tag": "action", "actions": []}))), 230099)
    assert_refused(send(client, "interactive", json.dumps(card({"tag": "column", "elements": []}))), 230099)


def test_a_string_button_value_is_refused(client: lark.Client) -> None:
    c = card(columns())
    c["body"]["elements"][0]["columns"][0]["elements"][0]["behaviors"][0]["value"] = "approve"
    assert_refused(send(client, "interactive", json.dumps(c)), 230099, says="must be an object")


def test_schema_must_be_2_0_for_a_card_with_a_body(client: lark.Client) -> None:
    for schema in (None, "1.0", 2.0):
        c = card(div())
        if schema is None:
            del c["schema"]
        else:
            c["schema"] = schema
        assert_refused(send(client, "interactive", json.dumps(c)), 230099, says="schema")
    assert send(client, "interactive", json.dumps(card(div()))).success()
    # JSON 1.0 (no schema, no body) ignores unknown properties, as Feishu does.
    assert send(client, "interactive", json.dumps({"config": {"wide_screen_mode": True}, "elements": []})).success()


def test_update_multi_must_stay_true_in_2_0(client: lark.Client) -> None:
    c = card(div())
    c["config"]["update_multi"] = False
    assert_refused(send(client, "interactive", json.dumps(c)), 230099, says="update_multi")


def test_at_most_200_elements_counting_nested_ones(client: lark.Client) -> None:
    # A column_set with one column holding one div counts 3: 66 x 3 = 198, plus two divs = 200.
    lean = {"tag": "column_set", "columns": [{"tag": "column", "elements": [{"tag": "hr"}]}]}
    within = card(div(), div(), *[lean for _ in range(66)])
    assert rules.element_count(within) == 200
    assert send(client, "interactive", json.dumps(within)).success()
    over = card(div(), div(), div(), *[lean for _ in range(66)])
    assert_refused(send(client, "interactive", json.dumps(over)), 230099, says="ErrCode: 11310")


# ---------------------------------------------------------------------------------------------------- uuid


def test_uuid_is_at_most_50_characters(client: lark.Client) -> None:
    assert send(client, "text", json.dumps({"text": "hi"}), uuid_="u" * 50).success()
    assert_refused(send(client, "text", json.dumps({"text": "hi"}), uuid_="u" * 51), 99992402, says="uuid")
