"""The Alembic migrations build exactly the schema the typed models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lifecycle.db.migrate import current_revision, head_revision, is_current, upgrade
from lifecycle.db.models import Base
from lifecycle.db.uow import Database


def test_migrated_schema_matches_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert is_current(database.engine)
    upgrade(database.engine)  # idempotent: running it again is a no-op
    assert current_revision(database.engine) == head_revision(database.engine)
