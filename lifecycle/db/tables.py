"""Every table handle (SQLAlchemy Core `Table`) the core's statements use, defined once, here."""

from __future__ import annotations

from lifecycle.db.models import (
    Account,
    Approval,
    ChecklistTick,
    Emission,
    Handoff,
    OutboxRow,
    Pace,
    PostedMessage,
    ProcessedCommand,
    Renewal,
    Rotation,
    SignalRow,
    StageChange,
    Task,
    table,
)

ACC = table(Account)
HIST = table(StageChange)
APPROVALS = table(Approval)
TICKS = table(ChecklistTick)
HANDOFFS = table(Handoff)
RENEWALS = table(Renewal)
TASKS = table(Task)
SIGNALS = table(SignalRow)
ROTATIONS = table(Rotation)
KEYS = table(ProcessedCommand)  # idempotency keys of commands and inbound deliveries
EMISSIONS = table(Emission)  # what the scheduler emitted, by the key of what made it due
OUTBOX = table(OutboxRow)
POSTED = table(PostedMessage)
PACE = table(Pace)

__all__ = [
    "ACC",
    "APPROVALS",
    "EMISSIONS",
    "HANDOFFS",
    "HIST",
    "KEYS",
    "OUTBOX",
    "PACE",
    "POSTED",
    "RENEWALS",
    "ROTATIONS",
    "SIGNALS",
    "TASKS",
    "TICKS",
]
