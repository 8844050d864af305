"""Delivers domain events to Feishu group chats: cards, in-place updates, pacing, error mapping.

Called by the outbox dispatcher. Each message carries a `uuid` derived from the delivery and the
chat, so a retry after a lost answer cannot post twice (Feishu keeps one message per uuid for an
hour). Per chat it keeps under Feishu's 5 messages a second by deferring, not sleeping. Rate
limits (230020, 11232, 99991400) are retried after `x-ogw-ratelimit-reset`; a rejected tenant
token is dropped from lark-oapi's cache and the send tried once more at once; errors retrying
cannot fix (bot not in the chat, chat disbanded, no permission) fail for good and stay visible to
admins (`check-config`, `help`). A card Feishu refuses to build is sent as plain text instead.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    PatchMessageRequest,
    PatchMessageRequestBody,
)
from lark_oapi.core.token.manager import TokenManager

from adapters.common import text as tx
from adapters.common.fanout import TeamNotifier, shown_handoff, shown_request
from adapters.common.pacing import APP, Pacer, Pacing
from adapters.feishu import cards
from lifecycle.delivery.outbox import Delivery, DeliveryError, Posted, PostedCard
from lifecycle.domain import events as ev
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.pipeline import Pipeline

log = logging.getLogger("stagebot.feishu.notifier")
TARGET = "feishu"
FEISHU_INTERVAL = 0.25  # seconds between messages to one chat (Feishu allows 5 a second per chat)

RATE_LIMITED = frozenset({230020, 11232, 99991400})
TOKEN_REJECTED = frozenset({99991661, 99991663, 99991664, 99991665, 99991668})
# Retrying cannot fix these: the chat, the app's permissions or its availability are wrong.
PERMANENT = {
    230002: "the bot is not in the chat",
    230013: "the chat or user is outside the app's availability",
    230027: "the app lacks a permission (scope)",
    232009: "the chat has been disbanded",
    232010: "the chat is not found",
    230006: "the bot capability is not enabled",
    99991672: "the app lacks a permission (scope)",
}
CARD_REFUSED = frozenset({230099, 230025, 230001})  # the card itself: fall back to plain text


def forget_token(app_id: str) -> None:
    """Drop the app's cached tenant token so the next call fetches a new one.

    lark-oapi caches the token process-wide and never drops it on rejection (research §0.11).
    """
    TokenManager.cache.set(f"self_tenant_token:{app_id}", "", 0)


class FeishuNotifier(TeamNotifier):
    target = TARGET

    def __init__(
        self,
        client: lark.Client,
        pipeline: Pipeline,
        chats: Mapping[str, str],
        *,
        app_id: str,
        lookup: Callable[[str, str], PostedCard | None],
        lang: Lang = "en",
        min_interval: float = FEISHU_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacing | None = None,
    ) -> None:
        """`chats` maps team keys to chat ids (oc_…); `lookup(target, subject)` finds a posted card."""
        self.client = client
        self.pipeline = pipeline
        self.chats = dict(chats)
        self.app_id = app_id
        self.lookup = lookup
        self.lang = lang
        self.pacer: Pacing = pacer or Pacer(min_interval, clock)  # serve passes the shared one

    def places(self) -> Mapping[str, str]:
        return self.chats

    def poster(self, delivery: Delivery) -> Callable[[str, list[Posted]], Posted]:
        e = delivery.event
        card = cards.notification(e, self.pipeline, self.lang)

        def post(chat: str, posted: list[Posted]) -> Posted:
            uuid = "sb-" + hashlib.sha256(f"{delivery.delivery_key}:{chat}".encode()).hexdigest()[:40]
            resp = self._send(partial(self._create, chat, "interactive", cards.content(card), uuid), chat, posted)
            if not resp.success() and resp.code in CARD_REFUSED:
                log.warning("Feishu refused a card for %s (code %s); sending it as text", chat, resp.code)
                plain = cards.text_message(
                    Text(tx.notification(e, self.pipeline, "en"), tx.notification(e, self.pipeline, "zh"))
                )
                resp = self._send(partial(self._create, chat, "text", plain, uuid + "t"), chat, posted)
            if not resp.success():
                raise self._error(resp, chat, posted)
            return Posted(channel=chat, message_id=str(getattr(resp.data, "message_id", "") or ""))

        return post

    def _create(self, chat: str, msg_type: str, content: str, uuid: str) -> Any:
        body = (
            CreateMessageRequestBody.builder().receive_id(chat).msg_type(msg_type).content(content).uuid(uuid).build()
        )
        req = CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body).build()
        return self.client.im.v1.message.create(req)

    def _update_card(self, delivery: Delivery) -> Iterable[Posted]:
        e = delivery.event
        posted_card = self.lookup(TARGET, e.subject)
        if posted_card is None or not posted_card.message_id:
            return ()  # the card was never posted to Feishu (no chat, or posted elsewhere)
        shown = posted_card.event
        if isinstance(e, ev.ApprovalDecided):
            card = cards.decided(e, self.pipeline, self.lang, requested=shown_request(shown))
        else:
            assert isinstance(e, ev.HandoffClaimed)
            card = cards.claimed(e, self.pipeline, self.lang, opened=shown_handoff(shown))
        body = PatchMessageRequestBody.builder().content(cards.content(card)).build()
        req = PatchMessageRequest.builder().message_id(posted_card.message_id).request_body(body).build()
        resp = self._send(lambda: self.client.im.v1.message.patch(req), posted_card.channel, [])
        if not resp.success():
            raise self._error(resp, posted_card.channel, [])
        return ()

    def _send(self, call: Callable[[], Any], chat: str, posted: list[Posted]) -> Any:
        """One API call; a rejected token is dropped and the call made once more with a fresh one."""
        for attempt in (1, 2):
            try:
                resp = call()
            except Exception as exc:  # network errors, a non-JSON answer (a 502 page), a token failure
                raise DeliveryError(f"{chat}: {type(exc).__name__}", posted=posted, code="connection") from None
            if resp.success() or resp.code not in TOKEN_REJECTED or attempt == 2:
                return resp
            log.warning("Feishu rejected the tenant access token (code %s); fetching a new one", resp.code)
            self.forget_token()
        raise AssertionError("unreachable")  # pragma: no cover

    def forget_token(self) -> None:
        forget_token(self.app_id)

    def _error(self, resp: Any, chat: str, posted: list[Posted]) -> DeliveryError:
        code = resp.code
        log_id = resp.get_log_id() if hasattr(resp, "get_log_id") else None
        if code in RATE_LIMITED or getattr(resp.raw, "status_code", 0) == 429:
            headers = {k.lower(): v for k, v in ((resp.raw.headers if resp.raw else None) or {}).items()}
            try:
                after = float(headers.get("x-ogw-ratelimit-reset", "1"))
            except ValueError:
                after = 1.0
            after = max(after, 0.2)
            # 99991400 is the app's gateway limit; 230020 and 11232 limit this one chat.
            self.pacer.hold(APP if code == 99991400 or code not in RATE_LIMITED else chat, after)
            return DeliveryError(f"{chat}: rate limited ({code})", retry_after=after, posted=posted, code=str(code))
        if code in PERMANENT:
            log.error(
                "Feishu refuses to post to %s: %s (code %s, log id %s); not retried",
                chat,
                PERMANENT[code],
                code,
                log_id,
            )
            return DeliveryError(f"{chat}: {code} {PERMANENT[code]}", permanent=True, posted=posted, code=str(code))
        if code in CARD_REFUSED:
            return DeliveryError(
                f"{chat}: {code} message refused: {resp.msg}", permanent=True, posted=posted, code=str(code)
            )
        log.warning("Feishu error for %s: code %s %s (log id %s); will retry", chat, code, resp.msg, log_id)
        return DeliveryError(f"{chat}: code {code}", posted=posted, code=str(code))
