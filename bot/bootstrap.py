"""The composition root: builds the database, the chat clients and notifiers, the rules, the core
and the dispatcher from settings, in that order. Nothing is built at import time; tests call
`build(...)` with their own clock and notifiers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot import logs
from bot.config import Settings
from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import Dispatcher, Notifier, PostedCard, posted_card
from lifecycle.domain.clock import Clock, SystemClock
from lifecycle.domain.rules import Rules


def slack_client(settings: Settings) -> Any:
    """slack_sdk's WebClient for the bot token, at `[slack] api_url`."""
    from slack_sdk import WebClient

    return WebClient(token=settings.secret("SLACK_BOT_TOKEN"), base_url=settings.config.slack.api_url, timeout=10)


def feishu_client(settings: Settings) -> Any:
    """lark-oapi's client. Imported here, only when Feishu is enabled: the import costs seconds and 100+ MB."""
    import lark_oapi as lark

    logs.adopt("Lark")  # lark-oapi's own stdout handler out: its records go through ours (JSON, masking, level)
    return (
        lark.Client.builder()
        .app_id(settings.secret("FEISHU_APP_ID") or "")
        .app_secret(settings.secret("FEISHU_APP_SECRET") or "")
        .domain(settings.config.feishu.domain)
        .timeout(10)
        .log_level(lark.LogLevel.WARNING)
        .build()
    )


def chat_notifiers(settings: Settings, db: Database) -> dict[str, Notifier]:
    """The notifiers of the chat platforms the config enables. Posted cards are looked up in `db`,
    and channels are paced there, so every replica and the console share one pace per channel."""
    from lifecycle.delivery.pacing import SharedPacer

    def lookup(target: str, subject: str) -> PostedCard | None:
        return posted_card(db, target, subject)

    notifiers: dict[str, Notifier] = {}
    if settings.config.slack.enabled:
        from adapters.slack.notifier import SLACK_INTERVAL, SlackNotifier

        notifiers["slack"] = SlackNotifier(
            slack_client(settings),
            settings.pipeline,
            settings.channels("slack"),
            lookup=lookup,
            lang=settings.config.bot.language,
            pacer=SharedPacer(db, "slack", SLACK_INTERVAL),
        )
    if settings.config.feishu.enabled:
        from adapters.feishu.notifier import FEISHU_INTERVAL, FeishuNotifier

        notifiers["feishu"] = FeishuNotifier(
            feishu_client(settings),
            settings.pipeline,
            settings.channels("feishu"),
            app_id=settings.secret("FEISHU_APP_ID") or "",
            lookup=lookup,
            lang=settings.config.bot.language,
            pacer=SharedPacer(db, "feishu", FEISHU_INTERVAL),
        )
    return notifiers


@dataclass
class App:
    settings: Settings
    db: Database
    core: Lifecycle
    dispatcher: Dispatcher

    def close(self) -> None:
        self.db.dispose()


def build(
    settings: Settings,
    *,
    notifiers: Mapping[str, Notifier] = {},
    chats: bool = False,
    clock: Clock | None = None,
    delivery_clock: Clock | None = None,
    extra_admins: tuple[str, ...] = (),
    migrate: bool = True,
) -> App:
    """Wire one running stagebot, in order: the database, the notifiers, the rules, the core and
    the dispatcher. Events are written for, and delivered to, `notifiers` plus (with `chats`) the
    chat platforms the config enables.

    `clock` is the core's: it decides what is due (a simulated instant for `jobs run --now`).
    Delivery (retries, leases, pacing) always runs on `delivery_clock`, the wall clock unless a
    test sets one, so nothing a simulated run writes can hold a delivery past real time.
    """
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    db = Database(engine)
    notifiers = {**notifiers, **(chat_notifiers(settings, db) if chats else {})}
    rules = Rules(
        settings.pipeline,
        settings.roster(extra_admins=extra_admins),
        targets=tuple(notifiers),
        usage_signals=tuple(settings.config.signals.usage),
    )
    core = Lifecycle(db, rules, clock)
    return App(settings, db, core, Dispatcher(db, notifiers, delivery_clock or SystemClock()))
