"""The composition root: builds the database, rules, core and dispatcher from settings.

Nothing is built at import time; tests call `build(...)` with their own clock and notifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Settings
from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import Dispatcher, Notifier
from lifecycle.domain.clock import Clock, SystemClock
from lifecycle.domain.rules import Rules


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
    notifiers: Mapping[str, Notifier],
    clock: Clock | None = None,
    delivery_clock: Clock | None = None,
    extra_admins: tuple[str, ...] = (),
    migrate: bool = True,
) -> App:
    """Wire one running stagebot: events are written for, and delivered to, `notifiers`' targets.

    `clock` is the core's: it decides what is due (a simulated instant for `jobs run --now`).
    Delivery (retries, leases, pacing) always runs on `delivery_clock`, the wall clock unless a
    test sets one, so nothing a simulated run writes can hold a delivery past real time.
    """
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    db = Database(engine)
    rules = Rules(
        settings.pipeline,
        settings.roster(extra_admins=extra_admins),
        targets=tuple(notifiers),
        usage_signals=tuple(settings.config.signals.usage),
    )
    core = Lifecycle(db, rules, clock)
    return App(settings, db, core, Dispatcher(db, notifiers, delivery_clock or SystemClock()))
