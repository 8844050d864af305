"""The Alembic migrations build exactly the schema the typed models describe, on both engines."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, make_url, text

from lifecycle.db.migrate import current_revision, head_revision, is_current, upgrade
from lifecycle.db.models import Base
from lifecycle.db.uow import Database
from tests.conftest import PG_SKIP, PG_URL

REPLICAS = 4


def test_migrated_schema_matches_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert is_current(database.engine)
    upgrade(database.engine)  # idempotent: running it again is a no-op
    assert current_revision(database.engine) == head_revision(database.engine)


def _upgrade_when_all_are_ready(url: str, ready: Any) -> None:
    engine = create_engine(url)
    ready.wait(60)  # every process has imported everything: now they really race
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow  # replicas migrating one PostgreSQL database together: ~3 s
def test_replicas_starting_together_migrate_once_without_errors() -> None:
    """Several replicas upgrading at the same instant on a fresh database: one migrates under the
    advisory lock, the others wait and find nothing to do (without the lock, they fail with
    "relation already exists")."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    name = f"stagebot_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(REPLICAS)
    try:
        procs = [ctx.Process(target=_upgrade_when_all_are_ready, args=(url, ready)) for _ in range(REPLICAS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * REPLICAS
        engine = create_engine(url)
        try:
            assert is_current(engine)
        finally:
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
