"""Proves the Feishu fakes against the real lark-oapi SDK: Open API client, webhook dispatcher, long connection."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.api.im.v1 import (
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    P2ImMessageReceiveV1,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)
from lark_oapi.core.exception import ObtainAccessTokenException
from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTrigger, P2CardActionTriggerResponse

from tests.fakes.feishu_api import (
    BAD_GATEWAY,
    BOT_NOT_IN_CHAT,
    CHAT_DISBANDED,
    IMAGE_KEY_INVALID,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeFeishu,
    FakeLongConnection,
    Image,
    reset_lark_token_cache,
)
from tests.fakes.feishu_requests import (
    card_action,
    envelope,
    post_message,
    raw_request,
    signed,
    text_message,
    url_verification,
)

EK = "encrypt-key-for-tests"
VT = "verification-token-for-tests"
SECRET = "s3cret"


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    reset_lark_token_cache()
    yield
    reset_lark_token_cache()


@pytest.fixture
def fake() -> Iterator[FakeFeishu]:
    with FakeFeishu(app_secret=SECRET) as f:
        yield f


def make_client(fake: FakeFeishu, app_id: str | None = None, secret: str = SECRET) -> lark.Client:
    return (
        lark.Client.builder()
        .app_id(app_id or f"cli_{uuid.uuid4().hex[:12]}")
        .app_secret(secret)
        .domain(fake.url)
        .build()
    )


def create(client: lark.Client, chat_id: str, text: str, uuid_: str | None = None) -> Any:
    body = CreateMessageRequestBody.builder().receive_id(chat_id).msg_type("text").content(json.dumps({"text": text}))
    if uuid_ is not None:
        body = body.uuid(uuid_)
    req = CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body.build()).build()
    return client.im.v1.message.create(req)


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A real (tiny, RGB) PNG: signature with CR LF / LF / EOF bytes, binary chunks, zlib data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((x * 80, y * 120, 0x0A)) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png_bytes()


def upload_image(client: lark.Client, data: bytes, image_type: str = "message") -> Any:
    body = CreateImageRequestBody.builder().image_type(image_type).image(io.BytesIO(data)).build()
    return client.im.v1.image.create(CreateImageRequest.builder().request_body(body).build())


def send_image(client: lark.Client, chat_id: str, image_key: str) -> Any:
    content = json.dumps({"image_key": image_key})
    body = CreateMessageRequestBody.builder().receive_id(chat_id).msg_type("image").content(content).build()
    return client.im.v1.message.create(
        CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body).build()
    )


# ---------------------------------------------------------------------------------------------------- Open API


def test_create_is_idempotent_on_uuid(fake: FakeFeishu) -> None:
    client = make_client(fake)
    first = create(client, "oc_sales", "hello", uuid_="u-1")
    second = create(client, "oc_sales", "hello again", uuid_="u-1")
    third = create(client, "oc_sales", "other")

    assert first.success(), first.msg
    assert first.get_log_id()
    assert second.success() and second.data.message_id == first.data.message_id
    assert third.data.message_id != first.data.message_id
    assert [(m.receive_id, m.content, m.uuid) for m in fake.messages] == [
        ("oc_sales", {"text": "hello"}, "u-1"),
        ("oc_sales", {"text": "other"}, None),
    ]
    assert first.data.chat_id == "oc_sales" and first.data.msg_type == "text"
    [token_call] = fake.calls_of("token")
    assert token_call.json["app_secret"] == SECRET
    create_calls = fake.calls_of("create")
    assert [c.query["receive_id_type"] for c in create_calls] == ["chat_id"] * 3
    assert all(c.headers["authorization"] == "Bearer t-1" for c in create_calls)


def test_scripted_rate_limit_reaches_the_sdk(fake: FakeFeishu) -> None:
    client = make_client(fake)
    fake.script("create", RATE_LIMITED, SERVER_ERROR)

    limited = create(client, "oc_sales", "a")
    assert not limited.success()
    assert limited.code == 99991400
    assert limited.raw.status_code == 429
    assert limited.raw.headers["x-ogw-ratelimit-reset"] == "1"
    assert limited.get_log_id()
    failed = create(client, "oc_sales", "b")
    assert (failed.code, failed.raw.status_code) == (1000, 500)
    assert create(client, "oc_sales", "c").success()
    assert [m.content["text"] for m in fake.messages] == ["c"]
    assert [(c.status, c.code, c.scripted) for c in fake.calls_of("create")] == [
        (429, 99991400, True),
        (500, 1000, True),
        (200, 0, False),
    ]


def test_revoked_token_is_rejected_until_the_sdk_cache_is_reset(fake: FakeFeishu) -> None:
    client = make_client(fake)
    assert create(client, "oc_sales", "a").success()
    fake.revoke_tokens()

    rejected = create(client, "oc_sales", "b")
    assert rejected.code == 99991663  # lark-oapi keeps its cached token: no refresh on auth errors
    assert rejected.raw.status_code == 400
    reset_lark_token_cache()
    again = create(client, "oc_sales", "c")
    assert again.success()
    assert fake.calls_of("create")[-1].headers["authorization"] == "Bearer t-2"
    assert fake.tokens_issued == 2


def test_wrong_secret_raises_in_the_sdk(fake: FakeFeishu) -> None:
    client = make_client(fake, secret="wrong")
    with pytest.raises(ObtainAccessTokenException):
        create(client, "oc_sales", "a")
    assert fake.calls_of("token")[0].code == 10014
    assert fake.messages == []


def test_reply_and_patch_are_recorded(fake: FakeFeishu) -> None:
    client = make_client(fake)
    card = {"config": {"update_multi": True}, "elements": []}
    body = CreateMessageRequestBody.builder().receive_id("oc_sales").msg_type("interactive").content(json.dumps(card))
    created = client.im.v1.message.create(
        CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body.build()).build()
    )
    message_id = created.data.message_id

    reply = client.im.v1.message.reply(
        ReplyMessageRequest.builder()
        .message_id(message_id)
        .request_body(ReplyMessageRequestBody.builder().msg_type("text").content('{"text":"done"}').uuid("r-1").build())
        .build()
    )
    assert reply.success(), reply.msg
    assert fake.messages[-1].reply_to == message_id
    assert fake.messages[-1].chat_id == "oc_sales"

    new_card = {"config": {"update_multi": True}, "elements": [{"tag": "hr"}]}
    patched = client.im.v1.message.patch(
        PatchMessageRequest.builder()
        .message_id(message_id)
        .request_body(PatchMessageRequestBody.builder().content(json.dumps(new_card)).build())
        .build()
    )
    assert patched.success(), patched.msg
    assert fake.patches == [(message_id, new_card)]
    assert fake.content_of(message_id) == new_card

    missing = client.im.v1.message.patch(
        PatchMessageRequest.builder()
        .message_id("om_nope")
        .request_body(PatchMessageRequestBody.builder().content("{}").build())
        .build()
    )
    assert (missing.code, missing.raw.status_code) == (230001, 400)


def test_bad_gateway_html_makes_the_sdk_raise(fake: FakeFeishu) -> None:
    client = make_client(fake)
    fake.script("create", BAD_GATEWAY)
    with pytest.raises(json.JSONDecodeError):  # the SDK json-decodes any body; an HTML page raises
        create(client, "oc_sales", "a")
    [call] = fake.calls_of("create")
    assert call.status == 502 and call.code == 0
    assert create(client, "oc_sales", "b").success()


def test_refused_chat_until_accepted(fake: FakeFeishu) -> None:
    client = make_client(fake)
    fake.refuse_chat("oc_gone", CHAT_DISBANDED)
    fake.refuse_chat("oc_out", BOT_NOT_IN_CHAT)
    assert create(client, "oc_gone", "a").code == 232009
    assert create(client, "oc_gone", "b").code == 232009
    assert create(client, "oc_out", "c").code == 230002
    assert create(client, "oc_sales", "d").success()
    fake.accept_chat("oc_gone")
    assert create(client, "oc_gone", "e").success()
    assert [m.content["text"] for m in fake.messages] == ["d", "e"]


def test_bot_info_needs_a_tenant_token(fake: FakeFeishu) -> None:
    client = make_client(fake)
    request = (
        lark.BaseRequest.builder()
        .http_method(lark.HttpMethod.GET)
        .uri("/open-apis/bot/v3/info")
        .token_types({lark.AccessTokenType.TENANT})
        .build()
    )
    resp = client.request(request)
    assert resp.code == 0
    assert json.loads(resp.raw.content)["bot"]["open_id"] == "ou_stagebot"
    assert fake.calls_of("bot_info")[0].headers["authorization"] == "Bearer t-1"


def test_unknown_route_is_404_json(fake: FakeFeishu) -> None:
    client = make_client(fake)
    request = (
        lark.BaseRequest.builder()
        .http_method(lark.HttpMethod.GET)
        .uri("/open-apis/nope/v1/x")
        .token_types({lark.AccessTokenType.TENANT})
        .build()
    )
    resp = client.request(request)
    assert resp.raw.status_code == 404
    assert resp.code == 404
    assert fake.calls[-1].kind == "unknown"


def test_image_upload_then_image_message_and_reply(fake: FakeFeishu) -> None:
    client = make_client(fake)
    uploaded = upload_image(client, PNG)
    assert uploaded.success(), uploaded.msg
    image_key = uploaded.data.image_key
    assert image_key.startswith("img_v3_")
    assert fake.images == [Image(image_key=image_key, image_type="message", data=PNG)]
    assert fake.images[0].data == PNG
    [call] = fake.calls_of("image")
    assert (call.method, call.path, call.status, call.code) == ("POST", "/open-apis/im/v1/images", 200, 0)
    assert call.headers["authorization"] == "Bearer t-1"
    assert call.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert call.json is None

    sent = send_image(client, "oc_sales", image_key)
    assert sent.success(), sent.msg
    assert sent.data.msg_type == "image"
    reply = client.im.v1.message.reply(
        ReplyMessageRequest.builder()
        .message_id(sent.data.message_id)
        .request_body(
            ReplyMessageRequestBody.builder().msg_type("image").content(json.dumps({"image_key": image_key})).build()
        )
        .build()
    )
    assert reply.success(), reply.msg
    assert [(m.msg_type, m.content, m.chat_id, m.reply_to) for m in fake.messages] == [
        ("image", {"image_key": image_key}, "oc_sales", None),
        ("image", {"image_key": image_key}, "oc_sales", sent.data.message_id),
    ]

    second = upload_image(client, b"GIF89a\x01\x00\x01\x00\r\n\x00;", image_type="avatar")
    assert second.success() and second.data.image_key != image_key
    assert [(i.image_type, i.data) for i in fake.images] == [
        ("message", PNG),
        ("avatar", b"GIF89a\x01\x00\x01\x00\r\n\x00;"),
    ]


def test_image_message_with_an_unknown_image_key_is_refused(fake: FakeFeishu) -> None:
    client = make_client(fake)
    refused = send_image(client, "oc_sales", "img_v3_never_uploaded")
    assert (refused.code, refused.raw.status_code) == (IMAGE_KEY_INVALID.code, 400)
    assert refused.code == 230001
    assert "invalid image_key" in refused.msg
    no_key = client.im.v1.message.reply(
        ReplyMessageRequest.builder()
        .message_id("om_user_1")
        .request_body(ReplyMessageRequestBody.builder().msg_type("image").content('{"text": "no key"}').build())
        .build()
    )
    assert no_key.code == 230001
    assert fake.messages == []

    image_key = upload_image(client, PNG).data.image_key
    fake.reset()  # forgets the recorded image, but the key stays valid (the bot may have cached it)
    assert fake.images == []
    assert send_image(client, "oc_sales", image_key).success()


def test_image_upload_scripted_failures_and_bad_requests(fake: FakeFeishu) -> None:
    client = make_client(fake)
    fake.script("image", RATE_LIMITED, SERVER_ERROR)
    limited = upload_image(client, PNG)
    assert (limited.code, limited.raw.status_code) == (99991400, 429)
    assert limited.data is None
    assert (upload_image(client, PNG).code, fake.calls_of("image")[-1].status) == (1000, 500)
    assert fake.images == []
    assert upload_image(client, PNG).success()
    assert [(c.status, c.scripted) for c in fake.calls_of("image")] == [(429, True), (500, True), (200, False)]

    bad_type = upload_image(client, PNG, image_type="sticker")
    empty = upload_image(client, b"")
    assert [(r.code, r.raw.status_code) for r in (bad_type, empty)] == [(234001, 400), (234001, 400)]
    assert len(fake.images) == 1

    fake.revoke_tokens()
    assert upload_image(client, PNG).code == 99991663
    assert len(fake.images) == 1


# ---------------------------------------------------------------------------------------------------- webhook


def _dispatcher(received: list[Any], card_reply: dict[str, Any] | None = None) -> lark.EventDispatcherHandler:
    def on_message(data: P2ImMessageReceiveV1) -> None:
        received.append(data)

    def on_card(data: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        received.append(data)
        return P2CardActionTriggerResponse(card_reply or {})

    return (
        lark.EventDispatcherHandler.builder(EK, VT)
        .register_p2_im_message_receive_v1(on_message)
        .register_p2_card_action_trigger(on_card)
        .build()
    )


def test_signed_encrypted_event_reaches_the_handler() -> None:
    received: list[Any] = []
    handler = _dispatcher(received)
    event = text_message("@_user_1 /stage ACME SQL", chat_type="group", mentions=[("ou_stagebot", "stagebot")])
    body, headers = signed(envelope("im.message.receive_v1", event, token=VT), encrypt_key=EK)

    resp = handler.do(raw_request(body, headers))
    assert resp.status_code == 200, resp.content
    assert json.loads(resp.content) == {"msg": "success"}
    [data] = received
    message = data.event.message
    assert json.loads(message.content) == {"text": "@_user_1 /stage ACME SQL"}
    assert message.mentions[0].key == "@_user_1" and message.mentions[0].id.open_id == "ou_stagebot"
    assert data.event.sender.sender_id.open_id == "ou_alice"
    assert data.header.token == VT


def test_post_message_content_shape() -> None:
    received: list[Any] = []
    event = post_message([["hi ", {"tag": "at", "user_id": "@_user_1", "user_name": "stagebot"}]], title="T")
    body, headers = signed(envelope("im.message.receive_v1", event, token=VT), encrypt_key=EK)
    assert _dispatcher(received).do(raw_request(body, headers)).status_code == 200
    content = json.loads(received[0].event.message.content)
    assert content == {
        "title": "T",
        "content": [[{"tag": "text", "text": "hi "}, {"tag": "at", "user_id": "@_user_1", "user_name": "stagebot"}]],
    }


def test_tampered_or_lower_cased_signature_is_refused() -> None:
    received: list[Any] = []
    handler = _dispatcher(received)
    body, headers = signed(envelope("im.message.receive_v1", text_message("hi"), token=VT), encrypt_key=EK)
    tampered = dict(headers, **{"X-Lark-Signature": "0" * 64})
    assert handler.do(raw_request(body, tampered)).status_code == 500

    body, lower = signed(
        envelope("im.message.receive_v1", text_message("hi"), token=VT), encrypt_key=EK, lower_case_headers=True
    )
    assert "x-lark-signature" in lower
    assert handler.do(raw_request(body, lower)).status_code == 500  # the SDK reads header names by exact case
    assert received == []


def test_url_verification_and_card_callback() -> None:
    received: list[Any] = []
    handler = _dispatcher(received, {"toast": {"type": "success", "content": "ok"}})
    body, headers = signed(url_verification("ch-1", VT), encrypt_key=EK)
    resp = handler.do(raw_request(body, headers))
    assert (resp.status_code, json.loads(resp.content)) == (200, {"challenge": "ch-1"})

    body, headers = signed(envelope("card.action.trigger", card_action({"op": "approve"}), token=VT), encrypt_key=EK)
    resp = handler.do(raw_request(body, headers))
    assert resp.status_code == 200, resp.content
    assert json.loads(resp.content) == {"toast": {"type": "success", "content": "ok"}}
    [data] = received
    assert data.event.action.value == {"op": "approve"}
    assert data.event.operator.open_id == "ou_boss"
    assert data.event.context.open_message_id == "om_1"


def test_plain_unencrypted_event_with_no_encrypt_key() -> None:
    received: list[Any] = []
    handler = lark.EventDispatcherHandler.builder("", VT).register_p2_im_message_receive_v1(received.append).build()
    body, headers = signed(
        envelope("im.message.receive_v1", text_message("hi"), token=VT), encrypt_key="", encrypt=False
    )
    assert handler.do(raw_request(body, headers)).status_code == 200
    assert len(received) == 1


# ---------------------------------------------------------------------------------------------------- long connection


@contextmanager
def running_ws_client(app_id: str, handler: lark.EventDispatcherHandler, domain: str) -> Iterator[lark.ws.Client]:
    """A real lark ws.Client in a daemon thread, on its own event loop; stopped and cleaned up on exit.

    lark-oapi 1.7.5's ws client runs on the module-level `lark_oapi.ws.client.loop` and has no stop(). So the
    thread installs a fresh loop there (restored on exit) and builds the client on it (its ExpiringCache schedules
    a task on the current loop). To stop: turn auto-reconnect off and stop the loop; `start()` then raises
    "Event loop stopped before Future completed" and the thread cancels every task, aborts the socket and closes
    the loop, so no task, socket or loop is left behind.
    """
    import lark_oapi.ws.client as wsc

    original_loop = wsc.loop
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        wsc.loop = loop
        client = lark.ws.Client(app_id, SECRET, event_handler=handler, domain=domain)
        box["client"], box["loop"] = client, loop
        ready.set()
        try:
            client.start()
        except Exception as exc:
            box["error"] = exc
        finally:
            _shutdown(loop, client)
            asyncio.set_event_loop(None)

    thread = threading.Thread(target=run, name="lark-ws-client", daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["client"]
    finally:
        loop: asyncio.AbstractEventLoop = box["loop"]
        box["client"]._auto_reconnect = False
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        wsc.loop = original_loop
        assert not thread.is_alive(), "the lark ws client thread did not stop"
        error = box.get("error")
        assert isinstance(error, RuntimeError) and "stopped" in str(error), error


def _shutdown(loop: asyncio.AbstractEventLoop, client: lark.ws.Client) -> None:
    for _ in range(3):  # tasks may spawn tasks (a dying receive loop schedules a reconnect)
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        conn = client._conn
        if conn is not None:
            conn.transport.abort()
            client._conn = None
        loop.run_until_complete(asyncio.sleep(0.01))  # let connection_lost run
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def _ws_dispatcher(received: list[Any], on_card: Callable[[P2CardActionTrigger], Any] | None = None) -> Any:
    builder = lark.EventDispatcherHandler.builder("", "").register_p2_im_message_receive_v1(received.append)
    if on_card is not None:
        builder = builder.register_p2_card_action_trigger(on_card)
    return builder.build()


def test_long_connection_delivers_events_and_acks(fake: FakeFeishu) -> None:
    received: list[Any] = []

    def on_card(data: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        received.append(data)
        return P2CardActionTriggerResponse({"toast": {"type": "info", "content": "noted"}})

    with FakeLongConnection(fake) as conn, running_ws_client("cli_ws1", _ws_dispatcher(received, on_card), fake.url):
        assert conn.wait_connected(1, timeout=10)
        assert conn.endpoint_calls == 1
        endpoint_call = fake.calls_of("ws_endpoint")[0]
        assert endpoint_call.json == {"AppID": "cli_ws1", "AppSecret": SECRET}

        ack = conn.send_event(envelope("im.message.receive_v1", text_message("/stage ACME SQL"), token=""))
        assert ack == {"code": 200, "data": None}
        assert json.loads(received[0].event.message.content) == {"text": "/stage ACME SQL"}
        assert "biz_rt" in conn.acks[-1].headers

        ack = conn.send_event(envelope("card.action.trigger", card_action({"op": "x"}), token=""))
        assert ack == {"code": 200, "data": {"toast": {"type": "info", "content": "noted"}}}

        big = text_message("multi " * 50)
        assert conn.send_event(envelope("im.message.receive_v1", big, token=""), parts=3) == {"code": 200, "data": None}
        assert json.loads(received[-1].event.message.content)["text"] == "multi " * 50

        dropped = conn.send_event(
            envelope("card.action.trigger", card_action({"op": "y"}), token=""), frame_type="card", timeout=0.5
        )
        assert dropped is None  # the SDK drops "card" frames without an ack

        unregistered = conn.send_event(envelope("contact.user.created_v3", {}, token=""))
        assert unregistered is not None and unregistered["code"] == 500

        assert fake.wait_for(lambda: conn.pings >= 1, timeout=3)  # PingInterval=1 from the endpoint
    assert len(received) == 3


def test_long_connection_silence_and_drop(fake: FakeFeishu) -> None:
    received: list[Any] = []
    with FakeLongConnection(fake) as conn, running_ws_client("cli_ws2", _ws_dispatcher(received), fake.url):
        assert conn.wait_connected(1)
        conn.go_silent()
        pings = conn.pings
        assert conn.send_event(envelope("im.message.receive_v1", text_message("lost"), token=""), timeout=1.2) is None
        assert conn.pings == pings  # nothing read from a half-open connection
        assert conn.open_connections == 1  # and the SDK does not notice

        conn.resume()
        conn.drop()
        assert conn.wait_connected(2, timeout=10)  # the SDK reconnects (ReconnectInterval=1, nonce=0)
        assert conn.endpoint_calls == 2
        ack = conn.send_event(envelope("im.message.receive_v1", text_message("back"), token=""))
        assert ack == {"code": 200, "data": None}

        conn.drop()
        assert conn.wait_connected(3, timeout=10)
        assert conn.send_event(envelope("im.message.receive_v1", text_message("again"), token="")) is not None
    assert [json.loads(r.event.message.content)["text"] for r in received] == ["back", "again"]


def test_replies_to_user_messages(fake: FakeFeishu) -> None:
    client = make_client(fake)

    def reply(message_id: str, text: str) -> Any:
        body = ReplyMessageRequestBody.builder().msg_type("text").content(json.dumps({"text": text})).build()
        return client.im.v1.message.reply(
            ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()
        )

    assert reply("om_user_1", "a").success()  # a message the fake never saw: accepted, chat unknown
    assert (fake.messages[-1].reply_to, fake.messages[-1].chat_id) == ("om_user_1", "")
    fake.note_message("om_user_2", "oc_cs")
    fake.refuse_chat("oc_cs", BOT_NOT_IN_CHAT)
    assert reply("om_user_2", "b").code == 230002
    fake.accept_chat("oc_cs")
    assert reply("om_user_2", "c").success()
    assert fake.messages[-1].chat_id == "oc_cs"
