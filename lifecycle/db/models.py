"""The schema as SQLAlchemy 2 typed models. Alembic migrations in db/migrations create the same tables.

History (`stage_changes`) is insert-only. `accounts.version` is the optimistic-concurrency counter.
`outbox` holds one row per (domain event, delivery target), written in the change's transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine


class _SQLiteDateTime(sqlite.DATETIME):
    """DATETIME in SQLite's DDL, passing values through: UTCDateTime converts them itself."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


_SQLITE_DATETIME = _SQLiteDateTime()  # type: ignore[no-untyped-call]  # (SQLAlchemy's __init__ is untyped)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (no time zones) and PostgreSQL.

    On SQLite the value is stored as SQLAlchemy's DATETIME text, 'YYYY-MM-DD HH:MM:SS.ffffff' in
    UTC, so that text order is time order. The conversion is done here in one step (isoformat and
    fromisoformat, in C) rather than by SQLAlchemy's regex-based SQLite DATETIME processors: every
    write binds `now` several times, and scheduled work binds it thousands of times per statement.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _SQLITE_DATETIME if dialect.name == "sqlite" else self.impl_instance

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _sqlite_text(value)
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite's text (ours, or a hand-written query's)
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The last datetime converted and its text: a statement binding one `now` for a thousand rows
# converts it once. One tuple, replaced whole, so threads never see half of an update; it holds
# the datetime itself, so an `is` match can never be a different object at a reused address.
_last_text: tuple[datetime | None, str] = (None, "")


def _sqlite_text(value: datetime) -> str:
    global _last_text
    last = _last_text
    if last[0] is value:
        return last[1]
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use aware UTC datetimes")
    text_ = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    _last_text = (value, text_)
    return text_


# Big ids on PostgreSQL, plain INTEGER PRIMARY KEY (rowid alias, autoincrement) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(16, 2)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), unique=True)  # casefolded, for lookups
    stage: Mapped[str] = mapped_column(String(32), index=True)
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    owner: Mapped[str | None] = mapped_column(String(120), index=True)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    segment: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    contract_end: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    sla_snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # no SLA reminders until then


class StageChange(Base):
    """One row per transition, never updated or deleted. `from_stage` is NULL for creation.

    Each row also closes the stay it ends: the account had been in `from_stage` since
    `from_entered_at`, for `stay_seconds`. Known when the row is written (the account's
    `stage_entered_at`), they spare the reports pairing every row with the next one (a window
    over the whole history), and the index gives each stage's stays in order of length, which
    is what a median needs. The index covers the reports' reads of the history, so SQLite answers
    them from it in stage order without sorting a million rows.
    """

    __tablename__ = "stage_changes"
    __table_args__ = (
        Index("ix_stage_changes_account", "account_id", "id"),
        Index("ix_stage_changes_stay", "from_stage", "stay_seconds", "from_entered_at", "to_stage"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    via: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    from_entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stay_seconds: Mapped[float | None] = mapped_column(Float)


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (
        # At most one pending approval per account: a second request is answered with the first.
        Index(
            "uq_approvals_pending",
            "account_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    from_stage: Mapped[str] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    reject_to: Mapped[str | None] = mapped_column(String(32))
    team: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))  # pending | approved | rejected | cancelled
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")


class ChecklistTick(Base):
    __tablename__ = "checklist_ticks"
    __table_args__ = (UniqueConstraint("account_id", "stage", "item", name="uq_checklist_ticks_item"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    stage: Mapped[str] = mapped_column(String(32))
    item: Mapped[str] = mapped_column(String(64))
    ticked_by: Mapped[str] = mapped_column(String(120))
    ticked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    via: Mapped[str] = mapped_column(String(16))


class Renewal(Base):
    __tablename__ = "renewals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # renewal | expansion
    amount: Mapped[Decimal] = mapped_column(Money)
    contract_end: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")


class Handoff(Base):
    """Ownership passing to another team (Sales -> CS at P0): open until someone takes it, or until
    the account leaves `stage` (superseded, with the reason in `note`)."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    from_teams: Mapped[str] = mapped_column(String(200))
    to_team: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | claimed | superseded
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when superseded
    note: Mapped[str | None] = mapped_column(Text)  # why superseded: "Beta moved to CHURNED"


class OutboxRow(Base):
    """A domain event waiting for (or done with) delivery to one target (console, slack, feishu).

    Indexes are kept to what the dispatcher reads: every index is written on every stage move.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "target", "available_at"),
        Index("ix_outbox_account", "account_id", "target", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    target: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    correlation_id: Mapped[str | None] = mapped_column(String(64))  # of the request that caused it


class PostedMessage(Base):
    """Where a delivered event landed (channel, message id), so a card can be updated in place."""

    __tablename__ = "posted_messages"
    __table_args__ = (Index("ix_posted_messages_subject", "subject", "target"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    target: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))  # e.g. approval:7, handoff:3
    channel: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(64))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProcessedCommand(Base):
    """Idempotency keys of applied commands, with the outcome to answer a repeat with."""

    __tablename__ = "processed_commands"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    command: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int | None] = mapped_column(BigId)
    outcome: Mapped[str] = mapped_column(Text)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignalRow(Base):
    """A product signal received for an account (`POST /api/v1/signals`), once per (source, signal id)."""

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("source", "signal_id"),
        Index("ix_signals_account", "account_id", "signal", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    signal_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    signal: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal | None] = mapped_column(Money)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Task(Base):
    """A to-do on an account, opened by an automation or a person; done by anyone in its team."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    title_en: Mapped[str] = mapped_column(String(300))
    title_zh: Mapped[str] = mapped_column(String(300))
    team: Mapped[str | None] = mapped_column(String(32))
    assignee: Mapped[str | None] = mapped_column(String(120), index=True)
    source: Mapped[str] = mapped_column(String(64))  # the automation's key, or "manual"
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | done
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(120))


class Pace(Base):
    """The next free sending slot of a channel (or a whole app), shared by every replica.

    Times are wall-clock epoch seconds: replicas agree on them as far as their clocks do (NTP),
    which is far finer than the one-second pacing this enforces.
    """

    __tablename__ = "pace"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # "slack:C0SALES", "feishu:*"
    next_at: Mapped[float] = mapped_column(Float)  # no post to the scope before this
    held_until: Mapped[float] = mapped_column(Float)  # a rate limit holds the scope until this


class Rotation(Base):
    """How many turns a round-robin assignment has handed out: the next one goes to turns % team size.

    A counter bumped in the assigning transaction (one upsert), instead of counting the history's
    entries into the stage, which read the whole history on every assignment.
    """

    __tablename__ = "rotations"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "assign:PQL:sales"
    turns: Mapped[int] = mapped_column(BigId)


class Emission(Base):
    """What scheduled work has emitted, under a key derived from what made it due.

    The key's uniqueness is what makes a reminder fire once: a catch-up run after downtime, or
    two replicas ticking together, try to insert the same key and only one succeeds.
    """

    __tablename__ = "emissions"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int | None] = mapped_column(BigId)
    emitted_at: Mapped[datetime] = mapped_column(UTCDateTime)


def table(model: type[Base]) -> Table:
    """The Core table of a model, for the hot paths that skip the ORM unit of work."""
    t = model.__table__
    assert isinstance(t, Table)
    return t
