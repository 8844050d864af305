"""Text the storage cannot hold is refused by the core with a message naming the field, on SQLite and
on PostgreSQL (which rejects NUL characters and over-long strings with a DataError); idempotency keys
that do not fit are stored as their digest, so a platform's odd delivery id is never a lost command."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from lifecycle.core import Lifecycle
from lifecycle.db.models import Account, ProcessedCommand, SignalRow
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import InvalidInput
from lifecycle.domain.limits import LIMITS, MAX_KEY, MAX_PERSON, delivery_key, problem
from tests.conftest import ADMIN, ALICE, new_key


def add(core: Lifecycle, name: str = "Acme", key: str | None = None, **kw: Any) -> Any:
    return core.execute(c.AddAccount(actor=ADMIN, key=key or new_key(), name=name, **kw))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("external_id", "x" * 129, "The external id is 129 characters; at most 128"),
        ("segment", "s" * 65, "The segment is 65 characters; at most 64"),
        ("owner", "slack:" + "U" * 294, "The owner is 300 characters; at most 120"),
        ("name", "N" * 201, "The account name is 201 characters; at most 200"),
        ("segment", "mid\x00market", "The segment contains a character that cannot be stored"),
        ("name", "Acme\ud800", "The account name contains a character that cannot be stored"),
        ("external_id", "crm-\x07", "The external id contains a character that cannot be stored"),
    ],
)
def test_fields_beyond_storage_are_refused_naming_the_field(
    core: Lifecycle, field: str, value: str, words: str
) -> None:
    kw = {field: value} if field != "name" else {}
    with pytest.raises(InvalidInput) as err:
        add(core, value if field == "name" else "Acme", **kw)
    assert words in err.value.text("en")
    assert err.value.text("zh")  # translated, not empty
    with core.db.reader() as uow:
        assert uow.conn.execute(select(func.count()).select_from(Account)).scalar() == 0


def test_a_long_or_odd_delivery_id_is_applied_once_and_replayed_after(core: Lifecycle) -> None:
    """A `trigger_id` of 300 characters, or an event id holding a NUL, is still one delivery."""
    for i, key in enumerate(["slack:cmd:" + "T" * 300, "feishu:msg:om_\x00x", "slack:cmd:\ud800"]):
        first = add(core, f"Long{i}", key=key)
        again = add(core, f"Long{i}", key=key)
        assert not first.replayed and again.replayed
        assert core.first_delivery("slack:event:" + "E" * 5000 + str(i))
        assert not core.first_delivery("slack:event:" + "E" * 5000 + str(i))
    with core.db.reader() as uow:
        keys = uow.conn.execute(select(ProcessedCommand.key)).scalars().all()
    assert all(len(k) <= MAX_KEY and problem(k) is None for k in keys)


def test_two_different_long_keys_stay_two_deliveries(core: Lifecycle) -> None:
    long = "slack:cmd:" + "T" * 300
    add(core, "One", key=long + "a")
    assert not add(core, "Two", key=long + "b").replayed


def test_queries_refuse_unstorable_text_instead_of_failing_in_the_database(core: Lifecycle) -> None:
    add(core, "Acme")
    for bad in ("Ac\x00me", "A" * 201):
        with pytest.raises(InvalidInput, match="The account"):
            core.ask(c.ShowAccount(actor=ALICE, account=bad))
    with pytest.raises(InvalidInput, match="Your user id"):
        core.ask(c.ListAccounts(actor=Actor("slack", "U" * 200)))
    with pytest.raises(InvalidInput, match="Your user id"):
        core.execute(c.AddAccount(actor=Actor("slack", "U\x00"), key=new_key(), name="X"))


def test_a_signal_with_unstorable_text_is_refused_and_records_nothing(core: Lifecycle) -> None:
    add(core, "Acme")
    for kw in ({"signal": "test\x00email_sent"}, {"source": "b" * 65}, {"signal_id": "i" * 129}):
        args: dict[str, Any] = {"signal": "test_email_sent", "source": "billing", "signal_id": "e1", **kw}
        with pytest.raises(InvalidInput):
            core.execute(
                c.IngestSignal(actor=ADMIN, key=new_key(), account="Acme", at=datetime(2026, 3, 2, tzinfo=UTC), **args)
            )
    with core.db.reader() as uow:
        assert uow.conn.execute(select(func.count()).select_from(SignalRow)).scalar() == 0


def test_the_limits_are_the_columns_lengths() -> None:
    """One source of truth in practice: if a column is resized, its limit has to follow."""
    columns = {
        "name": Account.__table__.c.name,
        "owner": Account.__table__.c.owner,
        "segment": Account.__table__.c.segment,
        "external_id": Account.__table__.c.external_id,
        "signal": SignalRow.__table__.c.signal,
        "source": SignalRow.__table__.c.source,
        "signal_id": SignalRow.__table__.c.signal_id,
    }
    for field, column in columns.items():
        assert LIMITS[field] == column.type.length, field
    assert ProcessedCommand.__table__.c.key.type.length == MAX_KEY
    assert Account.__table__.c.owner.type.length == MAX_PERSON


def test_delivery_key_keeps_what_fits_and_digests_the_rest() -> None:
    assert delivery_key("slack:cmd:T123") == "slack:cmd:T123"
    long = delivery_key("slack:cmd:" + "x" * 300)
    assert long.startswith("slack:cmd:sha256:") and len(long) <= MAX_KEY
    assert delivery_key("feishu:msg:a\x00") != delivery_key("feishu:msg:a\x01")
    assert delivery_key("\x00" * 3).startswith("sha256:")
