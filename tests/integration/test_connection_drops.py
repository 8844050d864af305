"""A database connection dropped in the middle of work (PostgreSQL's pg_terminate_backend, as a
failover or a restarted pgbouncer does): the command is run again and applied once, and a
notification that already went out is recorded as delivered, not sent again later."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select, text

from lifecycle.core import Lifecycle
from lifecycle.db.models import OutboxRow, StageChange, table
from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import Delivery, Dispatcher, Posted, RetryPolicy
from lifecycle.domain import commands as c
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.rules import Rules
from tests.conftest import ADMIN, PG_URL, ROSTER, T0, new_key

pytestmark = pytest.mark.postgres


@contextmanager
def drop_connection_at(db: Database, match: str, times: int = 1) -> Iterator[list[str]]:
    """Terminate the backend of the connection that is about to run a statement containing
    `match` (the first `times` such statements), from a separate admin connection."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    dropped: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if match in statement and len(dropped) < times:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with admin.connect() as a:
                a.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            dropped.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield dropped
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        admin.dispose()


def test_a_command_whose_connection_drops_is_applied_once(pg_database: Database, pipeline: Any) -> None:
    core = Lifecycle(pg_database, Rules(pipeline, ROSTER, targets=("console",)), FixedClock(T0))
    core.execute(c.AddAccount(name="Dropco", stage="P1", actor=ADMIN, key=new_key()))
    with drop_connection_at(pg_database, "INSERT INTO stage_changes") as dropped:
        out = core.execute(c.MoveStage(account="Dropco", target="P2", actor=ADMIN, key=new_key()))
    assert dropped and out.to_stage == "P2" and not out.replayed
    with pg_database.reader() as uow:
        moves = uow.conn.execute(select(table(StageChange)).where(table(StageChange).c.to_stage == "P2")).all()
    assert len(moves) == 1


class Poster:
    target = "console"

    def __init__(self) -> None:
        self.sent: list[int] = []

    def deliver(self, delivery: Delivery) -> list[Posted]:
        self.sent.append(delivery.outbox_id)
        return [Posted(channel="C1", message_id=f"m{delivery.outbox_id}")]


def test_a_post_whose_delivered_mark_meets_a_dropped_connection_is_not_sent_again(
    pg_database: Database, pipeline: Any
) -> None:
    clock = FixedClock(T0)
    core = Lifecycle(pg_database, Rules(pipeline, ROSTER, targets=("console",)), clock)
    core.execute(c.AddAccount(name="Postco", stage="P1", actor=ADMIN, key=new_key()))
    poster = Poster()
    dispatcher = Dispatcher(pg_database, {"console": poster}, clock, policy=RetryPolicy(base_seconds=0.01))
    with drop_connection_at(pg_database, "UPDATE outbox SET status") as dropped:
        dispatcher.run_once()
    assert dropped and len(poster.sent) == 1
    clock.advance(seconds=3600)  # far past any lease
    Dispatcher(pg_database, {"console": poster}, clock).drain()
    assert len(poster.sent) == 1
    with pg_database.reader() as uow:
        assert {r.status for r in uow.conn.execute(select(table(OutboxRow)))} == {"delivered"}


class OnePerRound:
    """A paced channel: one post, then everything else deferred until the clock moves on."""

    target = "console"

    def __init__(self, clock: FixedClock) -> None:
        self.clock, self.sent, self.last = clock, [], None  # type: ignore[var-annotated]

    def deliver(self, delivery: Delivery) -> list[Posted]:
        from lifecycle.delivery.outbox import DeliveryDeferred

        if self.last == self.clock.now():
            raise DeliveryDeferred(0.5)
        self.last = self.clock.now()
        self.sent.append(delivery.outbox_id)
        return [Posted(channel="C1", message_id=f"m{delivery.outbox_id}")]


def test_deferred_rows_released_over_a_dropped_connection_do_not_wait_out_their_lease(
    pg_database: Database, pipeline: Any
) -> None:
    from datetime import timedelta

    clock = FixedClock(T0)
    core = Lifecycle(pg_database, Rules(pipeline, ROSTER, targets=("console",)), clock)
    for n in range(3):
        core.execute(c.AddAccount(name=f"Paced {n}", stage="P1", actor=ADMIN, key=new_key()))
    notifier = OnePerRound(clock)
    dispatcher = Dispatcher(pg_database, {"console": notifier}, clock, lease_seconds=30)
    with drop_connection_at(pg_database, "UPDATE outbox SET available_at") as dropped:
        dispatcher.run_once()  # one post; the two deferred rows are released as the connection drops
    assert dropped and len(notifier.sent) == 1
    clock.at += timedelta(seconds=1)  # well inside the 30 s lease
    dispatcher.run_once()
    assert len(notifier.sent) == 2
