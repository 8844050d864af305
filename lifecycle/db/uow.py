"""The unit of work: one transaction per inbound message or tick; rolled back unless committed."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db.engine import make_session_factory


class UnitOfWork:
    """`with uow_factory() as uow: ...; uow.commit()`. Never shared across threads."""

    session: Session

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.committed = False

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self.committed:
                self.session.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()
        self.committed = True

    def rollback(self) -> None:
        self.session.rollback()


UowFactory = Callable[[], UnitOfWork]


class Database:
    """An engine plus factories for read-write and read-only units of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._rw = make_session_factory(engine)
        self._ro = make_session_factory(engine, readonly=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self._rw)

    def reader(self) -> UnitOfWork:
        return UnitOfWork(self._ro)

    def dispose(self) -> None:
        self.engine.dispose()
