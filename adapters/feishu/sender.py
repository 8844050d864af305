"""Answers to people going out to Feishu: replies and direct messages with deterministic uuids, a
card Feishu refuses sent again as plain text, image upload, and one retry on a rejected tenant token."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from typing import Any

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)

from adapters.feishu import cards
from adapters.feishu.notifier import TOKEN_REJECTED, forget_token

log = logging.getLogger("stagebot.feishu")


class Sender:
    """Sends cards (or, where refused, their text) and images with the app's tenant token."""

    def __init__(self, client: lark.Client, *, app_id: str = "") -> None:
        self.client = client
        self.app_id = app_id

    def reply(self, message_id: str, card: cards.Card, in_thread: bool) -> bool:
        """Answer the message `message_id` (in its thread when asked); whether it arrived."""

        def send(msg_type: str, content: str, uuid: str) -> Any:
            body = (
                ReplyMessageRequestBody.builder()
                .msg_type(msg_type)
                .content(content)
                .reply_in_thread(in_thread)
                .uuid(uuid)
                .build()
            )
            req = ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()
            return self.client.im.v1.message.reply(req)

        return self._deliver(send, card, message_uuid("reply", message_id), f"reply to {message_id}")

    def send(self, id_type: str, receive_id: str, card: cards.Card, ident: str) -> bool:
        """A new message to a chat or person (`id_type` "chat_id" or "open_id"); `ident` names it
        for its uuid, so sending it again posts nothing new. Whether it arrived."""

        def send(msg_type: str, content: str, uuid: str) -> Any:
            body = (
                CreateMessageRequestBody.builder()
                .receive_id(receive_id)
                .msg_type(msg_type)
                .content(content)
                .uuid(uuid)
                .build()
            )
            req = CreateMessageRequest.builder().receive_id_type(id_type).request_body(body).build()
            return self.client.im.v1.message.create(req)

        return self._deliver(send, card, message_uuid("send", ident), f"message to {receive_id}")

    def upload_image(self, png: bytes) -> str | None:
        """Upload a PNG as a message image (im/v1/images); its image_key, or None if that failed."""

        def upload() -> Any:
            image = io.BytesIO(png)  # a fresh stream per try: a retry must send the bytes again
            image.name = "stagebot-report.png"  # requests names the multipart part after it; Feishu wants one
            body = CreateImageRequestBody.builder().image_type("message").image(image).build()
            return self.client.im.v1.image.create(CreateImageRequest.builder().request_body(body).build())

        resp = self._call(upload, "image upload")
        return str(resp.data.image_key) if resp is not None and resp.data and resp.data.image_key else None

    def _deliver(self, send: Callable[[str, str, str], Any], card: cards.Card, uuid: str, what: str) -> bool:
        """The card; where Feishu refuses it (230025 too large, 230099 cannot be built, ...), the same
        answer as plain text; where that is refused too, an ERROR with Feishu's codes. Whether it arrived."""
        resp, refused = self._attempt(lambda: send("interactive", cards.content(card), uuid))
        if resp is not None:
            return True
        log.warning("Feishu refused the card of a %s (%s): sending it as text", what, refused)
        # Its own uuid: Feishu sends one message per uuid, and the refused card may have used this one.
        text = cards.text_message(cards.card_text(card))
        resp, again = self._attempt(lambda: send("text", text, uuid[:49] + "t"))
        if resp is not None:
            return True
        log.error("Feishu refused a %s, as a card (%s) and as text (%s)", what, refused, again)
        return False

    def _call(self, send: Callable[[], Any], what: str) -> Any:
        """Send once (again with a fresh tenant token if Feishu rejected ours); the successful
        response, or None (logged) when it failed."""
        resp, refused = self._attempt(send)
        if resp is None:
            log.warning("Feishu %s failed: %s", what, refused)
        return resp

    def _attempt(self, send: Callable[[], Any]) -> tuple[Any, str]:
        """(the successful response, "") or (None, why not: Feishu's code, message and log id, or
        the exception's type), trying again once with a fresh tenant token if Feishu rejected ours."""
        for attempt in (1, 2):
            try:
                resp = send()
            except Exception as exc:
                return None, type(exc).__name__
            if resp.success():
                return resp, ""
            if resp.code in TOKEN_REJECTED and attempt == 1:
                forget_token(self.app_id)  # lark-oapi never drops a rejected token by itself
                continue
            return None, f"code {resp.code} {resp.msg} (log id {resp.get_log_id()})"
        return None, "the tenant token was rejected twice"


def message_uuid(kind: str, ident: str) -> str:
    """A deterministic message uuid (≤50 chars): Feishu sends one message per uuid per hour."""
    return f"{kind}-" + hashlib.sha256(ident.encode()).hexdigest()[:40]
