"""What stagebot does with each Feishu event: a message, a bot-menu click, a card button, being
added to a group. Each dedupes, parses, calls the core, renders with `cards` and hands the answer
to the sender, off the request thread where it may be slow; none ever raises into lark-oapi."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTriggerResponse

from adapters.common import telemetry
from adapters.common import text as tx
from adapters.common.actions import decode
from adapters.common.dispatch import Answer, Failure, NotAvailable, answer, asks_for_report, run_command
from adapters.common.errors import user_text
from adapters.common.grammar import Help
from adapters.common.team_reports import TeamReports
from adapters.feishu import cards
from adapters.feishu.parsing import command_text
from adapters.feishu.sender import Sender
from lifecycle.core import Lifecycle
from lifecycle.domain import correlation
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.views import Outcome, Report

log = logging.getLogger("stagebot.feishu")
PLATFORM = "feishu"
PROBLEM_DAYS = 7
MAX_TEXT = 2000  # a command longer than this is not a command

# Bot menu items (机器人自定义菜单) whose event_key is one of these run the command shown.
MENU = {"help": "help", "mine": "list --mine", "approvals": "approvals", "handoffs": "handoffs", "list": "list"}
TEAM_REPORT_MENU = "report"  # the clicker's teams' figures, one report card (chart + table) per team

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


class Listeners:
    """The handlers lark-oapi's dispatcher calls, one per event type stagebot acts on."""

    def __init__(
        self,
        core: Lifecycle,
        *,
        sender: Sender,
        bot_open_id: Callable[[], str | None],
        replies: Executor,
        lang: Lang = "en",
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.core = core
        self.sender = sender
        self.bot_open_id = bot_open_id
        self.replies = replies
        self.lang = lang
        self.on_change = on_change
        self.team_reports = TeamReports(core)

    def ignore(self, data: Any) -> None:
        """An event stagebot subscribes to but does not act on: acknowledged, so never re-delivered."""
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
        try:
            with correlation.ensured():
                self._on_bot_added(data)
        except Exception:  # never into lark-oapi: it would log its own traceback and answer 500
            log.exception("could not handle the bot being added to a Feishu group")

    def _on_bot_added(self, data: Any) -> None:
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
        return cards.report_card(r, self.core.pipeline, self.lang, image_key=self._chart(r))

    def _chart(self, r: Report) -> str | None:
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
