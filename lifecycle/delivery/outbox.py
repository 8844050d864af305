"""The outbox dispatcher: delivers committed domain events to notifiers, at least once, in order.

Rows are claimed under a lease (FOR UPDATE SKIP LOCKED on PostgreSQL) so several dispatchers can
share one database; a dispatcher that dies mid-batch leaves leases that expire, and the rows are
picked up again. Per (account, target), a row is never sent while an earlier one is still pending,
so a retrying notification holds back the later ones for that account instead of overtaking them.
Each notifier gets the outbox row's `delivery_key` so platforms that deduplicate can make the rare
re-send after a crash between "posted" and "marked delivered" harmless.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy import Connection, and_, func, insert, select, update

from lifecycle.db.tables import OUTBOX, POSTED
from lifecycle.db.uow import Database, retry_disconnects
from lifecycle.domain import correlation
from lifecycle.domain.clock import Clock
from lifecycle.domain.events import Event, load_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Posted:
    """Where a message landed, recorded so later events can update it in place."""

    channel: str
    message_id: str
    subject: str | None = None


class DeliveryError(Exception):
    """A notifier could not deliver. `permanent` errors are not retried; `retry_after` is honoured.

    `posted` lists what the notifier did post before failing (an event going to two channels),
    so a retry skips those channels instead of posting twice.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        posted: Iterable[Posted] = (),
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
        self.posted = list(posted)
        self.code = code  # the platform's error code ("ratelimited", "230002", "http_500"), for metrics


class DeliveryDeferred(Exception):
    """Not now, and not a failure: the notifier is pacing a channel. No attempt is counted."""

    def __init__(self, retry_after: float, *, posted: Iterable[Posted] = ()) -> None:
        super().__init__(f"deferred {retry_after:.2f}s")
        self.retry_after = retry_after
        self.posted = list(posted)


@dataclass(frozen=True)
class Delivery:
    outbox_id: int
    event_id: str
    target: str
    attempt: int  # 1 for the first try
    event: Event
    already_posted: frozenset[str] = frozenset()  # channels that got it before a retry

    @property
    def delivery_key(self) -> str:
        return f"{self.event_id}:{self.target}"


class Notifier(Protocol):
    """A delivery target (console, slack, feishu). Returns what it posted, raises DeliveryError."""

    target: str

    def deliver(self, delivery: Delivery) -> Iterable[Posted]: ...


@dataclass
class DispatchReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    next_in: float | None = None  # when a deferred delivery may go, in seconds from now
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.retried + self.dead


@dataclass(frozen=True)
class Finished:
    """What `Dispatcher.deliver_all` did, and how many notifications it had to leave pending."""

    report: DispatchReport
    left: int


@dataclass
class RetryPolicy:
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    max_attempts: int = 20
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        backoff *= self.rng.uniform(0.8, 1.2)  # jitter: replicas retrying together would stampede
        return float(max(backoff, retry_after or 0.0))


class Dispatcher:
    def __init__(
        self,
        db: Database,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        *,
        owner: str | None = None,
        batch: int = 50,
        lease_seconds: float = 30.0,
        policy: RetryPolicy | None = None,
        observe: Callable[[str, str, str], None] | None = None,
    ) -> None:
        """`lease_seconds`: how long a claimed row is ours before another dispatcher may take it (a
        replica that died mid-batch); the lease is renewed while a slow batch is being sent, so it
        only has to outlast a few deliveries. `observe(target, result, code)` hears every outcome,
        result being delivered | retry | dead | deferred (the metrics' hook)."""
        self.db = db
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.owner = owner or f"dispatcher-{uuid.uuid4().hex[:12]}"
        self.batch = batch
        self.lease = timedelta(seconds=lease_seconds)
        self.policy = policy or RetryPolicy()
        self.observe = observe or (lambda target, result, code: None)

    def _claim(self, now: datetime) -> list[tuple[int, str, str, str, int, str | None]]:
        # Only the head of each lane (the oldest pending row of an account and target) may go out,
        # so events reach a channel in order. The heads come from one GROUP BY over the pending
        # rows: linear in the backlog whatever the planner's statistics say (a correlated "no
        # earlier pending row" check went quadratic on PostgreSQL when a burst outran ANALYZE).
        # Rows without an account are lanes of their own.
        lane = func.coalesce(OUTBOX.c.account_id, -OUTBOX.c.id)
        heads = (
            select(func.min(OUTBOX.c.id).label("id"))
            .where(OUTBOX.c.status == "pending", OUTBOX.c.target.in_(list(self.notifiers)))
            .group_by(lane, OUTBOX.c.target)
            .cte("heads")
        )
        stmt = (
            select(
                OUTBOX.c.id,
                OUTBOX.c.event_id,
                OUTBOX.c.target,
                OUTBOX.c.payload,
                OUTBOX.c.attempts,
                OUTBOX.c.correlation_id,
            )
            .join(heads, heads.c.id == OUTBOX.c.id)
            .where(
                OUTBOX.c.available_at <= now,
                (OUTBOX.c.lease_until.is_(None)) | (OUTBOX.c.lease_until < now),
            )
            .order_by(OUTBOX.c.id)
            .limit(self.batch)
        )
        with self.db.uow() as uow:
            s = uow.conn
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=OUTBOX)
            rows = [(r.id, r.event_id, r.target, r.payload, r.attempts, r.correlation_id) for r in s.execute(stmt)]
            if rows:
                s.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id.in_([r[0] for r in rows]))
                    .values(lease_owner=self.owner, lease_until=now + self.lease)
                )
            uow.commit()
        return rows

    def run_once(self) -> DispatchReport:
        """Claim a batch of due rows and deliver them; returns what happened."""
        report = DispatchReport()
        now = self.clock.now()
        rows = self._claim(now)
        held_back: set[tuple[int | None, str]] = set()
        # Both touch only rows this dispatcher holds, so a lost connection is simply tried again
        # (else the whole batch would wait out its lease).
        already = retry_disconnects(partial(self._already_posted, [r[0] for r in rows]), what="reading posted messages")
        # Rows put back untouched (held back, or paced with nothing posted) are settled together
        # in one transaction after the round, not one each: pacing defers many rows at a time.
        put_back: dict[int, float] = {}
        leased_at, ours = now, {r[0] for r in rows}
        for n, (outbox_id, event_id, target, payload, attempts, correlation_id) in enumerate(rows):
            if self.clock.now() - leased_at > self.lease / 3:  # slow sends: keep the rest of the batch ours
                leased_at = self.clock.now()
                ours = self._renew([r[0] for r in rows[n:]], leased_at)
            if outbox_id not in ours:  # our lease ran out and another dispatcher took the row
                continue
            event = load_event(payload)
            lane = (event.account_id, target)
            if lane in held_back:  # an earlier event of this account is waiting: keep the order
                put_back[outbox_id] = 0.0
                continue
            delivery = Delivery(outbox_id, event_id, target, attempts + 1, event, frozenset(already.get(outbox_id, ())))
            try:
                with correlation.bound(correlation_id):
                    posted = list(self.notifiers[target].deliver(delivery))
            except DeliveryDeferred as wait:
                self.observe(target, "deferred", "")
                held_back.add(lane)
                report.deferred += 1
                report.next_in = min(report.next_in or wait.retry_after, wait.retry_after)
                if wait.posted:  # part of it went out: record that now, so no channel gets it twice
                    retry_disconnects(partial(self._deferred, delivery, wait), what="recording a delivery")
                else:
                    put_back[outbox_id] = wait.retry_after
                continue
            except DeliveryError as exc:
                held_back.add(lane)
                retry_disconnects(partial(self._failed, delivery, exc, report), what="recording a delivery")
                continue
            except Exception as exc:  # a notifier bug must not stop the other deliveries
                log.exception("notifier %s crashed on outbox row %s", target, outbox_id)
                held_back.add(lane)
                self._failed(delivery, DeliveryError(f"{type(exc).__name__}: {exc}"), report)
                continue
            # The post went out: recording it must survive a lost connection, or the row would be
            # sent again when its lease runs out.
            retry_disconnects(partial(self._delivered, delivery, posted), what="recording a delivery")
            self.observe(target, "delivered", "")
            report.delivered += 1
        retry_disconnects(partial(self._put_back, put_back), what="releasing deferred rows")
        return report

    def _renew(self, outbox_ids: list[int], now: datetime) -> set[int]:
        """Extend our lease on the rows still to send; the ids that are still ours."""
        with self.db.uow() as uow:
            s = uow.conn
            s.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(outbox_ids), OUTBOX.c.lease_owner == self.owner, OUTBOX.c.status == "pending")
                .values(lease_until=now + self.lease)
            )
            still = {
                int(i)
                for (i,) in s.execute(
                    select(OUTBOX.c.id).where(OUTBOX.c.id.in_(outbox_ids), OUTBOX.c.lease_owner == self.owner)
                )
            }
            uow.commit()
        return still

    def _put_back(self, rows: dict[int, float]) -> None:
        """Release the leases of rows not delivered this round; a delay makes them due later."""
        if not rows:
            return
        now = self.clock.now()
        with self.db.uow() as uow:
            for delay in sorted(set(rows.values())):
                ids = [i for i, d in rows.items() if d == delay]
                values: dict[str, object] = {"lease_owner": None, "lease_until": None}
                if delay > 0:
                    values["available_at"] = now + timedelta(seconds=delay)
                uow.conn.execute(
                    update(OUTBOX).where(OUTBOX.c.id.in_(ids), OUTBOX.c.lease_owner == self.owner).values(**values)
                )
            uow.commit()

    def _already_posted(self, outbox_ids: list[int]) -> dict[int, set[str]]:
        if not outbox_ids:
            return {}
        with self.db.reader() as uow:
            found: dict[int, set[str]] = {}
            for oid, channel in uow.conn.execute(
                select(POSTED.c.outbox_id, POSTED.c.channel).where(POSTED.c.outbox_id.in_(outbox_ids))
            ):
                found.setdefault(oid, set()).add(channel)
        return found

    def _record_posted(self, conn: Connection, d: Delivery, posted: list[Posted], now: datetime) -> None:
        for p in posted:
            conn.execute(
                insert(POSTED).values(
                    outbox_id=d.outbox_id,
                    target=d.target,
                    subject=p.subject or d.event.subject,
                    channel=p.channel,
                    message_id=p.message_id,
                    posted_at=now,
                )
            )

    def _deferred(self, d: Delivery, wait: DeliveryDeferred) -> None:
        now = self.clock.now()
        with self.db.uow() as uow:
            self._record_posted(uow.conn, d, wait.posted, now)
            uow.conn.execute(
                update(OUTBOX)
                .where(and_(OUTBOX.c.id == d.outbox_id, OUTBOX.c.lease_owner == self.owner))
                .values(
                    available_at=now + timedelta(seconds=wait.retry_after),
                    lease_owner=None,
                    lease_until=None,
                )
            )
            uow.commit()

    def drain(self, max_rounds: int = 1000) -> DispatchReport:
        """Deliver until nothing is due now (failures wait for their backoff)."""
        total = DispatchReport()
        for _ in range(max_rounds):
            r = self.run_once()
            total.delivered += r.delivered
            total.retried += r.retried
            total.dead += r.dead
            total.deferred += r.deferred
            total.errors += r.errors
            total.next_in = r.next_in  # the last round's: when the first paced row may go
            if r.handled == 0:
                break
        return total

    def pending(self) -> int:
        """How many notifications for this dispatcher's targets are still to be delivered."""
        with self.db.reader() as uow:
            n = uow.conn.execute(
                select(func.count())
                .select_from(OUTBOX)
                .where(OUTBOX.c.status == "pending", OUTBOX.c.target.in_(list(self.notifiers)))
            ).scalar_one()
        return int(n)

    def deliver_all(
        self,
        wait_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        progress: Callable[[DispatchReport, int], None] | None = None,
    ) -> Finished:
        """Deliver everything pending, at the platforms' pace, for at most `wait_seconds`.

        For one-shot processes (`jobs run`, the console on exit) that must not leave their
        notifications to a server that may not be running. Paced rows are waited for (sleeping
        until the first channel is free); rows in a retry backoff are waited for too, while the
        wait lasts. `progress(total_so_far, pending)` hears each round.
        """
        total = DispatchReport()
        end = monotonic() + max(wait_seconds, 0.0)
        while True:
            r = self.drain()
            total.delivered += r.delivered
            total.retried += r.retried
            total.dead += r.dead
            total.deferred += r.deferred
            total.errors += r.errors
            left = self.pending()
            if progress is not None:
                progress(total, left)
            remaining = end - monotonic()
            if left == 0 or remaining <= 0:
                return Finished(total, left)
            # Nothing is due this instant: the next row is paced or backing off. Look again soon
            # (a paced channel frees within a second or two), never past the deadline.
            sleep(min(max(r.next_in or 0.25, 0.05), 1.0, remaining))

    def _delivered(self, d: Delivery, posted: list[Posted]) -> None:
        now = self.clock.now()
        with self.db.uow() as uow:
            s = uow.conn
            s.execute(
                update(OUTBOX)
                .where(and_(OUTBOX.c.id == d.outbox_id, OUTBOX.c.lease_owner == self.owner))
                .values(
                    status="delivered",
                    delivered_at=now,
                    attempts=d.attempt,
                    lease_owner=None,
                    lease_until=None,
                    last_error=None,
                )
            )
            self._record_posted(s, d, posted, now)
            uow.commit()

    def _failed(self, d: Delivery, exc: DeliveryError, report: DispatchReport) -> None:
        now = self.clock.now()
        dead = exc.permanent or d.attempt >= self.policy.max_attempts
        delay = self.policy.delay(d.attempt, exc.retry_after)
        message = str(exc)[:500]
        report.errors.append(f"{d.target} #{d.outbox_id}: {message}")
        self.observe(d.target, "dead" if dead else "retry", exc.code)
        if dead:
            report.dead += 1
            log.error("giving up on %s delivery of outbox row %s: %s", d.target, d.outbox_id, message)
        else:
            report.retried += 1
            log.warning(
                "%s delivery of outbox row %s failed (attempt %s): %s", d.target, d.outbox_id, d.attempt, message
            )
        with self.db.uow() as uow:
            self._record_posted(uow.conn, d, exc.posted, now)
            uow.conn.execute(
                update(OUTBOX)
                .where(and_(OUTBOX.c.id == d.outbox_id, OUTBOX.c.lease_owner == self.owner))
                .values(
                    status="dead" if dead else "pending",
                    attempts=d.attempt,
                    available_at=now + timedelta(seconds=delay),
                    last_error=message,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            uow.commit()


@dataclass(frozen=True)
class PostedCard:
    """A message posted about a subject (an approval, a handoff) and the event it showed."""

    channel: str
    message_id: str
    event: Event


def posted_card(db: Database, target: str, subject: str) -> PostedCard | None:
    """The first message posted about `subject` on `target`, with its event, to update in place."""
    with db.reader() as uow:
        row = uow.conn.execute(
            select(POSTED.c.channel, POSTED.c.message_id, OUTBOX.c.payload)
            .join(OUTBOX, OUTBOX.c.id == POSTED.c.outbox_id)
            .where(POSTED.c.subject == subject, POSTED.c.target == target)
            .order_by(POSTED.c.id)
            .limit(1)
        ).first()
    return PostedCard(row.channel, row.message_id, load_event(row.payload)) if row else None


def posted_message(db: Database, target: str, subject: str) -> tuple[str, str] | None:
    """The (channel, message id) of the first message posted about `subject` on `target`."""
    card = posted_card(db, target, subject)
    return (card.channel, card.message_id) if card else None


@dataclass(frozen=True)
class DeliveryProblem:
    """Deliveries that failed for good, grouped by target and error, for admins to fix."""

    target: str
    error: str
    count: int
    last_at: datetime | None


def delivery_problems(db: Database, *, since: datetime | None = None, limit: int = 10) -> list[DeliveryProblem]:
    """Dead deliveries by (target, error), most recent first: a wrong channel id, a revoked token.

    `since` limits it to recent failures, so a problem fixed last week stops being reported.
    """
    with db.reader() as uow:
        rows = uow.conn.execute(
            select(
                OUTBOX.c.target,
                OUTBOX.c.last_error,
                func.count().label("n"),
                func.max(OUTBOX.c.available_at).label("last_at"),
            )
            .where(OUTBOX.c.status == "dead", OUTBOX.c.available_at >= (since or datetime.min.replace(tzinfo=UTC)))
            .group_by(OUTBOX.c.target, OUTBOX.c.last_error)
            .order_by(func.max(OUTBOX.c.available_at).desc())
            .limit(limit)
        ).all()
    return [DeliveryProblem(r.target, r.last_error or "", int(r.n), r.last_at) for r in rows]


def requeue_dead(db: Database, now: datetime, *, target: str | None = None) -> int:
    """Put deliveries that failed for good back in the queue (after fixing a channel or token)."""
    with db.uow() as uow:
        stmt = update(OUTBOX).where(OUTBOX.c.status == "dead")
        if target is not None:
            stmt = stmt.where(OUTBOX.c.target == target)
        n = uow.conn.execute(stmt.values(status="pending", attempts=0, available_at=now, last_error=None)).rowcount
        uow.commit()
    return int(n)
