"""CSV import and export of accounts: read and validate every row, then apply all or nothing.

An import writes history (kind and via "import") but no outbox events: a 100,000-row import must
not flood the chat channels. Re-importing the same file changes nothing (no history, no versions).
A stage change goes through the pipeline's moves (see `_route`); `force` (the operator's --force)
applies a gated or illegal one anyway, recorded as forced. A dry run plans and writes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import Connection, insert, select, update

from lifecycle.db.tables import ACC, APPROVALS, HIST, TICKS
from lifecycle.db.uow import Database
from lifecycle.domain.access import Actor
from lifecycle.domain.clock import Clock
from lifecycle.domain.crm_maps import StageLookup, UnknownValue, export_value, forward_reach
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.i18n import Text
from lifecycle.domain.limits import LIMITS, MAX_NAME
from lifecycle.domain.money import parse_amount  # InvalidAmount is a ValueError: a row problem below
from lifecycle.domain.pipeline import Pipeline, Transition
from lifecycle.domain.rules import Rules
from lifecycle.read.accounts import name_key
from lifecycle.usecases.base import SUPERSEDE_HANDOFFS, bump, superseded_note
from lifecycle.usecases.csv_text import DELIMITERS, DateOrder, DateStyle, decode, sniff_delimiter

COLUMNS = ("name", "stage", "owner", "amount", "segment", "external_id", "contract_end")
VIA = "import"
FORCED = "forced by import"
BATCH = 2000

# Header aliases, folded (see `_fold`); the first alias of a field that a file has wins, so a
# Salesforce opportunities report with "Account Name" and "Opportunity Name" names accounts by the
# first. "Industry" and "Type" are not segments: a CRM's industry is not how a team segments its
# accounts, so only a column called segment fills it (the others are listed as ignored).
ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "name",
        "account name",
        "company name",
        "account",
        "company",
        "公司名称",
        "客户名称",
        "名称",
        "deal name",
        "opportunity name",
    ),
    "stage": ("stage", "lifecycle stage", "lifecyclestage", "deal stage", "dealstage", "阶段", "生命周期阶段"),
    "owner": (
        "owner",
        "account owner",
        "company owner",
        "deal owner",
        "opportunity owner",
        "hubspot owner",
        "contact owner",
        "负责人",
        "所有者",
    ),
    "amount": ("amount", "deal amount", "arr", "acv", "金额", "合同金额"),
    "segment": ("segment", "细分市场"),
    "external_id": (
        "external id",
        "account id",
        "record id",
        "company id",
        "opportunity id",
        "deal id",
        "id",
        "外部编号",
        "记录编号",
    ),
    "contract_end": ("contract end", "contract end date", "renewal date", "合同到期日", "续约日期"),
}
# The columns an export writes, in COLUMNS order, per --format; each is an alias of its field.
EXPORT_HEADERS: dict[str, tuple[str, ...]] = {
    "stagebot": COLUMNS,
    "hubspot": ("Company name", "Lifecycle Stage", "Company owner", "Amount", "Segment", "Record ID", "Renewal Date"),
    "salesforce": ("Account Name", "Stage", "Account Owner", "Amount", "Segment", "Account ID", "Contract End Date"),
}
MAX_LEN = {f: LIMITS[f] for f in ("segment", "external_id", "owner")}  # the core's limits (domain/limits.py)
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
    stage_floor: bool = False  # a CRM value (see crm_maps): an account at or past `stage` keeps its own


def platform_ref(text: str) -> str | None:
    """The default owner resolver: a `platform:id` reference as written, else unknown (None)."""
    return text if OWNER.match(text) else None


@dataclass
class ReadResult:
    """What `read_rows` found: the valid rows, every problem, the columns it ignored, and how the
    file was written (its encoding when read from bytes, its delimiter)."""

    rows: list[AccountRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ","

    @property
    def delimiter_name(self) -> str:
        return DELIMITERS.get(self.delimiter, repr(self.delimiter))


@dataclass(frozen=True)
class RowChange:
    """What an import does to one row's account: `row 7 Acme: stage SQL → PQL, amount 5,000 → 7,000`."""

    row: int
    name: str
    changes: tuple[str, ...]  # "stage SQL → PQL" and the like; empty for a new account
    new: bool = False
    forced: bool = False

    def __str__(self) -> str:
        what = ", ".join(self.changes)
        return f"row {self.row} {self.name}: {what}" + (" (forced)" if self.forced else "")


@dataclass(frozen=True)
class ImportResult:
    """Counts, and in detail (not compared) each created or changed row and, for a dry run, the
    problems that would refuse the file."""

    added: int
    updated: int
    unchanged: int
    changes: tuple[RowChange, ...] = field(default=(), compare=False)
    problems: tuple[RowProblem, ...] = field(default=(), compare=False)

    @property
    def forced(self) -> int:
        return sum(1 for c in self.changes if c.forced)


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


def export_accounts(
    db: Database, out: TextIO, *, fmt: str = "stagebot", pipeline: Pipeline | None = None, excel: bool = False
) -> int:
    """Write every account, ordered by id, as CSV; streamed from the database. The row count.

    `fmt` picks the column names (EXPORT_HEADERS) and, for a CRM, writes stages as that CRM's
    canonical value where it has one (crm_maps.EXPORT_VALUES; needs `pipeline`). `excel` starts
    the file with a UTF-8 byte-order mark and ends lines with CRLF, as Excel's "CSV UTF-8" does:
    without the mark Excel reads the file in the system's code page and garbles Chinese."""
    headers = EXPORT_HEADERS[fmt]
    w = csv.writer(out, lineterminator="\r\n" if excel else "\n")
    if excel:
        out.write("\ufeff")
    w.writerow(headers)
    stage_of: Callable[[str], str] = (
        (lambda key: export_value(pipeline, fmt, key)) if pipeline is not None else (lambda key: key)
    )
    stage_col = COLUMNS.index("stage")
    n = 0
    stmt = select(*(ACC.c[col] for col in COLUMNS)).order_by(ACC.c.id)
    with db.reader() as uow:
        result = uow.conn.execution_options(stream_results=True, yield_per=BATCH).execute(stmt)
        for row in result:
            cells = ["" if v is None else v.isoformat() if isinstance(v, date) else str(v) for v in row]
            cells[stage_col] = stage_of(cells[stage_col])
            w.writerow(cells)
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


def read_bytes(
    data: bytes,
    pipeline: Pipeline,
    *,
    stage_map: dict[str, str] | None = None,
    owner_of: Callable[[str], str | None] = platform_ref,
    date_format: DateOrder | None = None,
) -> ReadResult:
    """`read_rows` over a file's bytes, its encoding detected (csv_text.decode); an encoding that
    cannot be read is a row-1 problem, never a codec error."""
    try:
        text, encoding = decode(data)
    except ValueError as exc:
        return ReadResult(problems=[RowProblem(1, "", f"cannot read the file: {exc}")])
    result = read_rows(text, pipeline, stage_map=stage_map, owner_of=owner_of, date_format=date_format)
    result.encoding = encoding
    return result


def read_rows(
    f: TextIO | str,
    pipeline: Pipeline,
    *,
    stage_map: dict[str, str] | None = None,
    owner_of: Callable[[str], str | None] = platform_ref,
    date_format: DateOrder | None = None,
) -> ReadResult:
    """Parse and validate a whole CSV file; nothing touches the database.

    The delimiter (comma, semicolon or tab) is sniffed from the header line. Header names from
    HubSpot and Salesforce exports, and Chinese ones, are accepted (see ALIASES); unknown columns
    are listed in `ignored`. Stage values are the pipeline's keys and labels, `stage_map` (the
    config's [import.stage_map]) and the built-in CRM maps (crm_maps). `owner_of` turns an owner
    cell into a person reference, or None when it knows no such person (the default accepts
    `platform:id` only; the people directory plugs in here). `date_format` says how D/M/Y-style
    dates are meant when the file itself does not show it. Problems name the row as a
    spreadsheet does (the header is row 1). Blank rows are skipped. Whether a terminal stage or a
    stage change is allowed depends on the database, so `import_accounts` checks that.
    """
    text = f if isinstance(f, str) else f.read()
    text = text.removeprefix("\ufeff")
    result = ReadResult(delimiter=sniff_delimiter(text))
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=result.delimiter))
    if not records:
        result.problems.append(RowProblem(1, "", "the file is empty; the first row must name the columns"))
        return result
    header = records[0]
    cols, result.ignored = _map_header(header)
    if "name" not in cols:
        result.problems.append(
            RowProblem(1, "", "no name column (accepted: name, account name, company name, account, company, 公司名称)")
        )
        return result
    fields = frozenset(cols)
    labels = {f: header[i].strip() or f for f, i in cols.items()}  # problems name the file's own column
    stages = StageLookup(pipeline, stage_map)
    end_col = cols.get("contract_end")
    dates = DateStyle.of(
        [(n, r[end_col]) for n, r in enumerate(records[1:], start=2) if end_col is not None and end_col < len(r)],
        date_format,
    )
    seen_names: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for rownum, record in enumerate(records[1:], start=2):
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
        floor = False
        if cells.get("stage"):
            try:
                found = stages.resolve(cells["stage"])
                stage, floor = found.key, found.floor
            except UnknownValue as exc:
                bad(("stage", str(exc)))
        amount: Decimal | None = None
        if cells.get("amount"):
            try:
                amount = parse_amount(cells["amount"])
            except ValueError as exc:
                bad(("amount", str(exc)))
        owner: str | None = None
        if cells.get("owner"):
            owner = owner_of(cells["owner"])
            if owner is None:
                bad(
                    (
                        "owner",
                        f'"{cells["owner"]}" is not a known person (write a [people] key, email or name, '
                        "or platform:id)",
                    )
                )
        contract_end: date | None = None
        if cells.get("contract_end"):
            try:
                contract_end = dates.parse(cells["contract_end"])
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
            AccountRow(
                rownum,
                name,
                stage,
                owner,
                amount,
                segment,
                external_id,
                contract_end,
                fields=fields,
                stage_floor=floor,
            )
        )
    return result


# ---------------------------------------------------------------- import


@dataclass
class _Update:
    acc: Any
    row: AccountRow
    changes: dict[str, Any]
    steps: list[str] = field(default_factory=list)  # the stages an import passes through, target last
    forced: bool = False


@dataclass
class _Plan:
    inserts: list[AccountRow] = field(default_factory=list)
    updates: list[_Update] = field(default_factory=list)
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


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"  # as stored: Numeric(16, 2)
    return value.isoformat() if isinstance(value, date) else str(value)


def _describe(acc: Any, up: _Update) -> tuple[str, ...]:
    out = []
    for col, value in up.changes.items():
        if col == "name_key":
            continue
        if col == "stage":
            out.append("stage " + " → ".join([acc.stage, *up.steps]))
        else:
            out.append(f"{col} {_shown(getattr(acc, col))} → {_shown(value)}")
    return tuple(out)


def _forward_path(p: Pipeline, source: str, target: str, *, gated: bool) -> list[Transition] | None:
    """The shortest chain of forward ("advance") moves from source to target (through approval
    gates only when `gated`), or None."""
    back: dict[str, Transition] = {}
    queue = deque([source])
    while queue:
        cur = queue.popleft()
        if cur == target:
            path: list[Transition] = []
            while cur != source:
                path.append(back[cur])
                cur = back[cur].source
            return path[::-1]
        for t in p.next_stages(cur):
            if t.kind == "advance" and (gated or t.approval is None) and t.target not in back and t.target != source:
                back[t.target] = t
                queue.append(t.target)
    return None


def _route(p: Pipeline, source: str, target: str) -> tuple[list[Transition], str | None]:
    """How an import moves an account from `source` to `target`, and what stops it (None: nothing).

    The pipeline's direct move when it has one (forward, back, churn or win-back), else the
    shortest chain of forward moves, each recorded in history. A move that needs an approval is
    not the import's to make: approvals are asked and given in chat."""
    edge = p.transition(source, target)
    path = [edge] if edge is not None else _forward_path(p, source, target, gated=False)
    if path is None:
        path = _forward_path(p, source, target, gated=True)
    if path is None:
        allowed = ", ".join(t.target for t in p.next_stages(source)) or "nothing (it is final)"
        return [], f"an import cannot move {source} → {target}: from {source} an account moves to {allowed}"
    gate = next((t for t in path if t.approval is not None), None)
    if gate is not None and gate.approval is not None:
        team = p.team_by_key[gate.approval.team].label("en") if gate.approval.team in p.team_by_key else "?"
        route = " → ".join([source, *(t.target for t in path)])
        return path, (
            f"{route} passes the approval gate {gate.source} → {gate.target} ({team} approves); "
            f"ask for it in chat, or pass --force"
        )
    return path, None


def _checklists(s: Connection, p: Pipeline, acc: Any, path: list[Transition]) -> str | None:
    """Why the account cannot leave a stage on `path` whose checklist must be done first."""
    for t in path:
        st = p.stage(t.source)
        if not (st.require_checklist and st.checklist):
            continue
        ticked = set(
            s.execute(select(TICKS.c.item).where(TICKS.c.account_id == acc.id, TICKS.c.stage == st.key)).scalars()
        )
        if st.key != acc.stage:
            ticked = set()  # passed through within this import: nothing ticked there
        missing = [i.key for i in st.checklist if i.key not in ticked]
        if missing:
            return (
                f"{st.key} must have its checklist done before leaving it (open: {', '.join(missing)}); or pass --force"
            )
    return None


def _plan(s: Connection, rows: list[AccountRow], pipeline: Pipeline, force: bool) -> _Plan:
    plan = _Plan()
    by_key: dict[str, Any] = {}
    by_ext: dict[str, Any] = {}
    for existing in s.execute(select(ACC)):
        by_key[existing.name_key] = existing
        if existing.external_id is not None:
            by_ext[existing.external_id] = existing
    claimed: dict[int, int] = {}  # account id -> file row that matched it
    reach: dict[str, set[str]] = {}
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
        if acc is not None and row.stage is not None and row.stage_floor:
            # A CRM value names the earliest stage it implies: an account already past it stays.
            ahead = reach.setdefault(row.stage, forward_reach(pipeline, row.stage))
            if acc.stage in ahead:
                row = replace(row, stage=None)
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
        if not ch:
            plan.unchanged += 1
            continue
        up = _Update(acc, row, ch)
        if "stage" in ch:
            path, why = _route(pipeline, acc.stage, ch["stage"])
            why = why or _checklists(s, pipeline, acc, path)
            if why is None:
                up.steps = [t.target for t in path]
            elif force:
                up.steps, up.forced = [ch["stage"]], True
            else:
                plan.problems.append(RowProblem(row.row, "stage", why))
                continue
        plan.updates.append(up)
    return plan


def import_accounts(
    db: Database,
    rows: list[AccountRow],
    *,
    actor: Actor,
    clock: Clock,
    rules: Rules,
    force: bool = False,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Apply validated rows in one transaction: update matches (by external id, else by name) where
    the file differs, add the rest. Raises ImportRefused, having written nothing, when rows conflict
    with the database (a name that belongs to another account, a new account in a terminal stage, a
    stage change the pipeline does not allow or that needs an approval; `force` applies those stage
    changes anyway, as the operator's decision, recorded with reason "forced by import").

    `dry_run` writes nothing and answers with what the import would do, its problems included
    (it does not raise). `progress` hears how many rows are done."""
    p = rules.pipeline
    with db.reader() if dry_run else db.uow() as uow:
        s = uow.conn
        now = clock.now()
        plan = _plan(s, rows, p, force)
        problems = sorted(plan.problems, key=lambda pr: pr.row)
        changes = [
            RowChange(r.row, r.name, (f"new in {r.stage or p.first_stage.key}",), new=True) for r in plan.inserts
        ]
        changes += [RowChange(u.row.row, u.row.name, _describe(u.acc, u), forced=u.forced) for u in plan.updates]
        changes.sort(key=lambda c: c.row)
        result = ImportResult(
            added=len(plan.inserts),
            updated=len(plan.updates),
            unchanged=plan.unchanged,
            changes=tuple(changes),
            problems=tuple(problems),
        )
        if dry_run:
            return result
        if problems:
            raise ImportRefused(problems)
        done = plan.unchanged
        history: list[dict[str, Any]] = []

        def hist(
            account_id: int,
            source: str | None,
            target: str,
            kind: str,
            entered: datetime | None = None,
            reason: str = "",
        ) -> dict[str, Any]:
            return {
                "account_id": account_id,
                "from_stage": source,
                "to_stage": target,
                "kind": kind,
                "at": now,
                "actor": actor.ref,
                "via": VIA,
                "reason": reason,
                "from_entered_at": entered,  # the stay in `source` this row ends (see StageChange)
                "stay_seconds": (now - entered).total_seconds() if entered is not None else None,
            }

        left_gates: list[int] = []
        left_stages: list[dict[str, Any]] = []
        for up in plan.updates:
            acc, ch = up.acc, up.changes
            if "stage" in ch:
                ch["stage_entered_at"] = now
                source, entered = acc.stage, acc.stage_entered_at
                for step in up.steps:
                    history.append(hist(acc.id, source, step, "import", entered, FORCED if up.forced else ""))
                    source, entered = step, now
                if any(t.approval is not None for t in p.next_stages(acc.stage)):
                    left_gates.append(acc.id)
                note = superseded_note(ch.get("name", acc.name), ch["stage"], by_import=True)
                left_stages.append({"b_account": acc.id, "b_now": now, "b_note": note})
            bump(s, acc, now, **ch)
            done += 1
            if progress is not None and done % BATCH == 0:
                progress(done)
        for ids in _batches(left_gates, BATCH):
            # Leaving a gated stage withdraws the approval that was waiting there, as a move in chat does.
            s.execute(
                update(APPROVALS)
                .where(APPROVALS.c.account_id.in_(ids), APPROVALS.c.status == "pending")
                .values(status="cancelled", decided_at=now, decided_by=actor.ref, note="account moved by import")
            )
        for sbatch in _batches(left_stages, BATCH):
            # Leaving a stage closes its handoffs, as a move in chat does (an import tells no one).
            s.execute(SUPERSEDE_HANDOFFS, sbatch)
        for batch in _batches(plan.inserts, BATCH):
            values = [_new_account(r, p.first_stage.key, now) for r in batch]
            # A plain executemany, then the new ids by name: INSERT ... RETURNING over many rows is
            # sent as one huge statement, which psycopg parses slowly (20 s for 100,000 accounts).
            s.execute(insert(ACC), values)
            keys = [v["name_key"] for v in values]
            found = s.execute(select(ACC.c.name_key, ACC.c.id).where(ACC.c.name_key.in_(keys)))
            ids_by_key: dict[str, int] = {r.name_key: r.id for r in found}
            history.extend(hist(ids_by_key[v["name_key"]], None, v["stage"], "create") for v in values)
            done += len(batch)
            if progress is not None:
                progress(done)
        for hbatch in _batches(history, BATCH):
            s.execute(insert(HIST), hbatch)
        uow.commit()
    if progress is not None:
        progress(len(rows))
    return result


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
