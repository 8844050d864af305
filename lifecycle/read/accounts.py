"""Accounts as read: lookup by #ID, name, prefix or external id, and the row as a view. Shared by
the reads and the use cases (a change starts by finding its account)."""

from __future__ import annotations

from collections.abc import Collection
from types import SimpleNamespace
from typing import Any, TypeAlias

from sqlalchemy import Connection, Row, bindparam, select

from lifecycle.db.tables import ACC
from lifecycle.domain.errors import AmbiguousAccount, InvalidInput, NotFound
from lifecycle.domain.i18n import Text
from lifecycle.domain.views import AccountView

SELECT_ACCOUNT_BY_ID = select(ACC).where(ACC.c.id == bindparam("id"))
SELECT_ACCOUNT_BY_NAME = (
    # One index range scan finds the exact name (sorted first) or every name with this prefix.
    select(ACC)
    .where(ACC.c.name_key >= bindparam("key"), ACC.c.name_key < bindparam("upper"))
    .order_by((ACC.c.name_key == bindparam("key")).desc(), ACC.c.name_key)
    .limit(6)
)


# An accounts row as read, or as this transaction has since changed it (see `changed`).
AccountRecord: TypeAlias = Row[Any] | SimpleNamespace


def changed(acc: AccountRecord, **values: Any) -> SimpleNamespace:
    """The account as this transaction just wrote it, without reading it back: a stage move and the
    automations it sets off each saw one more SELECT of the row they had just updated."""
    current = dict(acc._mapping) if isinstance(acc, Row) else vars(acc)
    return SimpleNamespace(**{**current, **values})


def account_view(row: AccountRecord) -> AccountView:
    return AccountView(
        id=row.id,
        name=row.name,
        stage=row.stage,
        stage_entered_at=row.stage_entered_at,
        owner=row.owner,
        amount=row.amount,
        segment=row.segment,
        external_id=row.external_id,
        contract_end=row.contract_end,
        version=row.version,
    )


MAX_ID = 2**63 - 1  # ids are BIGINT (INTEGER on SQLite): a larger number can only be "not found"


def valid_id(n: int) -> bool:
    return 0 < n <= MAX_ID


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def account_names_among(s: Connection, names: Collection[str]) -> set[str]:
    """Those of `names` that are exactly some account's name (case and spacing aside): no prefixes,
    no #ID. One query, whatever the number of names."""
    keys = {n: k for n in names if (k := name_key(n)) and "\x00" not in k}
    if not keys:
        return set()
    found = set(s.execute(select(ACC.c.name_key).where(ACC.c.name_key.in_(set(keys.values())))).scalars())
    return {n for n, k in keys.items() if k in found}


def find_account(s: Connection, ref: str) -> Row[Any]:
    """An account by `#ID`, exact name, or unique name prefix (case-insensitive)."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput(Text("Which account? Give a name or #ID.", "请指定客户名称或 #编号。"))
    if "\x00" in ref:  # no name can hold it (and PostgreSQL would refuse the lookup)
        raise NotFound(
            Text("No account by that name (it contains a NUL character).", "没有这个客户(名称含 NUL 字符)。")
        )
    conn = s
    if ref.startswith("#") and ref[1:].isascii() and ref[1:].isdigit():
        n = int(ref[1:]) if len(ref) <= 20 else 0  # beyond 64 bits: no such row, and no driver overflow
        row = conn.execute(SELECT_ACCOUNT_BY_ID, {"id": n}).first() if 0 < n <= MAX_ID else None
        if row is None:
            raise NotFound(Text(f"No account {ref}.", f"没有编号为 {ref} 的客户。"))
        return row
    key = name_key(ref)
    rows = conn.execute(SELECT_ACCOUNT_BY_NAME, {"key": key, "upper": key + "\U0010ffff"}).all()
    if rows and (rows[0].name_key == key or len(rows) == 1):
        return rows[0]
    if len(rows) > 1:
        names = [r.name for r in rows[:5]] + (["…"] if len(rows) > 5 else [])
        raise AmbiguousAccount(ref, names)
    by_ext = s.execute(select(ACC).where(ACC.c.external_id == ref)).first()
    if by_ext is not None:
        return by_ext
    similar = s.execute(select(ACC.c.name).where(ACC.c.name_key.contains(key, autoescape=True)).limit(5)).scalars()
    hint = ", ".join(similar)
    raise NotFound(
        Text(
            f'No account named "{ref}".' + (f" Did you mean: {hint}?" if hint else ""),
            f"没有名为“{ref}”的客户。" + (f"你是不是要找:{hint}?" if hint else ""),
        )
    )
