"""Inbound delivery dedupe: has this platform delivery (event id, message id) been seen before?

Kept in the database, not in process memory, so retries that land on another replica or after a
restart are recognised too.
"""

from __future__ import annotations

from datetime import datetime

from lifecycle.db.tables import KEYS
from lifecycle.db.uow import Database, retry_disconnects
from lifecycle.usecases.base import insert_ignoring_duplicates


def first_delivery(db: Database, key: str, now: datetime) -> bool:
    """Record `key`; True the first time it is seen, False for every repeat."""

    def record() -> bool:
        with db.uow() as uow:
            fresh = insert_ignoring_duplicates(
                uow.conn,
                KEYS,
                {"key": key, "command": "delivery", "account_id": None, "outcome": "{}", "processed_at": now},
                ["key"],
            )
            uow.commit()
        return fresh

    # A connection lost before the commit rolled the key back: record it again. (Lost during the
    # commit itself, the key may be in and the retry reads it as a repeat: one delivery lost, the
    # price of never handling one twice.)
    return retry_disconnects(record, what="delivery dedupe")
