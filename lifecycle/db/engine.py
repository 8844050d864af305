"""Engines: SQLite (WAL, foreign keys, writers serialised) or PostgreSQL.

SQLite write transactions start with BEGIN IMMEDIATE: a deferred transaction that reads and then
writes fails with "database is locked" when another writer committed in between, which would turn
ordinary concurrency into spurious errors. Read-only work uses a plain BEGIN so it never waits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

READONLY = "stagebot_readonly"


def make_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        memory = u.database in (None, "", ":memory:")
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = create_engine(url, echo=echo, **kwargs)
        # A read-only file (`file:…?mode=ro&uri=true`, check-config) keeps its journal mode.
        _sqlite_setup(engine, wal=not memory and u.query.get("mode") != "ro")
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # serve runs [server] threads request threads (32 by default), the dispatcher, the scheduler and
    # a few follow-up threads, each holding at most one connection: room for all of them, so none
    # waits on the pool while others wait out a slow commit.
    kwargs.setdefault("pool_size", 32)
    kwargs.setdefault("max_overflow", 8)
    return create_engine(url, echo=echo, **kwargs)


def _sqlite_setup(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit reported to a user survives power loss, not only a process crash.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(READONLY, False)
        # Straight to the driver: this runs once per transaction, on the hot path.
        conn.connection.driver_connection.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")


def upsert(dialect: str, table: Any) -> Any:
    """`INSERT` with `ON CONFLICT` (`on_conflict_do_nothing` / `on_conflict_do_update`): the
    PostgreSQL or SQLite construct, which share that API, for the engine's dialect."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
