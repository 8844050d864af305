"""The Feishu adapter's wiring: lark-oapi's event dispatcher with our listeners, and the webhook route.

Commands arrive as `im.message.receive_v1` (a direct chat, or @bot in a group, text or rich text);
approvals and handoffs arrive as `card.action.trigger` button presses, answered within the
callback from local state. The same dispatcher serves the webhook (`POST /feishu/events`,
webhook.py) and the long connection (longconn.py). The jobs live beside this module: webhook.py
(request checks), envelope.py (what a well-formed event looks like), listeners.py (what each event
does), parsing.py (the command in a message), sender.py (answers going out), identity.py (the
bot's own open_id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from types import MappingProxyType
from typing import Any

import lark_oapi as lark
from lark_oapi.api.application.v6 import P2ApplicationBotMenuV6
from lark_oapi.api.im.v1 import (
    P2ImChatAccessEventBotP2pChatEnteredV1,
    P2ImChatMemberBotAddedV1,
    P2ImChatMemberBotDeletedV1,
    P2ImMessageMessageReadV1,
    P2ImMessageRecalledV1,
    P2ImMessageReceiveV1,
)
from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTrigger

from adapters.feishu.identity import BotIdentity
from adapters.feishu.listeners import Listeners
from adapters.feishu.sender import Sender
from adapters.feishu.webhook import HttpAnswer, Webhook
from lifecycle.core import Lifecycle
from lifecycle.domain.correlation import CarryingPool
from lifecycle.domain.i18n import Lang

# Every event type stagebot subscribes to has a listener (see `dispatcher`): lark-oapi answers any
# other with a 500, so the webhook acknowledges and ignores the rest. Each maps to the model the
# SDK's dispatcher builds from it, which the webhook builds first: a request it cannot read is
# refused with a 400 naming the field, before lark-oapi fails on it (envelope.py).
HANDLED: Mapping[str, Callable[[dict[str, Any]], Any]] = MappingProxyType(
    {
        "im.message.receive_v1": P2ImMessageReceiveV1,
        "card.action.trigger": P2CardActionTrigger,
        "im.chat.member.bot.added_v1": P2ImChatMemberBotAddedV1,
        "im.chat.member.bot.deleted_v1": P2ImChatMemberBotDeletedV1,
        "im.message.message_read_v1": P2ImMessageMessageReadV1,
        "im.message.recalled_v1": P2ImMessageRecalledV1,
        "im.chat.access_event.bot_p2p_chat_entered_v1": P2ImChatAccessEventBotP2pChatEnteredV1,
        "application.bot.menu_v6": P2ApplicationBotMenuV6,
    }
)


class FeishuBot:
    """The pieces of the Feishu adapter, built and joined: the dispatcher the webhook and the long
    connection feed, the listeners it calls, and the sender and identity they use."""

    def __init__(
        self,
        core: Lifecycle,
        *,
        client: lark.Client,
        app_id: str = "",
        verification_token: str,
        encrypt_key: str,
        lang: Lang = "en",
        bot_open_id: str | None = None,
        on_change: Callable[[], None] = lambda: None,
        replies: Executor | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.client = client
        self.app_id = app_id
        self.lang = lang
        # Replies to people go back to Feishu on a small pool of our own, never on the request thread.
        self.replies = replies or CarryingPool(max_workers=4, thread_name_prefix="feishu-reply")
        self.identity = BotIdentity(client, self.replies, bot_open_id)
        self.sender = Sender(client, app_id=app_id)
        self.listeners = Listeners(
            core,
            sender=self.sender,
            bot_open_id=self.identity.open_id,
            replies=self.replies,
            lang=lang,
            on_change=on_change,
        )
        self.dispatcher = dispatcher(self.listeners, verification_token=verification_token, encrypt_key=encrypt_key)
        self._webhook = Webhook(
            self.dispatcher,
            handled=HANDLED,
            verification_token=verification_token,
            encrypt_key=encrypt_key,
            lang=lang,
            wall_clock=wall_clock,
        )

    def webhook(self, raw: bytes, headers: Mapping[str, str], query: str = "") -> HttpAnswer:
        """POST /feishu/events: checks, then lark-oapi's own decrypt, verify and dispatch."""
        return self._webhook.handle(raw, headers, query)

    def bot_open_id(self) -> str | None:
        """The bot's own open_id, or None while it is unknown (never fetched on the request thread)."""
        return self.identity.open_id()

    def prefetch(self) -> None:
        """Ask Feishu for the bot's identity, off the request path."""
        self.identity.prefetch()


def dispatcher(listeners: Listeners, *, verification_token: str, encrypt_key: str) -> lark.EventDispatcherHandler:
    """lark-oapi's dispatcher with a listener for every type in HANDLED."""
    quiet = listeners.ignore
    return (
        lark.EventDispatcherHandler.builder(encrypt_key, verification_token, lark.LogLevel.WARNING)
        .register_p2_im_message_receive_v1(listeners.on_message)
        .register_p2_card_action_trigger(listeners.on_card_action)
        .register_p2_im_chat_member_bot_added_v1(listeners.on_bot_added)
        .register_p2_application_bot_menu_v6(listeners.on_menu)
        .register_p2_im_chat_member_bot_deleted_v1(quiet)
        .register_p2_im_message_message_read_v1(quiet)
        .register_p2_im_message_recalled_v1(quiet)
        .register_p2_im_chat_access_event_bot_p2p_chat_entered_v1(quiet)
        .build()
    )
