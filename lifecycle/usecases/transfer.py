"""CSV import and export of accounts: read and validate every row, then apply all or nothing.

An import writes history (kind and via "import") but no outbox events: a 100,000-row import must
not flood the chat channels. Re-importing the same file changes nothing (no history, no versions).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import Connection, insert, select

from lifecycle.db.tables import ACC, HIST
from lifecycle.db.uow import Database
from lifecycle.domain.access import Actor
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import LifecycleError, UnknownStage
from lifecycle.domain.i18n import Text
from lifecycle.domain.limits import MAX_NAME
from lifecycle.domain.money import parse_amount  # InvalidAmount is a ValueError: a row problem below
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.rules import Rules
from lifecycle.read.accounts import name_key
from lifecycle.usecases.base import bump

COLUMNS = ("name", "stage", "owner", "amount", "segment", "external_id", "contract_end")
VIA = "import"
BATCH = 2000

# Header aliases, folded (see `_fold`); the first alias of a field that a file has wins, so a
# Salesforce file with both "Type" and "Industry" takes its segment from "Industry".
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "account name", "company name", "account", "company"),
    "stage": ("stage", "lifecycle stage", "lifecyclestage"),
    "owner": ("owner", "account owner", "company owner", "hubspot owner", "contact owner"),
    "amount": ("amount", "deal amount", "arr", "acv"),
    "segment": ("segment", "industry", "type"),
    "external_id": ("external id", "account id", "record id", "company id", "id"),
    "contract_end": ("contract end", "contract end date", "renewal date"),
}
MAX_LEN = {"segment": 64, "external_id": 128, "owner": 120}
OWNER = re.compile(r"^[a-z][a-z0-9_-]*:[^\s:]\S*$")
DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?$")


@dataclass(frozen=True)
class RowProblem:
    """Why a row of the file cannot be imported; `row` as a spreadsheet numbers it (header = 1)."""

    row: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.problem}" if self.column else f"row {self.row}: {self.problem}"


@dataclass(frozen=True)
class AccountRow:
    """One valid row. `fields` are the columns the file has: an absent column leaves a value alone,
    an empty cell in a present column clears it (except stage: empty keeps it, or starts new
    accounts in the first stage; and external_id, which import never clears)."""

    row: int
    name: str
    stage: str | None = None
    owner: str | None = None
    amount: Decimal | None = None
    segment: str | None = None
    external_id: str | None = None
    contract_end: date | None = None
    fields: frozenset[str] = frozenset(COLUMNS)


@dataclass
class ReadResult:
    """What `read_rows` found: the valid rows, every problem, and the columns it ignored."""

    rows: list[AccountRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int


class ImportRefused(LifecycleError):
    """Rows that conflict with the database (found before anything was written)."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(
            Text(
                f"The import changed nothing: {len(problems)} row problem(s).",
                f"导入未做任何更改:{len(problems)} 处行错误。",
            )
        )
        self.problems = problems


# ---------------------------------------------------------------- export


def export_accounts(db: Database, out: TextIO) -> int:
    """Write every account, ordered by id, as CSV; streamed from the database. The row count."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    n = 0
    stmt = select(*(ACC.c[col] for col in COLUMNS)).order_by(ACC.c.id)
    with db.reader() as uow:
        result = uow.conn.execution_options(stream_results=True, yield_per=BATCH).execute(stmt)
        for row in result:
            w.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else str(v) for v in row])
            n += 1
    return n


# ---------------------------------------------------------------- read and validate


def _fold(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.strip().casefold())


_FIELD_OF = {_fold(alias): (f, i) for f, aliases in ALIASES.items() for i, alias in enumerate(aliases)}


def _map_header(header: list[str]) -> tuple[dict[str, int], list[str]]:
    """Which column index holds each field, and the header cells that were ignored."""
    best: dict[str, tuple[int, int]] = {}  # field -> (alias rank, column index)
    for idx, cell in enumerate(header):
        hit = _FIELD_OF.get(_fold(cell))
        if hit is not None and (hit[0] not in best or hit[1] < best[hit[0]][0]):
            best[hit[0]] = (hit[1], idx)
    used = {idx for _, idx in best.values()}
    ignored = [cell for idx, cell in enumerate(header) if idx not in used and cell.strip()]
    return {f: idx for f, (_, idx) in best.items()}, ignored


def parse_date(text: str) -> date:
    m = DATE.match(text.strip())
    if m is not None:
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            pass
    raise ValueError(f'"{text}" is not a date (write 2026-09-01)')


def read_rows(f: TextIO, pipeline: Pipeline) -> ReadResult:
    """Parse and validate a whole CSV file; nothing touches the database.

    Header names from HubSpot and Salesforce exports are accepted (see ALIASES); unknown columns
    are listed in `ignored`. Problems name the row as a spreadsheet does (the header is row 1).
    Blank rows are skipped. Stages are resolved to keys here; whether a terminal stage is allowed
    depends on the database (an account already there may stay), so `import_accounts` checks it.
    """
    result = ReadResult()
    records = csv.reader(f)
    header = next(records, None)
    if header is None:
        result.problems.append(RowProblem(1, "", "the file is empty; the first row must name the columns"))
        return result
    cols, result.ignored = _map_header(header)
    if "name" not in cols:
        result.problems.append(
            RowProblem(1, "", "no name column (accepted: name, account name, company name, account, company)")
        )
        return result
    fields = frozenset(cols)
    labels = {f: header[i].strip() or f for f, i in cols.items()}  # problems name the file's own column
    seen_names: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for rownum, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue
        cells = {f: (record[i].strip() if i < len(record) else "") for f, i in cols.items()}
        problems: list[tuple[str, str]] = []  # (field, problem)
        bad = problems.append

        name = " ".join(cells["name"].split())
        if not name:
            bad(("name", "the name is missing"))
        elif name.startswith("#") or len(name) > MAX_NAME:
            bad(("name", f"a name must be 1-{MAX_NAME} characters and not start with #"))
        else:
            first = seen_names.setdefault(name_key(name), rownum)
            if first != rownum:
                bad(("name", f'"{name}" is also on row {first}'))
        stage: str | None = None
        if cells.get("stage"):
            try:
                stage = pipeline.resolve_stage(cells["stage"]).key
            except UnknownStage as exc:
                bad(("stage", f'"{cells["stage"]}" is not a stage (stages: {", ".join(exc.valid)})'))
        amount: Decimal | None = None
        if cells.get("amount"):
            try:
                amount = parse_amount(cells["amount"])
            except ValueError as exc:
                bad(("amount", str(exc)))
        owner = cells.get("owner") or None
        if owner is not None and not OWNER.match(owner):
            bad(("owner", f'"{owner}" is not a person reference (write platform:id, e.g. slack:U0ALICE)'))
        contract_end: date | None = None
        if cells.get("contract_end"):
            try:
                contract_end = parse_date(cells["contract_end"])
            except ValueError as exc:
                bad(("contract_end", str(exc)))
        external_id = cells.get("external_id") or None
        if external_id is not None:
            first = seen_ids.setdefault(external_id, rownum)
            if first != rownum:
                bad(("external_id", f'"{external_id}" is also on row {first}'))
        segment = cells.get("segment") or None
        for col, value in (("segment", segment), ("external_id", external_id), ("owner", owner)):
            if value is not None and len(value) > MAX_LEN[col]:
                bad((col, f"longer than {MAX_LEN[col]} characters"))
        if problems:
            result.problems.extend(RowProblem(rownum, labels[col], problem) for col, problem in problems)
            continue
        result.rows.append(
            AccountRow(rownum, name, stage, owner, amount, segment, external_id, contract_end, fields=fields)
        )
    return result


# ---------------------------------------------------------------- import


@dataclass
class _Plan:
    inserts: list[AccountRow] = field(default_factory=list)
    updates: list[tuple[Any, AccountRow, dict[str, Any]]] = field(default_factory=list)  # (existing, row, changes)
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def _changes(acc: Any, row: AccountRow) -> dict[str, Any]:
    """The columns this row changes on an existing account (empty when the row matches it)."""
    ch: dict[str, Any] = {}
    if row.name != acc.name:
        ch["name"] = row.name
        ch["name_key"] = name_key(row.name)
    if row.stage is not None and row.stage != acc.stage:
        ch["stage"] = row.stage
    for col in ("owner", "amount", "segment", "contract_end"):
        if col in row.fields and getattr(row, col) != getattr(acc, col):
            ch[col] = getattr(row, col)
    if row.external_id is not None and acc.external_id is None:
        ch["external_id"] = row.external_id  # an account added in chat adopts its CRM id
    return ch


def _plan(s: Connection, rows: list[AccountRow], pipeline: Pipeline) -> _Plan:
    plan = _Plan()
    by_key: dict[str, Any] = {}
    by_ext: dict[str, Any] = {}
    for existing in s.execute(select(ACC)):
        by_key[existing.name_key] = existing
        if existing.external_id is not None:
            by_ext[existing.external_id] = existing
    claimed: dict[int, int] = {}  # account id -> file row that matched it
    for row in rows:
        key = name_key(row.name)
        named = by_key.get(key)
        acc = by_ext.get(row.external_id) if row.external_id is not None else None
        if acc is None and named is not None:
            if row.external_id is None or named.external_id is None:
                acc = named
            else:
                plan.problems.append(
                    RowProblem(
                        row.row,
                        "name",
                        f'"{row.name}" belongs to account #{named.id} with external id {named.external_id}, '
                        f"not {row.external_id}",
                    )
                )
                continue
        if acc is not None and named is not None and named.id != acc.id:
            plan.problems.append(
                RowProblem(row.row, "name", f'renaming to "{row.name}" clashes with account #{named.id} ({named.name})')
            )
            continue
        if acc is not None:
            first = claimed.setdefault(acc.id, row.row)
            if first != row.row:
                plan.problems.append(RowProblem(row.row, "", f"matches account #{acc.id} ({acc.name}) as row {first}"))
                continue
        stage_key = row.stage or (acc.stage if acc is not None else pipeline.first_stage.key)
        stage = pipeline.stage(stage_key)
        if stage.terminal and (acc is None or acc.stage != stage.key):
            what = "new accounts cannot start in" if acc is None else "an import cannot move an account into"
            plan.problems.append(RowProblem(row.row, "stage", f"{what} {stage.title('en')} (a terminal stage)"))
            continue
        if acc is None:
            plan.inserts.append(row)
            continue
        ch = _changes(acc, row)
        if ch:
            plan.updates.append((acc, row, ch))
        else:
            plan.unchanged += 1
    return plan


def import_accounts(
    db: Database,
    rows: list[AccountRow],
    *,
    actor: Actor,
    clock: Clock,
    rules: Rules,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Apply validated rows in one transaction: update matches (by external id, else by name) where
    the file differs, add the rest. Raises ImportRefused, having written nothing, when rows conflict
    with the database (a name that belongs to another account, a new account in a terminal stage).
    `progress` hears how many rows are done."""
    p = rules.pipeline
    with db.uow() as uow:
        s = uow.conn
        now = clock.now()
        plan = _plan(s, rows, p)
        if plan.problems:
            raise ImportRefused(sorted(plan.problems, key=lambda pr: pr.row))
        done = plan.unchanged
        history: list[dict[str, Any]] = []

        def hist(
            account_id: int, source: str | None, target: str, kind: str, entered: datetime | None = None
        ) -> dict[str, Any]:
            return {
                "account_id": account_id,
                "from_stage": source,
                "to_stage": target,
                "kind": kind,
                "at": now,
                "actor": actor.ref,
                "via": VIA,
                "reason": "",
                "from_entered_at": entered,  # the stay in `source` this row ends (see StageChange)
                "stay_seconds": (now - entered).total_seconds() if entered is not None else None,
            }

        for acc, _row, ch in plan.updates:
            if "stage" in ch:
                ch["stage_entered_at"] = now
                history.append(hist(acc.id, acc.stage, ch["stage"], "import", acc.stage_entered_at))
            bump(s, acc, now, **ch)
            done += 1
            if progress is not None and done % BATCH == 0:
                progress(done)
        for batch in _batches(plan.inserts, BATCH):
            values = [_new_account(r, p.first_stage.key, now) for r in batch]
            # A plain executemany, then the new ids by name: INSERT ... RETURNING over many rows is
            # sent as one huge statement, which psycopg parses slowly (20 s for 100,000 accounts).
            s.execute(insert(ACC), values)
            keys = [v["name_key"] for v in values]
            found = s.execute(select(ACC.c.name_key, ACC.c.id).where(ACC.c.name_key.in_(keys)))
            ids: dict[str, int] = {r.name_key: r.id for r in found}
            history.extend(hist(ids[v["name_key"]], None, v["stage"], "create") for v in values)
            done += len(batch)
            if progress is not None:
                progress(done)
        for hbatch in _batches(history, BATCH):
            s.execute(insert(HIST), hbatch)
        uow.commit()
    if progress is not None:
        progress(len(rows))
    return ImportResult(added=len(plan.inserts), updated=len(plan.updates), unchanged=plan.unchanged)


def _new_account(row: AccountRow, first_stage: str, now: datetime) -> dict[str, Any]:
    return {
        "name": row.name,
        "name_key": name_key(row.name),
        "stage": row.stage or first_stage,
        "stage_entered_at": now,
        "owner": row.owner,
        "amount": row.amount,
        "segment": row.segment,
        "external_id": row.external_id,
        "contract_end": row.contract_end,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
