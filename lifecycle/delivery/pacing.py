"""Per-channel pacing shared by every replica, in the database: one sending slot per channel per
interval, and rate-limit holds that every replica honours.

The notifiers ask `take(channel)` before each post. Outside the channel's slot (or while a rate
limit holds the channel or the whole app) it raises `DeliveryDeferred` with the wait and the
dispatcher retries that delivery when due, counting no attempt. Two replicas asking for the same
slot at once race on one conditional upsert; exactly one wins. Times are wall-clock epoch seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import case, select

from lifecycle.db.engine import upsert
from lifecycle.db.tables import PACE
from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import DeliveryDeferred, Posted

APP = "*"  # the scope of a hold on everything (an app-wide rate limit)


class SharedPacer:
    """The same interface as the in-process `adapters.common.pacing.Pacer`, kept in the database."""

    def __init__(self, db: Database, target: str, min_interval: float, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.target = target
        self.min_interval = min_interval
        self.clock = clock
        # What this process already knows to be busy, and until when: a batch of rows for one
        # channel is deferred without asking the database again for each. It can only make us
        # wait longer than needed, never post early: once it expires, the database decides.
        self._busy: dict[str, float] = {}
        self._lock = threading.Lock()

    def _scope(self, channel: str) -> str:
        return f"{self.target}:{channel}"

    def take(self, channel: str, posted: list[Posted]) -> None:
        """Claim the channel's next slot now, or raise DeliveryDeferred with how long to wait."""
        scope, app = self._scope(channel), self._scope(APP)
        now = self.clock()
        with self._lock:
            known = max(self._busy.get(scope, 0.0), self._busy.get(app, 0.0))
        if known > now:
            raise DeliveryDeferred(retry_after=known - now, posted=posted)
        with self.db.uow() as uow:
            s = uow.conn
            seen = {r.scope: r for r in s.execute(select(PACE).where(PACE.c.scope.in_([scope, app])))}
            wait = max(
                (seen[scope].next_at - now) if scope in seen else 0.0,
                (seen[scope].held_until - now) if scope in seen else 0.0,
                (seen[app].held_until - now) if app in seen else 0.0,
            )
            if wait > 0:
                self._remember(scope, now + wait)
                raise DeliveryDeferred(retry_after=wait, posted=posted)
            stmt = upsert(self.db.dialect, PACE).values(scope=scope, next_at=now + self.min_interval, held_until=0.0)
            stmt = stmt.on_conflict_do_update(
                index_elements=[PACE.c.scope],
                set_={"next_at": now + self.min_interval},
                where=(PACE.c.next_at <= now) & (PACE.c.held_until <= now),
            ).returning(PACE.c.scope)
            won = s.execute(stmt).first() is not None
            uow.commit()
        self._remember(scope, now + self.min_interval)
        if not won:  # another replica took this slot between our read and our write
            raise DeliveryDeferred(retry_after=self.min_interval, posted=posted)

    def _remember(self, scope: str, until: float) -> None:
        with self._lock:
            self._busy[scope] = max(self._busy.get(scope, 0.0), until)

    def hold(self, scope: str, seconds: float) -> None:
        """After a rate limit: nothing more to `scope` (a channel, or APP) for `seconds`, on any replica."""
        until = self.clock() + seconds
        self._remember(self._scope(scope), until)
        stmt = upsert(self.db.dialect, PACE).values(scope=self._scope(scope), next_at=0.0, held_until=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[PACE.c.scope],
            set_={"held_until": case((PACE.c.held_until > until, PACE.c.held_until), else_=until)},
        )
        with self.db.uow() as uow:
            uow.conn.execute(stmt)
            uow.commit()
