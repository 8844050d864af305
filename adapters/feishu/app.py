"""The Feishu bot's inbound side: lark-oapi's event dispatcher with our handlers, and the webhook route.

Commands arrive as `im.message.receive_v1` (a direct chat, or @bot in a group, text or rich text);
approvals and handoffs arrive as `card.action.trigger` button presses, answered within the
callback from local state (a toast and the updated card). The same dispatcher serves the webhook
(`POST /feishu/events`) and the long connection (adapters/feishu/longconn.py).

lark-oapi leaves several holes this module closes before a request reaches it (research/feishu.md
§0): header names are canonicalised, the timestamp must be fresh and the nonce new, signature and
verification token are compared in constant time, and an event type without a handler is
acknowledged and ignored instead of answered with a 500 (which Feishu would re-deliver for hours).
Replies to people go back to Feishu on a small pool of our own, never on the request thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

import lark_oapi as lark
from lark_oapi.core.utils.decryptor import AESCipher
from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTriggerResponse

from adapters.common import telemetry
from adapters.common import text as tx
from adapters.common.actions import decode
from adapters.common.dispatch import Answer, Failure, NotAvailable, answer, asks_for_report, run_command
from adapters.common.errors import user_text
from adapters.common.grammar import Help
from adapters.common.team_reports import TeamReports
from adapters.feishu import cards
from adapters.feishu.identity import BotIdentity
from adapters.feishu.parsing import command_text
from adapters.feishu.sender import Sender
from lifecycle.core import Lifecycle
from lifecycle.domain import correlation
from lifecycle.domain.access import Actor
from lifecycle.domain.correlation import CarryingPool
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.views import Outcome, Report

log = logging.getLogger("stagebot.feishu")
PLATFORM = "feishu"
PROBLEM_DAYS = 7
TIMESTAMP_WINDOW = 300  # seconds either side of now, as Slack's replay window
MAX_TEXT = 2000  # a command longer than this is not a command

# Every event type stagebot subscribes to has a handler: lark-oapi answers any other with a 500.
HANDLED = frozenset(
    {
        "im.message.receive_v1",
        "card.action.trigger",
        "im.chat.member.bot.added_v1",
        "im.chat.member.bot.deleted_v1",
        "im.message.message_read_v1",
        "im.message.recalled_v1",
        "im.chat.access_event.bot_p2p_chat_entered_v1",
        "application.bot.menu_v6",
    }
)
# Bot menu items (机器人自定义菜单) whose event_key is one of these run the command shown.
MENU = {"help": "help", "mine": "list --mine", "approvals": "approvals", "handoffs": "handoffs", "list": "list"}
TEAM_REPORT_MENU = "report"  # the clicker's teams' figures, one report card (chart + table) per team

HttpAnswer = tuple[int, dict[str, str], bytes]
_JSON = {"Content-Type": "application/json; charset=utf-8"}

NOT_TEXT = Text(
    "I read text commands only. Type `help` to see them.",
    "我只能识别文字命令。输入 `帮助` 查看全部命令。",
)
ONLY_MENTION = Text(
    "Yes? Type a command after mentioning me, e.g. `@stagebot list --mine`; `help` lists them all.",
    "请在 @我 之后输入命令,例如 `@stagebot 列表 --mine`;输入 `帮助` 查看全部命令。",
)
TOO_LONG = Text(
    f"That message is too long to be a command (over {MAX_TEXT} characters). Type `help` to see the commands.",
    f"消息过长(超过 {MAX_TEXT} 个字符),不是有效命令。输入 `帮助` 查看全部命令。",
)


def _http(status: int, body: dict[str, Any]) -> HttpAnswer:
    return status, dict(_JSON), json.dumps(body, ensure_ascii=False).encode()


class _Nonces:
    """Nonces seen within the timestamp window: a replayed request is recognised, not run twice."""

    def __init__(self, ttl: float, cap: int = 100_000) -> None:
        self.ttl, self.cap = ttl, cap
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, nonce: str, now: float) -> bool:
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.cap):
                self._seen.popitem(last=False)
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


class FeishuBot:
    """Handlers for every subscribed event, and the webhook route that feeds them."""

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
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.lang = lang
        self.on_change = on_change
        self.replies = replies or CarryingPool(max_workers=4, thread_name_prefix="feishu-reply")
        self.identity = BotIdentity(client, self.replies, bot_open_id)
        self.sender = Sender(client, app_id=app_id)
        self.team_reports = TeamReports(core)
        self.wall_clock = wall_clock
        self._nonces = _Nonces(2 * TIMESTAMP_WINDOW)
        self._cipher = AESCipher(encrypt_key) if encrypt_key else None
        self.dispatcher = self._dispatcher()

    # ------------------------------------------------------------ wiring

    def _dispatcher(self) -> lark.EventDispatcherHandler:
        quiet = self._ignore
        return (
            lark.EventDispatcherHandler.builder(self.encrypt_key, self.verification_token, lark.LogLevel.WARNING)
            .register_p2_im_message_receive_v1(self.on_message)
            .register_p2_card_action_trigger(self.on_card_action)
            .register_p2_im_chat_member_bot_added_v1(self.on_bot_added)
            .register_p2_application_bot_menu_v6(self.on_menu)
            .register_p2_im_chat_member_bot_deleted_v1(quiet)
            .register_p2_im_message_message_read_v1(quiet)
            .register_p2_im_message_recalled_v1(quiet)
            .register_p2_im_chat_access_event_bot_p2p_chat_entered_v1(quiet)
            .build()
        )

    def bot_open_id(self) -> str | None:
        """The bot's own open_id, or None while it is unknown (never fetched on the request thread)."""
        return self.identity.open_id()

    def prefetch(self) -> None:
        """Ask Feishu for the bot's identity, off the request path."""
        self.identity.prefetch()

    # ------------------------------------------------------------ webhook

    def webhook(self, raw: bytes, headers: Mapping[str, str], query: str = "") -> HttpAnswer:
        """POST /feishu/events: checks, then lark-oapi's own decrypt, verify and dispatch."""
        h = {k.lower(): v for k, v in headers.items()}
        try:
            outer = json.loads(raw)
        except (ValueError, RecursionError):
            return _http(400, {"error": "body is not JSON"})
        if not isinstance(outer, dict):
            return _http(400, {"error": "body is not a JSON object"})
        if self._cipher is not None:
            if not isinstance(outer.get("encrypt"), str):
                return _http(400, {"error": "expected an encrypted body (an Encrypt Key is configured)"})
            try:
                payload = json.loads(self._cipher.decrypt_str(outer["encrypt"]))
            except (ValueError, UnicodeDecodeError, RecursionError):
                return _http(400, {"error": "cannot decrypt the body: check the Encrypt Key"})
        else:
            payload = outer
        if not isinstance(payload, dict):
            return _http(400, {"error": "event is not a JSON object"})
        header = payload.get("header") if isinstance(payload.get("header"), dict) else {}
        token = header.get("token") if payload.get("schema") == "2.0" else payload.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.verification_token.encode()):
            return _http(401, {"error": "wrong verification token"})
        if payload.get("type") == "url_verification":
            challenge = payload.get("challenge")
            if not isinstance(challenge, str):
                return _http(400, {"error": "url_verification without a challenge"})
            return self._sdk(raw, h)  # unsigned by design (research §2.3); the SDK answers the challenge
        refusal = self._check_signature(raw, h)
        if refusal is not None:
            return refusal
        event_type = header.get("event_type")
        if payload.get("schema") != "2.0" or event_type not in HANDLED:
            log.info("Feishu event %r ignored: stagebot does not subscribe to it", event_type)
            return _http(200, {"msg": f"ignored: stagebot does not handle {event_type or 'v1 events'}"})
        if event_type == "card.action.trigger":
            action = (payload.get("event") or {}).get("action") if isinstance(payload.get("event"), dict) else None
            if not isinstance(action, dict) or not isinstance(action.get("value"), dict):
                # lark-oapi cannot read a string value (it would answer 500): the button is not ours.
                stale = Text("This button is not from stagebot, or is damaged.", "这个按钮不是 stagebot 的,或已损坏。")
                return _http(200, {"toast": cards.toast("error", stale, self.lang)})
        return self._sdk(raw, h)

    def _check_signature(self, raw: bytes, h: Mapping[str, str]) -> HttpAnswer | None:
        names = ("x-lark-request-timestamp", "x-lark-request-nonce", "x-lark-signature")
        ts, nonce, sig = (h.get(k, "") for k in names)
        if not (ts and nonce and sig):
            return _http(401, {"error": "missing X-Lark-Request-Timestamp, -Nonce or X-Lark-Signature"})
        try:
            age = abs(self.wall_clock() - int(ts))
        except ValueError:
            return _http(401, {"error": "bad X-Lark-Request-Timestamp"})
        if age > TIMESTAMP_WINDOW:
            return _http(401, {"error": "stale request: the timestamp is more than 5 minutes away"})
        expected = hashlib.sha256((ts + nonce + self.encrypt_key).encode() + raw).hexdigest()
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return _http(401, {"error": "bad signature"})
        if not self._nonces.first(f"{ts}:{nonce}", self.wall_clock()):
            return _http(200, {"msg": "duplicate request ignored"})
        return None

    def _sdk(self, raw: bytes, h: Mapping[str, str]) -> HttpAnswer:
        req = lark.RawRequest()
        req.uri = "/feishu/events"
        req.body = raw
        # lark-oapi reads these by exact case (research §0.5).
        req.headers = {
            "X-Lark-Request-Timestamp": h.get("x-lark-request-timestamp", ""),
            "X-Lark-Request-Nonce": h.get("x-lark-request-nonce", ""),
            "X-Lark-Signature": h.get("x-lark-signature", ""),
            "Content-Type": h.get("content-type", "application/json"),
        }
        resp = self.dispatcher.do(req)
        if resp.status_code >= 500:
            # Our handlers answer their own errors, so this is a request the SDK could not read.
            log.warning("Feishu request refused by lark-oapi: %s", (resp.content or b"")[:200])
            return _http(400, {"error": "malformed request"})
        out = {k: v for k, v in (resp.headers or {}).items() if k.lower() == "content-type"} or dict(_JSON)
        return resp.status_code, out, resp.content or b""

    # ------------------------------------------------------------ handlers

    def _ignore(self, data: Any) -> None:
        header = getattr(data, "header", None)
        log.debug("Feishu event %s acknowledged", getattr(header, "event_type", "?"))

    def on_message(self, data: Any) -> None:
        """A command typed to the bot: dedupe, parse, run, reply to the person off-thread."""
        try:
            with correlation.ensured():  # the webhook's id, or a fresh one over the long connection
                self._on_message(data)
        except Exception:  # never a 500: Feishu would re-deliver it for hours
            log.exception("could not handle a Feishu message")

    def _on_message(self, data: Any) -> None:
        event, header = data.event, data.header
        m, sender = event.message, event.sender
        if m is None or sender is None or sender.sender_type not in (None, "user"):
            return
        open_id = (sender.sender_id.open_id if sender.sender_id else None) or ""
        # Feishu re-delivers for hours, sometimes with a new event_id for the same message.
        if not self.core.first_delivery(f"feishu:event:{header.event_id}"):
            return
        if m.message_id and not self.core.first_delivery(f"feishu:message:{m.message_id}"):
            return
        group = m.chat_type in ("group", "topic_group")
        line, addressed = command_text(m, self.bot_open_id(), group=group)
        if not addressed:
            return  # a group message that mentions someone else, not the bot
        actor = Actor(PLATFORM, open_id)
        reply: cards.Card
        if line is None:
            reply = cards.error_card(NOT_TEXT, self.lang)
        elif not line:
            reply = cards.help_card(None, self.lang, extra=ONLY_MENTION)
        elif len(line) > MAX_TEXT:
            reply = cards.error_card(TOO_LONG, self.lang)
        elif asks_for_report(self.core, line, actor):
            # It reads the whole history (most of a second over a million rows), and Feishu wants
            # the event answered within 3 seconds: made, drawn and sent off the request thread.
            self.replies.submit(self._answer_report, line, actor, m.message_id, group)
            return
        else:
            ans = answer(self.core, line, actor=actor, key=f"feishu:cmd:{m.message_id}", via=PLATFORM, lang=self.lang)
            reply = self.render(ans, actor)
            if isinstance(ans, Outcome) and not ans.replayed:
                self.on_change()
        self.replies.submit(self.sender.reply, m.message_id, reply, group)

    def render(self, ans: Answer, actor: Actor | None = None) -> cards.Card:
        if isinstance(ans, Failure | NotAvailable):
            return cards.error_card(ans.text or Text(ans.message, ans.message), self.lang)
        if isinstance(ans, Help):
            extra = self._delivery_problems() if actor and self.core.rules.roster.is_admin(actor) else None
            return cards.help_card(ans.topic, self.lang, extra=extra)
        return cards.reply(ans, self.core.pipeline, self.lang)

    def _delivery_problems(self) -> Text | None:
        """Admins asking for help also see notifications Feishu refused, and why."""
        since = self.core.clock.now() - timedelta(days=PROBLEM_DAYS)
        problems = self.core.delivery_problems(PLATFORM, since=since)
        if not problems:
            return None
        lines = "\n".join(f"• {p.count} × {p.error}" for p in problems)
        return Text(
            f"⚠ Notifications Feishu refused in the last {PROBLEM_DAYS} days (fix the chat or the app in the config):\n"
            + lines,
            f"⚠ 最近 {PROBLEM_DAYS} 天飞书拒收的通知(请检查配置中的群聊或应用权限):\n" + lines,
        )

    def on_card_action(self, data: Any) -> P2CardActionTriggerResponse:
        """A button press, answered from local state: a toast, and the updated card when something changed."""
        try:
            with correlation.ensured():
                body = self._on_card_action(data)
        except Exception as exc:
            body = {"toast": cards.toast("error", user_text(exc, context="Feishu card action"), self.lang)}
        # Plain dicts only: lark-oapi cannot marshal its own model objects inside this dict (research §0.8).
        return P2CardActionTriggerResponse(body)

    def _on_card_action(self, data: Any) -> dict[str, Any]:
        event, header = data.event, data.header
        open_id = (event.operator.open_id if event.operator else None) or ""
        actor = Actor(PLATFORM, open_id)
        value = event.action.value if event.action else None
        # Each press has its own event_id: a double press is two presses (the second is told the
        # approval was already decided); a re-delivered press replays the first answer.
        key = f"feishu:card:{header.event_id}"
        try:
            result = run_command(decode(value or "", actor=actor, key=key, via=PLATFORM), self.core)
        except Exception as exc:
            telemetry.answered(PLATFORM, "button", None, failed=True, bug=not isinstance(exc, LifecycleError))
            return {"toast": cards.toast("error", user_text(exc, context=f"button from {actor.ref}"), self.lang)}
        telemetry.answered(PLATFORM, "button", result)
        if isinstance(result, Outcome):
            said = cards.both(lambda lg: tx.outcome(result, self.core.pipeline, lg))
            if result.replayed:
                return {"toast": cards.toast("info", said, self.lang)}
            self.on_change()
            out: dict[str, Any] = {"toast": cards.toast("success", said, self.lang)}
            if result.kind in ("approved", "rejected", "claimed"):
                card = cards.decision_from_outcome(result, self.core.pipeline, self.lang, by=actor.ref)
                out["card"] = {"type": "raw", "data": card}
            return out
        shown = cards.reply(result, self.core.pipeline, self.lang)
        return {"toast": cards.toast("info", cards.card_summary(shown), self.lang)}

    def on_bot_added(self, data: Any) -> None:
        """Added to a group: say which chat id to put in the config, so its team's notifications come here."""
        chat_id = getattr(data.event, "chat_id", None)
        if not chat_id:
            return
        say = Text(
            f'stagebot is here. To send a team\'s notifications to this chat, set feishu_chat = "{chat_id}" '
            "under that team in stagebot.toml. Type @stagebot help for the commands.",
            "stagebot 已加入。若要把某个团队的通知发到本群,"
            f'请在 stagebot.toml 中该团队下设置 feishu_chat = "{chat_id}"。@stagebot 帮助 查看全部命令。',
        )
        card = cards.card(Text("stagebot", "stagebot"), [say], lang=self.lang, template="grey")
        self.replies.submit(self.sender.send, "chat_id", chat_id, card, f"joined-{data.header.event_id}")

    def on_menu(self, data: Any) -> None:
        """A bot-menu click (no chat id in it): run the mapped command and answer the clicker directly."""
        try:
            with correlation.ensured():
                self._on_menu(data)
        except Exception:
            log.exception("could not handle a Feishu bot-menu click")

    def _on_menu(self, data: Any) -> None:
        event = data.event
        op = event.operator.operator_id if event.operator else None
        open_id = getattr(op, "open_id", None)
        key = str(event.event_key or "")
        line = MENU.get(key)
        if not open_id or (line is None and key != TEAM_REPORT_MENU):
            return
        actor = Actor(PLATFORM, open_id)
        if line is None:
            self.replies.submit(self._send_team_reports, actor, f"menu-{data.header.event_id}")
            return
        ans = answer(
            self.core, line, actor=actor, key=f"feishu:menu:{data.header.event_id}", via=PLATFORM, lang=self.lang
        )
        self.replies.submit(
            self.sender.send, "open_id", open_id, self.render(ans, actor), f"menu-{data.header.event_id}"
        )

    # ------------------------------------------------------------ talking back

    def _answer_report(self, line: str, actor: Actor, message_id: str, in_thread: bool) -> None:
        """The report asked for by a message, as one card (or what was wrong with the request)."""
        ans = answer(self.core, line, actor=actor, key=f"feishu:cmd:{message_id}", via=PLATFORM, lang=self.lang)
        card = self._report_card(ans) if isinstance(ans, Report) else self.render(ans, actor)
        self.sender.reply(message_id, card, in_thread)

    def _send_team_reports(self, actor: Actor, ident: str) -> None:
        for n, r in enumerate(self.team_reports.for_person(actor)):
            self.sender.send("open_id", actor.user_id, self._report_card(r), f"{ident}-{n}")

    def _report_card(self, r: Report) -> cards.Card:
        return cards.report_card(r, self.core.pipeline, self.lang, image_key=self._upload_chart(r))

    def _upload_chart(self, r: Report) -> str | None:
        """Draw the chart and upload it as a message image; its image_key, or None if that failed."""
        from adapters.common.charts import ChartsUnavailable, report_png

        try:
            png = report_png(r, self.core.pipeline, self.lang)
        except ChartsUnavailable as exc:
            log.warning("charts are not available: %s", exc)
            return None
        except Exception:
            log.exception("could not draw a report chart")
            return None
        return self.sender.upload_image(png)
