"""The unit of work: one transaction per inbound message or tick; rolled back unless committed.

It holds a Core `Connection`, not an ORM `Session`: the use cases and queries run SQLAlchemy Core
statements on the typed models' tables, and a Session's commit machinery cost more than a quarter
of a stage move. Code that wants the ORM uses `uow.session`, which joins this transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TypeVar

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lifecycle.db.engine import READONLY

log = logging.getLogger("stagebot.db")
T = TypeVar("T")
RETRY_PAUSE = 0.2  # seconds, times the attempt number


def retry_disconnects(work: Callable[[], T], *, attempts: int = 3, what: str = "database work") -> T:
    """Run `work` (a whole unit of work), again when the database connection was lost under it.

    Only for work that is safe to repeat: a use case (its idempotency key makes the repeat a
    replay if the first try did commit), a read, or a write the caller must not lose (the
    dispatcher recording a post that already went out). A lost connection rolls back whatever
    was not committed; the pool's pre-ping hands the next try a live connection.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if attempt == attempts or not exc.connection_invalidated:
                raise
            log.warning("%s: the database connection was lost (%s); trying again", what, type(exc.orig).__name__)
            time.sleep(RETRY_PAUSE * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class UnitOfWork:
    """`with db.uow() as uow: ...; uow.commit()`. Never shared across threads."""

    conn: Connection

    def __init__(self, engine: Engine, writer_lock: AbstractContextManager[object] | None = None) -> None:
        self._engine = engine
        self._writer_lock = writer_lock or nullcontext()
        self.committed = False
        self._tx: RootTransaction | None = None
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """An ORM session on this unit of work's connection and transaction (made on first use)."""
        if self._session is None:
            self._session = Session(bind=self.conn, expire_on_commit=False, autoflush=False)
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._writer_lock.__enter__()
        try:
            self.conn = self._engine.connect()
            self._tx = self.conn.begin()
        except BaseException:
            self._writer_lock.__exit__(None, None, None)
            raise
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._session is not None:
                self._session.close()
                self._session = None
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        finally:
            try:
                self.conn.close()
            finally:
                self._writer_lock.__exit__(None, None, None)

    def commit(self) -> None:
        assert self._tx is not None
        if self._session is not None:
            self._session.flush()
        self._tx.commit()
        self.committed = True

    def rollback(self) -> None:
        """Roll back and start a fresh transaction on the same connection."""
        if self._tx is not None and self._tx.is_active:
            self._tx.rollback()
        self._tx = self.conn.begin()


class Database:
    """An engine plus factories for read-write and read-only units of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._readonly = engine.execution_options(**{READONLY: True})
        # SQLite has one writer at a time, and a writer waiting in BEGIN IMMEDIATE sleeps in
        # growing steps (up to 100 ms) between tries: under load most of the lock's free moments
        # are missed and the slowest commands wait for seconds. Queueing this process's writers on
        # a lock wakes the next one as soon as the last commits. (Other processes still meet the
        # busy timeout; a SQLite deployment is one process.)
        self._writer_lock: threading.RLock | None = threading.RLock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self._writer_lock)

    def reader(self) -> UnitOfWork:
        return UnitOfWork(self._readonly)

    def dispose(self) -> None:
        self.engine.dispose()
