"""Channel pacing shared through the database: two replicas (two pacers on one database) get one
slot per interval between them, and a rate-limit hold seen by one holds the other too."""

from __future__ import annotations

import threading

import pytest

from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import DeliveryDeferred
from lifecycle.delivery.pacing import APP, SharedPacer


class Clock:
    def __init__(self, at: float = 1_800_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def replicas(database: Database, clock: Clock, target: str = "slack") -> tuple[SharedPacer, SharedPacer]:
    return (
        SharedPacer(database, target, 1.0, clock),
        SharedPacer(database, target, 1.0, clock),
    )


def test_one_slot_per_interval_between_replicas(database: Database) -> None:
    clock = Clock()
    a, b = replicas(database, clock)
    a.take("C1", [])
    with pytest.raises(DeliveryDeferred) as waited:
        b.take("C1", [])
    assert waited.value.retry_after == pytest.approx(1.0)
    b.take("C2", [])  # another channel has its own slot
    clock.at += 0.4
    with pytest.raises(DeliveryDeferred) as waited:
        a.take("C1", [])
    assert waited.value.retry_after == pytest.approx(0.6)
    clock.at += 0.6
    b.take("C1", [])


def test_a_hold_seen_by_one_replica_holds_the_other(database: Database) -> None:
    clock = Clock()
    a, b = replicas(database, clock)
    a.hold("C1", 5.0)
    a.hold("C1", 2.0)  # a shorter hold does not shorten the longer one
    with pytest.raises(DeliveryDeferred) as waited:
        b.take("C1", [])
    assert waited.value.retry_after == pytest.approx(5.0)
    b.take("C2", [])
    b.hold(APP, 3.0)  # an app-wide limit: every channel of this platform waits
    with pytest.raises(DeliveryDeferred):
        a.take("C3", [])
    feishu = SharedPacer(database, "feishu", 0.25, clock)
    feishu.take("C3", [])  # but not the other platform
    clock.at += 5.0
    a.take("C1", [])


@pytest.mark.postgres
def test_racing_replicas_get_exactly_one_slot(pg_database: Database) -> None:
    clock = Clock()
    pacers = [SharedPacer(pg_database, "slack", 1.0, clock) for _ in range(8)]
    won: list[int] = []
    start = threading.Barrier(len(pacers))

    def race(n: int) -> None:
        start.wait()
        try:
            pacers[n].take("CRACE", [])
        except DeliveryDeferred:
            return
        won.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(pacers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1


def test_a_busy_channel_is_deferred_without_asking_the_database_again(database: Database) -> None:
    from sqlalchemy import event

    clock = Clock()
    a, b = replicas(database, clock)
    b.take("C1", [])
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        with pytest.raises(DeliveryDeferred):
            a.take("C1", [])  # asks the database once: busy for another second
        asked = len(statements)
        for _ in range(50):  # a batch of rows for the same channel
            with pytest.raises(DeliveryDeferred):
                a.take("C1", [])
        assert asked > 0 and len(statements) == asked
        clock.at += 1.0
        a.take("C1", [])  # once the wait is over, the database decides again
        assert len(statements) > asked
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
