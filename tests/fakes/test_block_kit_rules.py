"""Each Block Kit rule of the fake Slack: a message that breaks exactly that rule is refused the way
Slack refuses it, with a pointer naming the element, and the same message within the limit is accepted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.fakes import block_kit as bk
from tests.fakes.slack_api import FakeSlack

Blocks = list[Any]


def md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def section(text: str = "hi") -> dict[str, Any]:
    return {"type": "section", "text": md(text)}


def button(action_id: str = "a", text: str = "Go", value: str = "v") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": plain(text), "value": value}


def actions(*elements: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        block["block_id"] = block_id
    return block


DIVIDER = {"type": "divider"}  # leads every message, so a pointer must name the right block, not /blocks/0

# (rule, limit, blocks with n of the counted thing, the pointer of a refusal, the start of its message)
LIMITS: list[tuple[str, int, Callable[[int], Blocks], str, str]] = [
    ("blocks per message", 50, lambda n: [section()] * n, "/blocks", "no more than 50 items allowed"),
    ("section text", 3000, lambda n: [DIVIDER, section("x" * n)], "/blocks/1/text/text", "must be less than 3001"),
    (
        "header text",
        150,
        lambda n: [DIVIDER, {"type": "header", "text": plain("h" * n)}],
        "/blocks/1/text/text",
        "must be less than 151",
    ),
    (
        "section fields",
        10,
        lambda n: [DIVIDER, {"type": "section", "fields": [md("f")] * n}],
        "/blocks/1/fields",
        "no more than 10 items allowed",
    ),
    (
        "field text",
        2000,
        lambda n: [DIVIDER, {"type": "section", "fields": [md("ok"), md("f" * n)]}],
        "/blocks/1/fields/1/text",
        "must be less than 2001",
    ),
    (
        "context elements",
        10,
        lambda n: [DIVIDER, {"type": "context", "elements": [md("c")] * n}],
        "/blocks/1/elements",
        "no more than 10 items allowed",
    ),
    (
        "actions elements",
        25,
        lambda n: [DIVIDER, actions(*(button(f"a{i}") for i in range(n)))],
        "/blocks/1/elements",
        "no more than 25 items allowed",
    ),
    (
        "button text",
        75,
        lambda n: [DIVIDER, actions(button(text="b" * n))],
        "/blocks/1/elements/0/text/text",
        "must be less than 76",
    ),
    (
        "button value",
        2000,
        lambda n: [DIVIDER, actions(button(value="v" * n))],
        "/blocks/1/elements/0/value",
        "must be less than 2001",
    ),
    (
        "button action_id",
        255,
        lambda n: [DIVIDER, actions(button("a" * n))],
        "/blocks/1/elements/0/action_id",
        "must be less than 256",
    ),
    (
        "block_id",
        255,
        lambda n: [DIVIDER, {**section(), "block_id": "b" * n}],
        "/blocks/1/block_id",
        "must be less than 256",
    ),
    (
        "confirm text",
        300,
        lambda n: [
            DIVIDER,
            actions(
                {
                    **button(),
                    "confirm": {
                        "title": plain("Sure?"),
                        "text": plain("t" * n),
                        "confirm": plain("Yes"),
                        "deny": plain("No"),
                    },
                }
            ),
        ],
        "/blocks/1/elements/0/confirm/text/text",
        "must be less than 301",
    ),
]

# (rule, blocks Slack accepts, the same with the rule broken, pointer, start of the message)
SHAPES: list[tuple[str, Blocks, Blocks, str, str]] = [
    (
        "action_id unique within its block",
        [DIVIDER, actions(button("stagebot:snooze:1d"), button("stagebot:snooze:7d"))],
        [DIVIDER, actions(button("stagebot:snooze"), button("stagebot:snooze"))],
        "/blocks/1/elements/1/action_id",
        '`action_id` "stagebot:snooze" already exists',
    ),
    (
        "block_id unique within the message",
        [DIVIDER, {**section(), "block_id": "x"}, {**section(), "block_id": "y"}],
        [DIVIDER, {**section(), "block_id": "x"}, {**section(), "block_id": "x"}],
        "/blocks/2/block_id",
        '`block_id` "x" already exists',
    ),
    ("a block is an object", [DIVIDER, section()], [DIVIDER, "section"], "/blocks/1", "expected object"),
    ("a block has a type", [DIVIDER, section()], [DIVIDER, {"text": md("hi")}], "/blocks/1", "missing required"),
    (
        "a block type Slack knows",
        [DIVIDER, section()],
        [DIVIDER, {"type": "sektion", "text": md("hi")}],
        "/blocks/1/type",
        "unsupported type: sektion",
    ),
    (
        "text object type",
        [DIVIDER, section()],
        [DIVIDER, {"type": "section", "text": {"type": "markdown", "text": "hi"}}],
        "/blocks/1/text/type",
        "must be a valid enum value",
    ),
    (
        "header text is plain_text",
        [DIVIDER, {"type": "header", "text": plain("Title")}],
        [DIVIDER, {"type": "header", "text": md("Title")}],
        "/blocks/1/text/type",
        "must be a valid enum value",
    ),
    (
        "button text is plain_text",
        [DIVIDER, actions(button())],
        [DIVIDER, actions({**button(), "text": md("Go")})],
        "/blocks/1/elements/0/text/type",
        "must be a valid enum value",
    ),
    (
        "text is not empty",
        [DIVIDER, section("x")],
        [DIVIDER, section("")],
        "/blocks/1/text/text",
        "must be more than 0",
    ),
    (
        "a section has text or fields",
        [DIVIDER, section()],
        [DIVIDER, {"type": "section"}],
        "/blocks/1/type",
        "must define either `text` or `fields`",
    ),
    (
        "an accessory button obeys the button rules",
        [DIVIDER, {**section(), "accessory": button(text="b" * 75)}],
        [DIVIDER, {**section(), "accessory": button(text="b" * 76)}],
        "/blocks/1/accessory/text/text",
        "must be less than 76",
    ),
    (
        "button style",
        [DIVIDER, actions({**button(), "style": "primary"})],
        [DIVIDER, actions({**button(), "style": "default"})],
        "/blocks/1/elements/0/style",
        "must be a valid enum value",
    ),
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture(scope="module")
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5)


def refusal(client: WebClient, blocks: Blocks, method: str = "chat.postMessage") -> dict[str, Any]:
    args: dict[str, Any] = {"channel": "C1", "text": "fallback", "blocks": blocks}
    if method == "chat.update":
        args["ts"] = "1.000001"
    if method == "chat.postEphemeral":
        args["user"] = "U1"
    with pytest.raises(SlackApiError) as caught:
        client.api_call(method, json=args)
    return dict(caught.value.response.data)  # type: ignore[arg-type]


def accepted(client: WebClient, blocks: Blocks) -> None:
    assert client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)["ok"] is True


def assert_refused_at(answer: dict[str, Any], pointer: str, message: str) -> None:
    """Slack's shape: invalid_blocks, `errors` naming the element, the same lines in response_metadata."""
    assert answer["ok"] is False and answer["error"] == "invalid_blocks", answer
    hits = [e for e in answer["errors"] if e.endswith(f"[json-pointer:{pointer}]") and e.startswith(message)]
    assert hits, answer["errors"]
    assert answer["response_metadata"]["messages"] == [f"[ERROR] {e}" for e in answer["errors"]]


@pytest.mark.parametrize(("rule", "limit", "build", "pointer", "message"), LIMITS, ids=[x[0] for x in LIMITS])
def test_a_limit_is_refused_one_past_it_and_accepted_at_it(
    client: WebClient, rule: str, limit: int, build: Callable[[int], Blocks], pointer: str, message: str
) -> None:
    accepted(client, build(limit))
    assert bk.message_errors(build(limit)) == []
    answer = refusal(client, build(limit + 1))
    assert_refused_at(answer, pointer, message)
    assert len(answer["errors"]) <= 2, answer["errors"]  # exactly that rule (a section text adds its schema line)


@pytest.mark.parametrize(("rule", "good", "bad", "pointer", "message"), SHAPES, ids=[x[0] for x in SHAPES])
def test_a_broken_shape_is_refused_and_the_intact_one_accepted(
    client: WebClient, rule: str, good: Blocks, bad: Blocks, pointer: str, message: str
) -> None:
    accepted(client, good)
    answer = refusal(client, bad)
    assert_refused_at(answer, pointer, message)
    assert len(answer["errors"]) == 1, answer["errors"]


def test_a_too_long_section_text_is_refused_with_both_lines_slack_sends(client: WebClient) -> None:
    answer = refusal(client, [section("x" * 3001)])
    assert answer["errors"] == [
        "failed to match all allowed schemas [json-pointer:/blocks/0/text]",
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
    ]


@pytest.mark.parametrize("method", ["chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage"])
def test_every_method_that_posts_blocks_checks_them(client: WebClient, fake: FakeSlack, method: str) -> None:
    bad = [actions(button("stagebot:snooze"), button("stagebot:snooze"))]
    answer = refusal(client, bad, method)
    assert_refused_at(answer, "/blocks/0/elements/1/action_id", "`action_id`")
    assert fake.calls_to(method)[-1].answered == 200  # Slack refuses with HTTP 200 and ok: false


def test_form_encoded_blocks_are_checked_too_and_a_non_array_is_a_format_error(client: WebClient) -> None:
    bad = json.dumps([section("")])
    with pytest.raises(SlackApiError) as caught:
        client.api_call("chat.postMessage", data={"channel": "C1", "blocks": bad})
    assert caught.value.response["error"] == "invalid_blocks"
    for not_blocks in ("{not json", json.dumps({"type": "section"})):
        with pytest.raises(SlackApiError) as caught:
            client.api_call("chat.postMessage", data={"channel": "C1", "blocks": not_blocks})
        assert caught.value.response["error"] == "invalid_blocks_format"


def test_lengths_count_characters_not_bytes(client: WebClient) -> None:
    for ch in ("é", "测", "👍🏽"[0], "שָׁ"[0]):
        accepted(client, [section(ch * 3000)])  # 3,000 characters, up to 12,000 bytes
        assert_refused_at(refusal(client, [section(ch * 3001)]), "/blocks/0/text/text", "must be less than 3001")
    # The stricter UTF-16 count a JavaScript service would make is available to tests that want the margin.
    assert bk.message_errors([section("👍" * 1501)], length=bk.utf16_units) != []
    assert bk.message_errors([section("👍" * 1500)], length=bk.utf16_units) == []


def test_a_long_top_level_text_is_not_an_error(client: WebClient) -> None:
    # Slack truncates `text` beyond 40,000 characters (changelog 2018-04 "truncating really long messages").
    assert client.chat_postMessage(channel="C1", text="t" * 50_000, blocks=[section()])["ok"] is True


@pytest.mark.parametrize("view_type", ["home", "modal"])
def test_views_allow_100_blocks_and_refuse_101_as_invalid_arguments(client: WebClient, view_type: str) -> None:
    view: dict[str, Any] = {"type": view_type, "title": plain("t"), "blocks": [section()] * 100}
    publish: Callable[..., Any] = client.views_publish if view_type == "home" else client.views_open
    target = {"user_id": "U1"} if view_type == "home" else {"trigger_id": "1.2.3"}
    assert publish(**target, view=view)["ok"] is True
    with pytest.raises(SlackApiError) as caught:
        publish(**target, view={**view, "blocks": [section()] * 101})
    answer = caught.value.response.data
    assert isinstance(answer, dict) and answer["error"] == "invalid_arguments" and "errors" not in answer
    assert answer["response_metadata"]["messages"] == [
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"
    ]


def test_a_view_block_is_held_to_the_same_rules(client: WebClient) -> None:
    fields = {"type": "section", "fields": [md("f")] * 11}
    with pytest.raises(SlackApiError) as caught:
        client.views_publish(user_id="U1", view={"type": "home", "blocks": [DIVIDER, fields]})
    assert caught.value.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 10 items allowed [json-pointer:/view/blocks/1/fields]"
    ]


def test_a_response_url_refuses_bad_blocks_with_a_bare_400(fake: FakeSlack) -> None:
    webhook = WebhookClient(fake.response_url("rules"))
    good = webhook.send(text="fallback", blocks=[actions(button("a"), button("b"))])
    assert (good.status_code, good.body) == (200, "ok")
    bad = webhook.send(text="fallback", blocks=[actions(button("a"), button("a"))])
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")
    assert fake.calls_to("response_url")[-1].answered == 400


def test_a_view_over_250_kb_as_slack_sdk_sends_it_is_too_large(client: WebClient) -> None:
    # 100 sections of 2,000 ASCII characters: about 210 kB. The same in CJK is sent as \u escapes, 6 bytes each.
    small = {"type": "home", "blocks": [section("x" * 2000)] * 100}
    assert bk.view_size(small) < bk.VIEW_BYTES
    assert client.views_publish(user_id="U1", view=small)["ok"] is True
    large = {"type": "home", "blocks": [section("测" * 2000)] * 100}
    assert bk.view_errors(large) == []  # every block is fine; the whole is too big
    with pytest.raises(SlackApiError) as caught:
        client.views_publish(user_id="U1", view=large)
    assert caught.value.response.data == {"ok": False, "error": "view_too_large"}
