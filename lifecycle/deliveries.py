"""Inbound delivery dedupe: has this platform delivery (event id, message id) been seen before?

Kept in the database, not in process memory, so retries that land on another replica or after a
restart are recognised too.
"""

from __future__ import annotations

from datetime import datetime

from lifecycle.db.uow import Database
from lifecycle.services.base import KEYS, insert_ignoring_duplicates


def first_delivery(db: Database, key: str, now: datetime) -> bool:
    """Record `key`; True the first time it is seen, False for every repeat."""
    with db.uow() as uow:
        fresh = insert_ignoring_duplicates(
            uow.conn,
            KEYS,
            {"key": key, "command": "delivery", "account_id": None, "outcome": "{}", "processed_at": now},
            ["key"],
        )
        uow.commit()
    return fresh
