"""Alembic environment: runs against the engine handed over in config.attributes (see migrate.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine, text

from lifecycle.db.models import Base

config = context.config
target_metadata = Base.metadata
# Replicas starting together each run the upgrade: on PostgreSQL the first takes this lock and
# migrates, the others wait, then find the schema at head and do nothing.
MIGRATION_LOCK = 0x5354_4147_4542  # "STAGEB"


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use by developers: -x url=...
        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///stagebot.db")
        engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
        connection.commit()


run_migrations_online()
