"""The outbox dispatcher over a real database: retries with backoff, per-account order, crashes
mid-batch (in-process and a SIGKILLed subprocess), dead letters, posted messages, and two dispatchers
sharing one database. Notifiers are hand-written fakes; time is a FixedClock that only we move."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from adapters.common.pacing import Pacer
from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.models import OutboxRow, PostedMessage, table
from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import Delivery, DeliveryError, Dispatcher, Posted, RetryPolicy, posted_message
from lifecycle.domain import commands as c
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.rules import Rules
from tests.clocks import StepClock
from tests.conftest import ADMIN, BOB, ROSTER, new_key

ROOT = Path(__file__).resolve().parents[2]
OUTBOX = table(OutboxRow)
FAST = RetryPolicy(base_seconds=1.0, max_seconds=60.0, max_attempts=20)


class Recorder:
    """A console notifier that records what it delivered, and can be told to fail.

    `fail(delivery)` returns an exception to raise for that delivery, or None to deliver it."""

    target = "console"

    def __init__(
        self,
        fail: Callable[[Delivery], BaseException | None] | None = None,
        posts: Callable[[Delivery], Iterable[Posted]] | None = None,
    ) -> None:
        self._fail = fail or (lambda d: None)
        self._posts = posts or (lambda d: [])
        self._lock = threading.Lock()
        self.calls: list[Delivery] = []
        self.delivered: list[Delivery] = []

    def deliver(self, delivery: Delivery) -> Iterable[Posted]:
        with self._lock:
            self.calls.append(delivery)
        exc = self._fail(delivery)
        if exc is not None:
            raise exc
        with self._lock:
            self.delivered.append(delivery)
        return list(self._posts(delivery))

    def delivered_ids(self) -> list[int]:
        with self._lock:
            return [d.outbox_id for d in self.delivered]


def rows(db: Database) -> list[Any]:
    with db.reader() as uow:
        return list(uow.session.execute(select(OUTBOX).order_by(OUTBOX.c.id)).all())


def row(db: Database, outbox_id: int) -> Any:
    with db.reader() as uow:
        return uow.session.execute(select(OUTBOX).where(OUTBOX.c.id == outbox_id)).one()


def add(core: Lifecycle, name: str, stage: str = "P1") -> int:
    return core.execute(c.AddAccount(actor=ADMIN, key=new_key(), name=name, stage=stage)).account.id


def move(core: Lifecycle, name: str, target: str) -> None:
    core.execute(c.MoveStage(actor=ADMIN, key=new_key(), account=name, target=target))


# ---------------------------------------------------------------- retries


def test_five_failures_then_success_is_delivered_once_after_backoff(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme")
    (r,) = rows(core.db)
    failures = 5
    notifier = Recorder(fail=lambda d: DeliveryError("chat is down") if d.attempt <= failures else None)
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=FAST)

    for attempt in range(1, failures + 1):
        report = dispatcher.run_once()
        assert (report.delivered, report.retried, report.dead) == (0, 1, 0)
        assert "chat is down" in report.errors[0]
        failed = row(core.db, r.id)
        assert (failed.status, failed.attempts, failed.last_error) == ("pending", attempt, "chat is down")
        assert failed.lease_owner is None
        # Backoff: base * 2^(n-1), jittered by +-20%. Not due before the low end ...
        backoff = FAST.base_seconds * 2 ** (attempt - 1)
        assert (
            clock.now() + timedelta(seconds=0.8 * backoff)
            <= failed.available_at
            <= clock.now() + timedelta(seconds=1.2 * backoff)
        )
        assert dispatcher.run_once().handled == 0
        clock.advance(seconds=0.75 * backoff)
        assert dispatcher.run_once().handled == 0
        # ... and due after the high end.
        clock.advance(seconds=0.5 * backoff)

    report = dispatcher.run_once()
    assert (report.delivered, report.retried, report.dead) == (1, 0, 0)
    assert [d.attempt for d in notifier.calls] == [1, 2, 3, 4, 5, 6]
    assert notifier.delivered_ids() == [r.id]
    done = row(core.db, r.id)
    assert (done.status, done.attempts, done.last_error) == ("delivered", 6, None)
    assert done.delivered_at == clock.now()
    # Nothing left to do, ever.
    clock.advance(days=30)
    assert dispatcher.drain().handled == 0
    assert len(notifier.calls) == 6


def test_deliver_all_waits_out_a_paced_channel_on_the_clock_it_is_given(core: Lifecycle, clock: FixedClock) -> None:
    """`deliver_all` (jobs run, the console on exit) sleeps while a channel is paced. On a StepClock
    each sleep is a jump, so the waits themselves are checked: one post a second, in order."""
    step = StepClock(clock.now().timestamp())
    pacer = Pacer(1.0, step)
    sent: list[tuple[int, float]] = []

    class Paced(Recorder):
        def deliver(self, delivery: Delivery) -> Iterable[Posted]:
            pacer.take("C1", [])
            sent.append((delivery.outbox_id, step()))
            return super().deliver(delivery)

    for n in range(5):
        add(core, f"Acct {n}")
    ids = [r.id for r in rows(core.db)]
    dispatcher = Dispatcher(core.db, {"console": Paced()}, step, policy=FAST)
    done = dispatcher.deliver_all(60, sleep=step.sleep, monotonic=step)
    assert (done.left, done.report.delivered, done.report.retried) == (0, 5, 0)
    assert done.report.deferred >= 4  # every post after the first waited for the channel
    assert [i for i, _ in sent] == ids
    times = [t for _, t in sent]
    assert [round(b - a, 6) >= 1.0 for a, b in itertools.pairwise(times)] == [True] * 4
    assert 4.0 <= sum(step.slept) <= 6.0 and all(0.05 <= s <= 1.0 for s in step.slept)


def test_deliver_all_gives_up_at_its_deadline_and_says_how_many_are_left(core: Lifecycle, clock: FixedClock) -> None:
    step = StepClock(clock.now().timestamp())
    add(core, "Acme")
    notifier = Recorder(fail=lambda d: DeliveryError("chat is down"))
    dispatcher = Dispatcher(core.db, {"console": notifier}, step, policy=FAST)
    done = dispatcher.deliver_all(10, sleep=step.sleep, monotonic=step)
    assert done.left == 1 and done.report.delivered == 0 and done.report.retried >= 1
    assert sum(step.slept) == pytest.approx(10.0)  # waited the whole 10 s for the backoff, no more


def test_retry_after_from_the_platform_is_honoured(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme")
    notifier = Recorder(fail=lambda d: DeliveryError("rate limited", retry_after=90) if d.attempt == 1 else None)
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=FAST)
    dispatcher.run_once()
    (r,) = rows(core.db)
    assert r.available_at >= clock.now() + timedelta(seconds=90)
    clock.advance(seconds=89)
    assert dispatcher.run_once().handled == 0
    clock.advance(seconds=2)
    assert dispatcher.run_once().delivered == 1


def test_a_crashing_notifier_is_retried_like_a_delivery_error(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme")
    add(core, "Globex")
    notifier = Recorder(fail=lambda d: KeyError("bug") if d.attempt == 1 and d.event.account == "Acme" else None)
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=FAST)
    report = dispatcher.run_once()
    assert (report.delivered, report.retried) == (1, 1)
    assert "KeyError" in report.errors[0]
    clock.advance(minutes=5)
    assert dispatcher.run_once().delivered == 1
    assert sorted(d.event.account for d in notifier.delivered) == ["Acme", "Globex"]


def test_permanent_error_is_dead_and_never_retried(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme")
    move(core, "Acme", "P2")  # a later event of the same account
    first, second = rows(core.db)
    notifier = Recorder(
        fail=lambda d: DeliveryError("channel archived", permanent=True) if d.outbox_id == first.id else None
    )
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=FAST)
    report = dispatcher.run_once()
    assert report.dead == 1 and report.retried == 0
    dead = row(core.db, first.id)
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 1, "channel archived")
    clock.advance(days=365)
    dispatcher.drain()
    assert [d.outbox_id for d in notifier.calls].count(first.id) == 1
    # A dead letter does not hold the account's later events back forever.
    assert notifier.delivered_ids() == [second.id]
    assert row(core.db, second.id).status == "delivered"


def test_max_attempts_reached_is_dead(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme")
    notifier = Recorder(fail=lambda d: DeliveryError("still down"))
    policy = RetryPolicy(base_seconds=1, max_seconds=5, max_attempts=3)
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=policy)
    reports = []
    for _ in range(10):
        reports.append(dispatcher.run_once())
        clock.advance(seconds=10)
    assert [(r.retried, r.dead) for r in reports[:3]] == [(1, 0), (1, 0), (0, 1)]
    assert all(r.handled == 0 for r in reports[3:])
    (r,) = rows(core.db)
    assert (r.status, r.attempts) == ("dead", 3)
    assert [d.attempt for d in notifier.calls] == [1, 2, 3]


# ---------------------------------------------------------------- order


def test_a_failing_event_holds_back_its_accounts_later_events_only(core: Lifecycle, clock: FixedClock) -> None:
    a = add(core, "Acme")
    move(core, "Acme", "P2")
    b = add(core, "Globex")
    move(core, "Acme", "P3")
    move(core, "Globex", "P2")
    all_rows = rows(core.db)
    a_rows = [r.id for r in all_rows if r.account_id == a]
    b_rows = [r.id for r in all_rows if r.account_id == b]
    assert len(a_rows) == 3 and len(b_rows) == 2
    notifier = Recorder(
        fail=lambda d: DeliveryError("timeout") if d.outbox_id == a_rows[0] and d.attempt == 1 else None
    )
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=FAST)

    report = dispatcher.drain()
    assert (report.retried, report.delivered) == (1, 2)
    # B went through; A's later events waited behind the failed one, and were not even tried.
    assert notifier.delivered_ids() == b_rows
    assert [d.outbox_id for d in notifier.calls if d.event.account_id == a] == [a_rows[0]]
    for rid in a_rows[1:]:
        held = row(core.db, rid)
        assert (held.status, held.attempts, held.lease_owner) == ("pending", 0, None)

    # Still held back while the first waits for its retry.
    assert dispatcher.run_once().handled == 0
    assert notifier.delivered_ids() == b_rows

    clock.advance(minutes=1)
    dispatcher.drain()
    delivered = notifier.delivered_ids()
    assert [i for i in delivered if i in a_rows] == a_rows  # in the order they were written
    assert sorted(delivered) == sorted(a_rows + b_rows)
    assert Counter(delivered).most_common(1)[0][1] == 1


def test_events_of_one_account_are_delivered_in_order(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme", "P0")
    for target in ("P1", "P2", "P3", "P4", "P5"):
        move(core, "Acme", target)
    notifier = Recorder()
    Dispatcher(core.db, {"console": notifier}, clock, batch=3).drain()
    ids = notifier.delivered_ids()
    assert ids == sorted(ids) == [r.id for r in rows(core.db)]


def test_rows_for_other_targets_are_left_alone(database: Database, clock: FixedClock, pipeline: Pipeline) -> None:
    core = Lifecycle(database, Rules(pipeline, ROSTER, targets=("console", "slack")), clock)
    add(core, "Acme")
    notifier = Recorder()
    Dispatcher(database, {"console": notifier}, clock).drain()
    by_target = {r.target: r.status for r in rows(database)}
    assert by_target == {"console": "delivered", "slack": "pending"}


# ---------------------------------------------------------------- crashes


class Died(BaseException):
    """The process dying mid-delivery (not an Exception: nothing may catch it)."""


def test_crash_mid_batch_resumes_in_a_new_dispatcher_after_the_lease(core: Lifecycle, clock: FixedClock) -> None:
    for n in range(3):
        add(core, f"Acme {n}")
        move(core, f"Acme {n}", "P2")
    all_ids = [r.id for r in rows(core.db)]
    assert len(all_ids) == 6
    calls = {"n": 0}

    def die_on_third(d: Delivery) -> BaseException | None:
        calls["n"] += 1
        return Died() if calls["n"] == 3 else None

    first = Recorder(fail=die_on_third)
    crashed = Dispatcher(core.db, {"console": first}, clock, owner="first", lease_seconds=120, policy=FAST)
    with pytest.raises(Died):
        crashed.run_once()
    assert len(first.delivered) == 2
    left = [r for r in rows(core.db) if r.status == "pending"]
    assert len(left) == 4
    # What the dead dispatcher had claimed is still leased to it.
    assert any(r.lease_owner == "first" for r in left)

    second = Recorder()
    restarted = Dispatcher(core.db, {"console": second}, clock, owner="second", lease_seconds=120, policy=FAST)
    restarted.drain()
    claimed_by_first = [r.id for r in left if r.lease_owner == "first"]
    assert not set(second.delivered_ids()) & set(claimed_by_first)  # not before the lease runs out

    clock.advance(seconds=121)
    restarted.drain()
    total = Counter(first.delivered_ids() + second.delivered_ids())
    assert sorted(total) == all_ids
    assert set(total.values()) == {1}
    assert {r.status for r in rows(core.db)} == {"delivered"}
    # Per account, still in order across the crash.
    for acc in {d.event.account_id for d in first.delivered + second.delivered}:
        seq = [d.outbox_id for d in first.delivered + second.delivered if d.event.account_id == acc]
        assert seq == sorted(seq)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from lifecycle.domain.clock import FixedClock
    from lifecycle.db.engine import make_engine
    from lifecycle.db.uow import Database
    from lifecycle.delivery.outbox import Dispatcher

    url, search_path, now, log_path = sys.argv[1:5]
    kwargs = {"connect_args": {"options": f"-csearch_path={search_path}"}} if search_path else {}
    db = Database(make_engine(url, **kwargs))

    class DiesOnThird:
        target = "console"
        calls = 0

        def deliver(self, d):
            DiesOnThird.calls += 1
            if DiesOnThird.calls == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            with open(log_path, "a") as f:
                f.write(f"{d.event_id}\\n")
                f.flush()
                os.fsync(f.fileno())
            return []

    Dispatcher(db, {"console": DiesOnThird()}, FixedClock(datetime.fromisoformat(now)), owner="child").drain()
    sys.exit(3)  # not reached
    """
)


def _url_and_search_path(db: Database) -> tuple[str, str]:
    url = db.engine.url.render_as_string(hide_password=False)
    if db.dialect != "postgresql":
        return url, ""
    with db.engine.connect() as conn:
        return url, str(conn.execute(text("select current_schema()")).scalar_one())


@pytest.mark.slow  # a dispatcher subprocess, SIGKILLed
def test_a_dispatcher_process_killed_mid_batch_loses_and_repeats_nothing(
    core: Lifecycle, clock: FixedClock, tmp_path: Path
) -> None:
    for n in range(4):
        add(core, f"Acme {n}")
        move(core, f"Acme {n}", "P2")
    event_ids = [r.event_id for r in rows(core.db)]
    log = tmp_path / "child-delivered.txt"
    url, search_path = _url_and_search_path(core.db)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, url, search_path, clock.now().isoformat(), str(log)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == -signal.SIGKILL, res.stderr
    by_child = log.read_text().split()
    assert len(by_child) == 2

    clock.advance(seconds=31)  # past the default lease of the dead process
    notifier = Recorder()
    Dispatcher(core.db, {"console": notifier}, clock, owner="parent").drain()
    total = Counter(by_child + [d.event_id for d in notifier.delivered])
    assert sorted(total) == sorted(event_ids)
    assert set(total.values()) == {1}
    assert {r.status for r in rows(core.db)} == {"delivered"}


# ---------------------------------------------------------------- posted messages


def test_posted_messages_are_recorded_by_subject(core: Lifecycle, clock: FixedClock) -> None:
    acc = add(core, "Acme", "PQL")
    aid = core.execute(c.MoveStage(actor=ADMIN, key=new_key(), account="Acme", target="P0")).approval_id
    core.execute(c.DecideApproval(actor=BOB, key=new_key(), approval_id=aid, approve=True))  # type: ignore[arg-type]

    def posts(d: Delivery) -> list[Posted]:
        if d.event.kind == "AccountAdded":
            return [Posted("C0SALES", "m-added"), Posted("C0CS", "m-added-cs", subject="custom:1")]
        return [Posted("C0SALES", f"m-{d.outbox_id}")]

    notifier = Recorder(posts=posts)
    Dispatcher(core.db, {"console": notifier}, clock).drain()
    assert posted_message(core.db, "console", f"account:{acc}") == ("C0SALES", "m-added")  # the first one
    assert posted_message(core.db, "console", "custom:1") == ("C0CS", "m-added-cs")
    approval_rows = [r for r in rows(core.db) if r.kind == "ApprovalRequested"]
    assert posted_message(core.db, "console", f"approval:{aid}") == ("C0SALES", f"m-{approval_rows[0].id}")
    handoff = next(d for d in notifier.delivered if d.event.kind == "HandoffOpened")
    assert posted_message(core.db, "console", handoff.event.subject) == ("C0SALES", f"m-{handoff.outbox_id}")
    assert posted_message(core.db, "console", "approval:999") is None
    assert posted_message(core.db, "slack", f"account:{acc}") is None


def test_nothing_is_recorded_as_posted_when_delivery_fails(core: Lifecycle, clock: FixedClock) -> None:
    acc = add(core, "Acme")
    notifier = Recorder(fail=lambda d: DeliveryError("down"), posts=lambda d: [Posted("C0", "m")])
    Dispatcher(core.db, {"console": notifier}, clock).run_once()
    assert posted_message(core.db, "console", f"account:{acc}") is None
    with core.db.reader() as uow:
        assert uow.session.execute(select(PostedMessage)).first() is None


def test_delivery_carries_a_stable_key_and_the_event(core: Lifecycle, clock: FixedClock) -> None:
    acc = add(core, "Acme")
    notifier = Recorder(fail=lambda d: DeliveryError("once") if d.attempt == 1 else None)
    dispatcher = Dispatcher(core.db, {"console": notifier}, clock, policy=FAST)
    dispatcher.run_once()
    clock.advance(minutes=1)
    dispatcher.run_once()
    keys = {d.delivery_key for d in notifier.calls}
    (r,) = rows(core.db)
    assert keys == {f"{r.event_id}:console"}
    ev = notifier.delivered[0].event
    assert (ev.kind, ev.account_id, ev.account, ev.actor) == ("AccountAdded", acc, "Acme", ADMIN.ref)
    assert ev.amount is None or isinstance(ev.amount, Decimal)  # type: ignore[union-attr]


# ---------------------------------------------------------------- two dispatchers, one database


def _second_database(db: Database) -> Database:
    """Another engine on the same database (its own connections): another replica."""
    url, search_path = _url_and_search_path(db)
    if search_path:
        return Database(make_engine(url, connect_args={"options": f"-csearch_path={search_path}"}, pool_size=4))
    return Database(make_engine(url))


def test_two_dispatchers_deliver_every_event_exactly_once(core: Lifecycle, clock: FixedClock) -> None:
    accounts = 50
    for n in range(accounts):
        add(core, f"Acme {n}", "P0")
        for target in ("P1", "P2", "P3"):
            move(core, f"Acme {n}", target)
    total = len(rows(core.db))
    assert total == accounts * 4 + accounts * 1  # P0->P1 also opens a handoff to support

    shared = Recorder()
    other_db = _second_database(core.db)
    try:
        dispatchers = [
            Dispatcher(core.db, {"console": shared}, clock, owner="replica-a", batch=7),
            Dispatcher(other_db, {"console": shared}, clock, owner="replica-b", batch=7),
        ]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(d: Dispatcher) -> None:
            try:
                barrier.wait(timeout=30)
                for _ in range(2000):  # bounded; stops as soon as everything is delivered
                    if len(shared.delivered_ids()) >= total:
                        return
                    d.run_once()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
    finally:
        other_db.dispose()

    delivered = shared.delivered_ids()
    counts = Counter(delivered)
    assert len(counts) == total
    assert set(counts.values()) == {1}, [i for i, n in counts.items() if n > 1]
    assert {r.status for r in rows(core.db)} == {"delivered"}
    # Per account, in order, even with two replicas.
    by_account: dict[int, list[int]] = {}
    for d in shared.delivered:
        by_account.setdefault(d.event.account_id, []).append(d.outbox_id)
    for seq in by_account.values():
        assert seq == sorted(seq)


# ---------------------------------------------------------------- leases of slow batches


def test_a_slow_batch_keeps_its_lease_and_a_second_dispatcher_cannot_take_its_rows(
    core: Lifecycle, clock: FixedClock
) -> None:
    for n in range(4):
        add(core, f"Slow {n}")
    stolen: list[int] = []
    second = Recorder()
    thief = Dispatcher(core.db, {"console": second}, clock, owner="thief", lease_seconds=30, policy=FAST)

    def slow(d: Delivery) -> BaseException | None:
        clock.advance(seconds=20)  # each send takes 20 s: the batch outlasts the 30 s lease
        stolen.extend(second.delivered_ids() if thief.run_once().delivered else [])
        return None

    first = Recorder(fail=slow)
    Dispatcher(core.db, {"console": first}, clock, owner="slow", lease_seconds=30, policy=FAST).run_once()
    assert len(first.delivered) == 4 and stolen == [] and second.delivered == []
    assert {r.status for r in rows(core.db)} == {"delivered"}


def test_a_row_whose_lease_was_lost_is_not_sent_by_the_old_owner(core: Lifecycle, clock: FixedClock) -> None:
    for n in range(2):
        add(core, f"Lost {n}")
    second = Recorder()
    taker = Dispatcher(core.db, {"console": second}, clock, owner="taker", lease_seconds=30, policy=FAST)

    def stall(d: Delivery) -> BaseException | None:
        if not second.delivered:
            clock.advance(seconds=200)  # the first owner stalls far past its lease (a GC pause, a hung socket)
            taker.run_once()  # and another replica takes what was left
        return None

    first = Recorder(fail=stall)
    Dispatcher(core.db, {"console": first}, clock, owner="stalled", lease_seconds=30, policy=FAST).run_once()
    # The row being sent while its lease ran out went out twice: at-least-once is all a lease can
    # promise for a send that hangs longer than the lease (Feishu's uuid de-duplicates it; Slack
    # cannot). The rest of the batch is not sent by the stalled owner.
    stalled_row, rest = sorted(r.id for r in rows(core.db))
    assert first.delivered_ids() == [stalled_row]
    assert sorted(second.delivered_ids()) == [stalled_row, rest]
    assert {r.status for r in rows(core.db)} == {"delivered"}


# ---------------------------------------------------------------- correlation ids


def test_the_correlation_id_of_a_request_travels_with_its_notifications(core: Lifecycle, clock: FixedClock) -> None:
    from lifecycle.domain import correlation

    with correlation.bound("req-abc123"):
        add(core, "Traced")
    add(core, "Untraced")
    seen: dict[str, str | None] = {}

    def note(d: Delivery) -> BaseException | None:
        seen[str(d.event.account_id)] = correlation.current.get()
        return None

    Dispatcher(core.db, {"console": Recorder(fail=note)}, clock, policy=FAST).drain()
    assert sorted(r.correlation_id or "-" for r in rows(core.db)) == ["-", "req-abc123"]
    assert sorted(v or "-" for v in seen.values()) == ["-", "req-abc123"]
    assert correlation.current.get() is None
