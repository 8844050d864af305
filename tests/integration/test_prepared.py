"""`Prepared` writes what Core's execute would write, on SQLite and PostgreSQL, and refuses what it
cannot do faithfully (Python-side defaults, RETURNING, missing parameters)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from lifecycle.db.prepared import Prepared
from lifecycle.db.tables import ACC, KEYS
from lifecycle.db.uow import Database

AT = datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC)


def _account(name: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "name_key": name.casefold(),
        "stage": "MQL",
        "stage_entered_at": AT,
        "owner": None,
        "amount": Decimal("1234.50"),
        "segment": "smb",
        "external_id": None,
        "contract_end": date(2027, 3, 31),
        "created_at": AT,
        "updated_at": AT,
        "version": 1,
    }
    row.update(extra)
    return row


def _read(db: Database, name: str) -> dict[str, Any]:
    with db.reader() as uow:
        return dict(uow.conn.execute(select(ACC).where(ACC.c.name == name)).one()._mapping)


def test_an_insert_stores_exactly_what_core_stores(database: Database) -> None:
    # A datetime in another zone, a Decimal and a date: each goes through its column's own type.
    shanghai = AT.astimezone(timezone(timedelta(hours=8)))
    with database.uow() as uow:
        uow.conn.execute(insert(ACC), _account("by core", stage_entered_at=shanghai))
        Prepared(insert(ACC))(uow.conn, _account("prepared", stage_entered_at=shanghai))
        uow.commit()
    core, prepared = _read(database, "by core"), _read(database, "prepared")
    for row in (core, prepared):
        del row["id"], row["name"], row["name_key"]
    assert prepared == core
    assert prepared["stage_entered_at"] == AT and prepared["stage_entered_at"].tzinfo is not None
    assert prepared["amount"] == Decimal("1234.50")
    assert prepared["contract_end"] == date(2027, 3, 31)


def test_an_update_binds_both_its_parameters_and_the_values_written_into_it(database: Database) -> None:
    with database.uow() as uow:
        uow.conn.execute(insert(ACC), [_account("a"), _account("b")])
        uow.commit()
    move = Prepared(
        update(ACC)
        .where(ACC.c.name == bindparam("b_name"), ACC.c.version == 1)  # a literal in the WHERE clause
        .values(stage="SQL", stage_entered_at=bindparam("b_at"), segment="enterprise")  # and in SET
    )
    later = AT + timedelta(days=2)
    with database.uow() as uow:
        assert move(uow.conn, {"b_name": "a", "b_at": later}).rowcount == 1
        assert move(uow.conn, {"b_name": "nobody", "b_at": later}).rowcount == 0
        uow.commit()
    a, b = _read(database, "a"), _read(database, "b")
    assert (a["stage"], a["stage_entered_at"], a["segment"]) == ("SQL", later, "enterprise")
    assert (b["stage"], b["stage_entered_at"], b["segment"]) == ("MQL", AT, "smb")


def test_many_rows_in_one_executemany(database: Database) -> None:
    rows = [_account(f"bulk {i:03d}", version=i + 1) for i in range(250)]
    with database.uow() as uow:
        Prepared(insert(ACC)).many(uow.conn, rows)
        Prepared(insert(ACC)).many(uow.conn, [])  # nothing to do, nothing done
        uow.commit()
    with database.reader() as uow:
        got = uow.conn.execute(select(ACC.c.name, ACC.c.version, ACC.c.created_at).order_by(ACC.c.name)).all()
    assert [(r.name, r.version, r.created_at) for r in got] == [(f"bulk {i:03d}", i + 1, AT) for i in range(250)]


def test_a_duplicate_key_raises_sqlalchemys_integrity_error(database: Database) -> None:
    # apply_command tells a replayed command by this exception: it must not be the driver's own.
    insert_key = Prepared(insert(KEYS))
    row = {"key": "k-1", "command": "MoveStage", "account_id": None, "outcome": "{}", "processed_at": AT}
    with database.uow() as uow:
        insert_key(uow.conn, row)
        with pytest.raises(IntegrityError):
            insert_key(uow.conn, row)


def test_what_it_cannot_do_faithfully_is_refused_when_planned(database: Database) -> None:
    with pytest.raises(ValueError, match="RETURNING"):
        Prepared(insert(ACC).returning(ACC.c.id))
    without_version = _account("x")
    del without_version["version"]  # `version` has a Python-side default nobody would apply here
    with database.uow() as uow, pytest.raises(ValueError, match=r"Python-side default.*version"):
        Prepared(insert(ACC))(uow.conn, without_version)
    stmt = Prepared(update(ACC).where(ACC.c.id == bindparam("b_id")).values(stage=bindparam("b_stage")))
    with database.uow() as uow, pytest.raises(ValueError, match=r"missing parameters.*b_stage"):
        stmt(uow.conn, {"b_id": 1})
    rows = [_account("y"), {**_account("z"), "external_id": "ext-z"}]
    del rows[0]["external_id"]  # the second row has a key the first lacks: it would be silently lost
    with database.uow() as uow, pytest.raises(ValueError, match="same keys"):
        Prepared(insert(ACC)).many(uow.conn, rows)
