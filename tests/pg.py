"""Throwaway PostgreSQL for tests and benchmarks: a uniquely named schema or database on a server, dropped after.

    with throwaway_schema(url, prefix="bench_") as pg:      # pg.engine, pg.url (search_path set), pg.name
        ...
    with throwaway_database(url, prefix="stagebot_load_") as (db_url, facts):
        ...

`url` is the server's SQLAlchemy URL (e.g. STAGEBOT_TEST_DATABASE_URL, or a benchmark's --pg-url).
A schema is enough for code that takes a URL or an Engine; a database is for child processes and for
code that needs the whole database (several replicas, `DROP DATABASE ... WITH (FORCE)` at the end).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from lifecycle.db.engine import make_engine

FACTS = ("server_version", "synchronous_commit", "fsync", "max_connections", "shared_buffers")


def shown(url: str) -> str:
    """The URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def server_facts(conn: Any, names: tuple[str, ...] = FACTS) -> dict[str, str]:
    """`SHOW name` for each name, on an open connection."""
    return {k: str(conn.execute(text(f"SHOW {k}")).scalar_one()) for k in names}


class PgSchema:
    """A throwaway schema on a PostgreSQL server, so runs never see each other's rows.

    `engine`: a stagebot engine (`make_engine`, `engine_kw` passed on) whose connections use the schema;
    `url`: a URL string that does the same (`options=-csearch_path=...`), for code that builds its own
    engine or runs in another process; `base_url`: the server's URL as given; `facts`: `server_facts`.
    """

    def __init__(self, base_url: str, prefix: str = "t_", **engine_kw: Any) -> None:
        self.name = f"{prefix}{uuid.uuid4().hex[:12]}"
        self.base_url = base_url
        self.admin = make_engine(base_url, pool_size=1, max_overflow=0)
        try:
            with self.admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
                self.facts = server_facts(conn)
        except BaseException:
            self.admin.dispose()
            raise
        options = f"-csearch_path={self.name}"
        self.url = make_url(base_url).update_query_dict({"options": options}).render_as_string(hide_password=False)
        engine_kw.setdefault("pool_size", 12)  # None: make_engine's own pool size, as stagebot runs
        engine_kw.setdefault("max_overflow", 4)
        engine_kw = {k: v for k, v in engine_kw.items() if v is not None}
        self.engine: Engine = make_engine(base_url, connect_args={"options": options}, **engine_kw)

    def drop(self) -> None:
        self.engine.dispose()
        try:
            with self.admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        finally:
            self.admin.dispose()


@contextmanager
def throwaway_schema(base_url: str, prefix: str = "t_", **engine_kw: Any) -> Iterator[PgSchema]:
    schema = PgSchema(base_url, prefix, **engine_kw)
    try:
        yield schema
    finally:
        schema.drop()


@contextmanager
def throwaway_database(server_url: str, prefix: str = "t_", keep: bool = False) -> Iterator[tuple[str, dict[str, str]]]:
    """CREATE DATABASE <prefix><random> on the server; yields (its URL, server facts + name + server);
    `DROP DATABASE ... WITH (FORCE)` afterwards unless `keep`."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(
        server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    created = False
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            created = True
            facts = server_facts(conn)
        facts["name"] = name
        facts["server"] = shown(server_url)
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False), facts
    finally:
        if created and keep:
            print(f'[db] kept database {name}: DROP DATABASE "{name}" when done', file=sys.stderr, flush=True)
        elif created:
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:  # say so: it has to be dropped by hand
                print(f"[db] could not drop database {name}: {exc}", file=sys.stderr, flush=True)
        admin.dispose()
