"""The scheduler's `run_due` over a large book of accounts, against one hand-written query selecting the same due set.

    python -m bench.bench_due [--accounts 100000] [--due-pct 1] [--history-per-account 10] [--repeats 5]
                              [--no-scale] [--profile] [--analyze-sqlite] [--sqlite-only] [--pg-url URL]

For each engine (SQLite in a temp file; PostgreSQL in a throwaway schema when a server answers) and
each dataset it seeds a fresh database and measures, in the same run and on the same Engine:

* `lifecycle.usecases.scheduling.run_due(db, rules, schedule, now)` with the default pipeline, an empty
  roster, outbox target "console" and a Schedule that is never quiet (every weekday, hours 0-24):
  the first run at `now` (emits every due item: a key in `emissions`, an event in `outbox`, 500 per
  transaction) and a second run at the same instant (finds every key already emitted, emits
  nothing). Between repeats `DELETE FROM emissions; DELETE FROM outbox` (untimed) so that each first
  run really emits. Each first run must emit exactly the planned number of items per kind.
* the floor: one hand-written SQL query (`text()`, UNION ALL of three parts) selecting the same due
  set -- accounts past their stage's SLA (`stage_entered_at <= CASE stage WHEN 'MQL' THEN :cutoff
  ... END`: one scan), open handoffs older than the escalation time, accounts in a renewable stage
  whose contract ends within the renewal horizon or is unknown -- fetched fully. It must return
  exactly as many items per kind as the first run emitted (asserted), so the comparison is like for
  like.
* run_due's select phase on its own, for the breakdown: a reader transaction running every private
  `_<kind>_due` generator of lifecycle/usecases/scheduling.py (SLA, handoffs, renewals, and whatever else
  it has today, e.g. churn risk and "after N days" automations), as run_due runs them: the SELECTs
  and the items built from them, no writes. The rest of a first run is the writing: 500 items per
  transaction, emissions INSERT .. ON CONFLICT DO NOTHING RETURNING and the outbox rows.
  The dataset makes only the three kinds above due: the `signals` table is empty (churn risk finds
  nothing), and accounts stay in a stage for less than its first "after N days" automation. Those
  queries still run, inside run_due's time; the floor has no part for them.
* peak Python memory (tracemalloc, in separate untimed runs: tracing slows the code it watches) of
  the first run, the second run and the floor. This is memory allocated by Python objects only; the
  SQLite page cache and libpq's result buffers are C allocations tracemalloc does not see.

Each repeat runs floor, first run, second run, select phase, floor, so that drift hits all alike; the
table shows medians (floor: over both samples of every repeat). An untimed warm-up round comes first.

Datasets: the main one (`--accounts`, `--due-pct`), and unless --no-scale two more to show that
memory follows what is due and not the number of accounts: the same accounts with a tenth of the
due items, and a tenth of the accounts with the same number of due items.

Seeding (untimed) bypasses the use cases: `lifecycle.db.migrate.upgrade`, then Core executemany
batches into `accounts` and `handoffs`, then `stage_changes` with one INSERT ... SELECT (accounts
x 1..N, `--history-per-account` rows each; run_due never reads history, it is there for the
database's size). Accounts are spread round-robin over all stages of the default pipeline.
`stage_entered_at` is at least an hour inside the SLA for accounts that are not due and an hour to
60 days past it for the SLA-due ones; by default 10% of the due items are open handoffs older
than 24 h (accounts in P0 that are within their SLA; other P0 accounts have a claimed or a recent
handoff) and 10% renewals (P5 accounts whose contract ends in 1-89 days, a fifth of them with no
contract end: the monthly nudge). Every other P5 account has a contract end beyond the horizon or in
the past, and some accounts in non-renewable stages have one within it: they must not be due.
PostgreSQL is ANALYZEd after seeding (autovacuum would do it in production); SQLite is not (the app
never runs ANALYZE) unless --analyze-sqlite.

Target (the issue's): on SQLite the first run within 2x of the floor and under 2 s.
PostgreSQL URL: --pg-url, else $STAGEBOT_BENCH_DATABASE_URL, else the local default if it answers.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from inspect import signature
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, TextClause, bindparam, insert, text
from sqlalchemy.types import Date

from bench.common import (
    AgainstFloor,
    add_engine_args,
    counting,
    engines,
    fmt_counts,
    parser,
    profiled,
    timed,
    verdict,
)
from lifecycle.db.migrate import upgrade
from lifecycle.db.models import UTCDateTime
from lifecycle.db.tables import ACC, HANDOFFS
from lifecycle.db.uow import Database
from lifecycle.domain.access import Roster
from lifecycle.domain.pipeline import Pipeline, load_preset
from lifecycle.domain.rules import Rules
from lifecycle.usecases import scheduling
from lifecycle.usecases.scheduling import DueReport, Schedule, run_due

TARGET_RATIO = 2.0  # first run / floor, at most
TARGET_SECONDS = 2.0  # first run, at most (SQLite)

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # a Wednesday, 11:00 in Asia/Shanghai
ALWAYS = Schedule(working_days=(1, 2, 3, 4, 5, 6, 7), working_hours=(0, 24))
HANDOFF_STAGE = "P0"  # Sales -> CS: where the default pipeline opens handoffs
HOUR = 3600
DAY = 86400
BATCH_ROWS = 5000  # rows per executemany while seeding

SLA, HANDOFF, RENEWAL = "SlaReminder", "HandoffEscalated", "RenewalDue"
SNOOZE = "sla_snoozed_until"
KINDS = (SLA, HANDOFF, RENEWAL)


# ---------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class Plan:
    """How many accounts, and how many due items of each kind, a dataset is seeded with."""

    label: str
    accounts: int
    history_per_account: int
    due: dict[str, int]

    @property
    def total_due(self) -> int:
        return sum(self.due.values())

    @property
    def history(self) -> int:
        return self.accounts * self.history_per_account

    def describe(self) -> str:
        return f"{self.accounts:,} accounts, {self.total_due:,} due"


def make_plan(label: str, accounts: int, due: int, args: argparse.Namespace) -> Plan:
    handoffs = round(due * args.handoff_share)
    renewals = round(due * args.renewal_share)
    return Plan(
        label,
        accounts,
        args.history_per_account,
        {SLA: due - handoffs - renewals, HANDOFF: handoffs, RENEWAL: renewals},
    )


def seed(engine: Engine, pipeline: Pipeline, schedule: Schedule, plan: Plan, rng: random.Random) -> None:
    """Accounts, handoffs and history such that exactly `plan.due` items are due as of NOW."""
    stages = list(pipeline.stages)
    sla_days = {st.key: st.sla_days for st in stages if st.sla_days and not st.terminal}
    renewable = {st.key for st in stages if st.renewable}
    if HANDOFF_STAGE not in sla_days or not renewable:
        raise SystemExit(f"the pipeline needs an SLA stage {HANDOFF_STAGE} and a renewable stage")
    today = schedule.today(NOW)
    horizon = max(schedule.renewal_days)

    ids = range(1, plan.accounts + 1)
    stage_of = {i: stages[(i - 1) % len(stages)].key for i in ids}
    by_stage: dict[str, list[int]] = {}
    for i in ids:
        by_stage.setdefault(stage_of[i], []).append(i)

    def pick(pool: list[int], n: int, what: str) -> set[int]:
        if n > len(pool):
            raise SystemExit(f"{plan.label}: {n:,} {what} asked for, only {len(pool):,} candidates; use more accounts")
        return set(rng.sample(pool, n))

    # "After N days in stage" automations would make items of their own (and act on the accounts):
    # every account stays in its stage for less than the first of them, an hour to spare.
    stay = {st.key: 700 * DAY for st in stages}
    for auto in getattr(pipeline, "automations", ()):
        if getattr(auto, "on", None) == "days" and getattr(auto, "days", None):
            stay[auto.stage] = min(stay[auto.stage], auto.days * DAY - HOUR)
    # How late an SLA-due account may be; stages where an automation comes first cannot have any.
    late = {st: min(60 * DAY, stay[st] - d * DAY) for st, d in sla_days.items()}

    handoff_stage = by_stage.get(HANDOFF_STAGE, [])
    handoff_due = pick(handoff_stage, plan.due[HANDOFF], "due handoffs")
    sla_pool = [i for st in sla_days if late[st] > HOUR for i in by_stage.get(st, []) if i not in handoff_due]
    sla_due = pick(sla_pool, plan.due[SLA], "SLA-due accounts")
    renewal_pool = [i for st in renewable for i in by_stage.get(st, [])]
    renewal_due = pick(renewal_pool, plan.due[RENEWAL], "renewal-due accounts")
    no_end = set(rng.sample(sorted(renewal_due), len(renewal_due) // 5))

    def ago(seconds: int) -> datetime:
        return NOW - timedelta(seconds=seconds)

    accounts: list[dict[str, Any]] = []
    for i in ids:
        st = stage_of[i]
        contract_end: date | None = None
        if st in sla_days:
            limit = sla_days[st] * DAY
            # Due: an hour to 60 days past the SLA; not due: at least an hour inside it.
            if i in sla_due:
                entered = ago(limit + rng.randint(HOUR, late[st]))
            else:
                entered = ago(rng.randint(0, min(limit, stay[st]) - HOUR))
            if i % 7 == 0:  # a contract end inside the horizon, in a stage that is not renewable: not due
                contract_end = today + timedelta(days=rng.randint(1, horizon - 1))
        else:
            entered = ago(rng.randint(min(DAY, stay[st]), stay[st]))
            if st in renewable:
                if i in renewal_due:
                    contract_end = None if i in no_end else today + timedelta(days=rng.randint(1, horizon - 1))
                elif i % 2:
                    contract_end = today + timedelta(days=rng.randint(horizon + 30, horizon + 600))
                else:
                    contract_end = today - timedelta(days=rng.randint(1, 400))
        name = f"Bench Account {i:07d}"
        accounts.append(
            {
                "id": i,
                "name": name,
                "name_key": name.casefold(),
                "stage": st,
                "stage_entered_at": entered,
                "owner": None if i % 5 == 0 else f"slack:U{i % 200:04d}",
                "contract_end": contract_end,
                "created_at": entered - timedelta(seconds=rng.randint(0, 365 * DAY)),
                "updated_at": entered,
                "version": plan.history_per_account,
            }
        )

    # One handoff per account in the handoff stage: due ones open for over 24 h, as many open for
    # less, the rest claimed long ago.
    recent = set(
        rng.sample(
            [i for i in handoff_stage if i not in handoff_due],
            min(len(handoff_due), len(handoff_stage) - len(handoff_due)),
        )
    )
    escalate = schedule.handoff_escalate_hours * HOUR
    handoffs: list[dict[str, Any]] = []
    for i in handoff_stage:
        claimed = i not in handoff_due and i not in recent
        if i in handoff_due:
            opened = ago(escalate + rng.randint(HOUR, 30 * DAY))
        elif i in recent:
            opened = ago(rng.randint(0, escalate - HOUR))
        else:
            opened = ago(rng.randint(escalate + HOUR, 300 * DAY))
        handoffs.append(
            {
                "account_id": i,
                "stage": HANDOFF_STAGE,
                "from_teams": "sales",
                "to_team": "cs",
                "opened_at": opened,
                "opened_by": "bench",
                "status": "claimed" if claimed else "open",
                "claimed_by": "slack:U0CLAIM" if claimed else None,
                "claimed_at": opened + timedelta(hours=1) if claimed else None,
            }
        )

    with engine.begin() as conn:
        for table, rows in ((ACC, accounts), (HANDOFFS, handoffs)):
            for at in range(0, len(rows), BATCH_ROWS):
                conn.execute(insert(table), rows[at : at + BATCH_ROWS])
        if plan.history_per_account:
            # Server-side: accounts x 1..N. The first row of each account is its creation.
            conn.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :h) "
                    "INSERT INTO stage_changes (account_id, from_stage, to_stage, kind, at, actor, via, reason) "
                    "SELECT a.id, CASE WHEN n.i = 1 THEN NULL ELSE a.stage END, a.stage, "
                    "CASE WHEN n.i = 1 THEN 'create' ELSE 'advance' END, a.created_at, 'bench', 'bench', '' "
                    "FROM accounts a CROSS JOIN n"
                ),
                {"h": plan.history_per_account},
            )
    with engine.connect() as conn:
        n_acc = conn.execute(text("SELECT count(*) FROM accounts")).scalar_one()
        n_hist = conn.execute(text("SELECT count(*) FROM stage_changes")).scalar_one()
    assert (n_acc, n_hist) == (plan.accounts, plan.history), (n_acc, n_hist)


# ---------------------------------------------------------------- the floor


def floor_query(pipeline: Pipeline, schedule: Schedule, now: datetime) -> TextClause:
    """One statement selecting every due item (kind, item id, account name), as run_due's three queries do.

    The SLA part compares `stage_entered_at` with a CASE over the stage (the stage's cutoff; NULL for
    stages without an SLA): one scan of `accounts`. The obvious alternatives -- a VALUES table of
    (stage, cutoff) joined on stage, or run_due's OR of (stage = k AND entered <= cutoff_k) -- make
    SQLite look every SLA stage up in ix_accounts_stage and fetch ~80% of the table row by row, which
    is 2-3x slower than the scan on SQLite (on PostgreSQL all three are alike).
    """
    limits = [(st.key, st.sla_days) for st in pipeline.stages if st.sla_days and not st.terminal]
    renewable = [st.key for st in pipeline.stages if st.renewable]
    # Stage keys are validated identifiers (^[A-Za-z][A-Za-z0-9_]*$): safe to inline.
    whens = " ".join(f"WHEN '{key}' THEN :cut{n}" for n, (key, _) in enumerate(limits))
    stages = ", ".join(f"'{key}'" for key in renewable)
    # SLA reminders can be snoozed per account (when the schema has the column): none are in this dataset.
    awake = " AND (a.sla_snoozed_until IS NULL OR a.sla_snoozed_until <= :now)" if SNOOZE in ACC.c else ""
    sql = (
        f"SELECT '{SLA}' AS kind, a.id AS item, a.name AS account FROM accounts a "
        f"WHERE a.stage_entered_at <= CASE a.stage {whens} END{awake} "
        "UNION ALL "
        f"SELECT '{HANDOFF}', h.id, a.name FROM handoffs h JOIN accounts a ON a.id = h.account_id "
        "WHERE h.status = 'open' AND h.opened_at <= :handoff_cutoff "
        "UNION ALL "
        f"SELECT '{RENEWAL}', a.id, a.name FROM accounts a WHERE a.stage IN ({stages}) "
        "AND (a.contract_end IS NULL OR (a.contract_end >= :today AND a.contract_end <= :horizon))"
    )
    today = schedule.today(now)
    params = [bindparam(f"cut{n}", now - timedelta(days=d), type_=UTCDateTime()) for n, (_, d) in enumerate(limits)]
    params += [
        bindparam("handoff_cutoff", now - timedelta(hours=schedule.handoff_escalate_hours), type_=UTCDateTime()),
        bindparam("today", today, type_=Date()),
        bindparam("horizon", today + timedelta(days=max(schedule.renewal_days)), type_=Date()),
    ]
    if awake:
        params.append(bindparam("now", now, type_=UTCDateTime()))
    # The same bind processing as run_due's Core statements (SQLite stores datetimes as text).
    return text(sql).bindparams(*params)


# ---------------------------------------------------------------- measurement


def select_parts() -> list[Callable[..., Iterable[Any]]]:
    """run_due's select phase: the module's private `_<kind>_due` generators (whichever exist today)."""
    return [f for name, f in vars(scheduling).items() if name.startswith("_") and name.endswith("_due") and callable(f)]


@dataclass
class Measured(AgainstFloor):
    engine: str
    plan: Plan
    seed_s: float
    first: list[float] = field(default_factory=list)
    second: list[float] = field(default_factory=list)
    selects: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    peak_first: int = 0
    peak_second: int = 0
    peak_floor: int = 0
    statements: Counter[str] = field(default_factory=Counter)
    profile: str = ""
    max_ratio = TARGET_RATIO
    max_s = TARGET_SECONDS

    def subject(self) -> list[float]:
        return self.first


def peak(op: Callable[[], Any]) -> int:
    """Peak bytes traced by tracemalloc while `op` runs, above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        op()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM emissions"))
        conn.execute(text("DELETE FROM outbox"))


def check_first(report: DueReport, plan: Plan) -> None:
    want = {k: n for k, n in plan.due.items() if n}
    assert report.emitted == want and report.already == 0, (report, want)


def check_second(report: DueReport, plan: Plan) -> None:
    assert report.total == 0 and report.already == plan.total_due, (report, plan.due)


def measure(label: str, engine: Engine, plan: Plan, args: argparse.Namespace) -> Measured:
    tag = f"[{label} {plan.label}]"
    pipeline = load_preset("default")
    print(f"{tag} migrating and seeding {plan.accounts:,} accounts, {plan.history:,} history rows ...", flush=True)
    t0 = time.perf_counter()
    upgrade(engine)
    seed(engine, pipeline, ALWAYS, plan, random.Random(args.seed))
    if engine.dialect.name == "postgresql" or args.analyze_sqlite:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    m = Measured(label, plan, time.perf_counter() - t0)
    print(f"{tag} seeded in {m.seed_s:.1f} s; warm-up round ...", flush=True)

    db = Database(engine)
    rules = Rules(pipeline, Roster.build(members={}, approvers={}, admins=[]), targets=("console",))
    floor_stmt = floor_query(pipeline, ALWAYS, NOW)

    def floor() -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(floor_stmt).all()

    def first() -> DueReport:
        return run_due(db, rules, ALWAYS, NOW)

    second = first  # the same instant: every key is already there

    def select_phase() -> int:
        """run_due's reader transaction alone: its private per-kind generators, called as run_due calls them."""
        with db.reader() as uow:
            given = {"s": uow.conn, "rules": rules, "schedule": ALWAYS, "now": NOW}
            return sum(1 for part in select_parts() for _ in part(**{a: given[a] for a in signature(part).parameters}))

    # Warm-up (compiled-statement caches, page cache), and the fairness check: same items, same kinds.
    rows = floor()
    got = Counter(r.kind for r in rows)
    assert got == Counter({k: n for k, n in plan.due.items() if n}), (got, plan.due)
    with counting(engine) as seen:
        report = first()
    check_first(report, plan)
    assert Counter(report.emitted) == got, (report.emitted, got)
    m.statements = seen
    check_second(second(), plan)
    with engine.connect() as conn:
        emitted = conn.execute(text("SELECT count(*) FROM emissions")).scalar_one()
        outboxed = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    assert emitted == outboxed == plan.total_due, (emitted, outboxed)
    clear(engine)

    for r in range(args.repeats):
        print(f"{tag} repeat {r + 1}/{args.repeats}: floor, first run, second run, select phase, floor ...", flush=True)
        s, rows = timed(floor)
        assert len(rows) == plan.total_due
        m.floor.append(s)
        s, report = timed(first)
        check_first(report, plan)
        m.first.append(s)
        s, report = timed(second)
        check_second(report, plan)
        m.second.append(s)
        s, n = timed(select_phase)
        assert n == plan.total_due, n
        m.selects.append(s)
        s, rows = timed(floor)
        assert len(rows) == plan.total_due
        m.floor.append(s)
        clear(engine)

    print(f"{tag} peak memory (tracemalloc) ...", flush=True)
    m.peak_floor = peak(floor)
    m.peak_first = peak(lambda: check_first(first(), plan))
    m.peak_second = peak(lambda: check_second(second(), plan))
    clear(engine)

    if args.profile and plan.label == "main":
        m.profile = profiled(lambda: check_first(first(), plan), args.profile_lines, by_own_time=True)
        clear(engine)
    return m


# ---------------------------------------------------------------- report


def mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def report(results: list[Measured], details: list[str], skipped: list[str], args: argparse.Namespace) -> None:
    print()
    print("## run_due vs. one hand-written query selecting the same due set")
    print()
    print(
        f"`run_due` at {NOW.isoformat()} (never quiet), default pipeline, target console, "
        f"{args.repeats} repeats after a warm-up round (medians; the floor is timed before and after each "
        f"repeat); peak memory with tracemalloc in separate untimed runs. "
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, {os.cpu_count()} CPUs."
    )
    print()
    for d in details:
        print(f"- {d}")
    for why in skipped:
        print(f"- postgresql: skipped: {why}")
    print()
    print(
        "| engine | dataset | accounts | history rows | due items (SLA / handoff / renewal) | run_due 1st s "
        "| run_due 2nd s | floor s | 1st / floor | select phase s | peak MB 1st | peak MB 2nd | peak MB floor "
        "| target |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for m in results:
        p = m.plan
        split = " / ".join(f"{p.due[k]:,}" for k in KINDS)
        print(
            f"| {m.engine} | {p.label} | {p.accounts:,} | {p.history:,} | {p.total_due:,} ({split}) "
            f"| {statistics.median(m.first):.3f} | {statistics.median(m.second):.3f} "
            f"| {statistics.median(m.floor):.3f} | {m.ratio:.2f}x | {statistics.median(m.selects):.3f} "
            f"| {mb(m.peak_first)} | {mb(m.peak_second)} "
            f"| {mb(m.peak_floor)} | {verdict(m.passed)} |"
        )
    print()
    print("All samples (s), first run / second run / select phase / floor:")
    print()
    for m in results:
        samples = " / ".join(" ".join(f"{x:.3f}" for x in xs) for xs in (m.first, m.second, m.selects, m.floor))
        print(f"- {m.engine} {m.plan.label}: {samples}; seeded in {m.seed_s:.1f} s")
    print()
    print("SQL statements sent by one first run (warm-up round, `before_cursor_execute`):")
    print()
    for m in results:
        print(f"- {m.engine} {m.plan.label}: {sum(m.statements.values())}: {fmt_counts(m.statements)}")
    print()
    print("Memory follows what is due, not the number of accounts (peak of the first run):")
    print()
    for engine in dict.fromkeys(m.engine for m in results):
        by = {m.plan.label: m for m in results if m.engine == engine}
        main = by.get("main")
        if main is None:
            continue
        per_item = main.peak_first / max(1, main.plan.total_due) / 1e3
        line = f"- {engine}: main {mb(main.peak_first)} MB ({per_item:.1f} KB per due item)"
        for label in ("fewer due", "fewer accounts"):
            other = by.get(label)
            if other is not None:
                line += (
                    f"; {label} ({other.plan.describe()}): {mb(other.peak_first)} MB "
                    f"(x{other.peak_first / max(1, main.peak_first):.2f} of main)"
                )
        print(line)
    print()
    verdicts = ", ".join(
        f"{m.engine} {verdict(m.passed)} ({statistics.median(m.first):.3f} s, {m.ratio:.2f}x)"
        for m in results
        if m.plan.label == "main"
    )
    target = f"first run <= {TARGET_RATIO:.0f}x the floor and < {TARGET_SECONDS:.0f} s"
    print(f"target (the issue's, for SQLite): {target}: {verdicts}")
    for m in results:
        if m.profile:
            print()
            print(f"### cProfile of one first run: {m.engine} {m.plan.label}")
            print()
            print(m.profile)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--accounts", type=int, default=100_000, help="accounts in the main dataset (default 100000)")
    ap.add_argument("--due-pct", type=float, default=1.0, help="due items as a percentage of accounts (default 1)")
    ap.add_argument("--history-per-account", type=int, default=10, help="stage_changes rows per account (default 10)")
    ap.add_argument("--handoff-share", type=float, default=0.1, help="share of due items that are handoffs (0.1)")
    ap.add_argument("--renewal-share", type=float, default=0.1, help="share of due items that are renewals (0.1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per dataset (default 5)")
    ap.add_argument("--no-scale", action="store_true", help="only the main dataset (no memory-scaling datasets)")
    ap.add_argument("--analyze-sqlite", action="store_true", help="run ANALYZE on SQLite after seeding too")
    add_engine_args(ap, seed=True, profile="one first run on the main dataset")
    args = ap.parse_args(argv)
    due = round(args.accounts * args.due_pct / 100)
    if args.accounts < 100 or due < 10 or args.repeats < 1 or args.history_per_account < 0:
        ap.error("need --accounts >= 100, at least 10 due items, --repeats >= 1, --history-per-account >= 0")
    if min(args.handoff_share, args.renewal_share) < 0 or args.handoff_share + args.renewal_share > 1:
        ap.error("--handoff-share and --renewal-share must be >= 0 and add up to at most 1")

    plans = [make_plan("main", args.accounts, due, args)]
    if not args.no_scale:
        plans.append(make_plan("fewer due", args.accounts, due // 10, args))
        plans.append(make_plan("fewer accounts", args.accounts // 10, due, args))

    results: list[Measured] = []
    details: list[str] = []
    skipped: list[str] = []
    analyze = {"postgresql": True, "sqlite": args.analyze_sqlite}
    for i, (label, engine, detail) in enumerate(engines(args, skipped, fresh=len(plans))):
        plan = plans[i % len(plans)]
        if plan is plans[0]:
            after = "ANALYZE after seeding" if analyze[label] else "no ANALYZE"
            details.append(f"{label}: {detail}, {after}; a new database per dataset")
        results.append(measure(label, engine, plan, args))
    report(results, details, skipped, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
