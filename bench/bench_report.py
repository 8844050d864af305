"""The managers' report (`lifecycle.read.reports.report`) over a large book, against one hand-written query per figure.

    python -m bench.bench_report [--accounts 100000] [--history-per-account 10] [--repeats 5]
                                 [--profile] [--explain] [--sqlite-only] [--pg-url URL] [--sqlite-dir DIR]

For each engine (SQLite in a temp file; PostgreSQL in a throwaway schema when a server answers, dropped
afterwards) it seeds a fresh database and measures, in the same run and on the same Engine:

* the full report: `report(ShowReport(...), uow=db.reader(), clock=FixedClock(NOW), rules=...)` with the
  default pipeline and an empty roster, no period / team / owner / segment filter;
* the floor: one hand-written SQL query (`text()`) per figure, each fetched fully, timed together:
  entries and where each went next per (stage, next stage); average time in stage per stage; median
  time in stage per stage (one statement whose middle positions come from the first query's counts);
  the forecast (accounts grouped by stage with count and sum(amount)); renewals next quarter (count and
  sum where contract_end is in the quarter). Python combines the rows as the report does (which moves
  convert, win probabilities), and the result is checked against the report's figures (asserted, floats
  within a relative 1e-6) so that the comparison is like for like.

Each repeat runs both, the order alternating (floor first on even repeats), after an untimed warm-up
round; the table shows medians. One more untimed report run records the time of each statement the
report sends (`before/after_cursor_execute`), for the breakdown.

Seeding (untimed) bypasses the use cases: `lifecycle.db.migrate.upgrade`, then Core executemany batches.
Each account's history is a plausible path through the default pipeline: it is created in the initial
stage, then follows the pipeline's transitions (advance mostly; back, churn and winback sometimes;
archive only as a last move), with increasing `at` (gaps of an hour to twice the stage's SLA). Path
lengths are 1 to 2h-1 rows (h = --history-per-account), paired so that there are exactly accounts x h
rows. The account's `stage` / `stage_entered_at` are its last row's, 85% of accounts have an amount,
30% a contract end (from 200 days ago to 400 days ahead, so some fall next quarter). PostgreSQL is
ANALYZEd after seeding; SQLite is not (the app never runs ANALYZE).

Target (the Must): the report within 1.5x of the floor and under 2 s.
PostgreSQL URL: --pg-url, else $STAGEBOT_BENCH_DATABASE_URL, else the local default if it answers.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, TextClause, bindparam, event, insert, text
from sqlalchemy.types import Date

from bench.bench_due import NOW
from bench.common import (
    AgainstFloor,
    add_engine_args,
    engines,
    parser,
    profiled,
    timed,
    verdict,
)
from lifecycle.db.migrate import upgrade
from lifecycle.db.models import UTCDateTime
from lifecycle.db.tables import ACC, HIST
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor, Roster
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.pipeline import Pipeline, load_preset
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Report
from lifecycle.read.reports import _quarter_after, report

TARGET_RATIO = 1.5  # report / floor, at most
TARGET_SECONDS = 2.0  # report, at most
HOUR = 3600
DAY = 86400
BATCH_ROWS = 10_000  # rows per executemany while seeding
# How often each kind of transition is taken when an account moves on (archive: only as a last move).
KIND_WEIGHT = {"advance": 12.0, "back": 2.0, "churn": 0.6, "winback": 3.0, "archive": 1.0}
QUERY = c.ShowReport(actor=Actor("console", "bench"))


# ---------------------------------------------------------------- the dataset


def path_lengths(accounts: int, per_account: int, rng: random.Random) -> list[int]:
    """1 .. 2h-1 rows per account, in pairs adding up to 2h: exactly accounts x h rows in all."""
    out: list[int] = []
    for _ in range(accounts // 2):
        d = rng.randint(-(per_account - 1), per_account - 1)
        out += [per_account + d, per_account - d]
    if accounts % 2:
        out.append(per_account)
    rng.shuffle(out)
    return out


def walk(pipeline: Pipeline, length: int, rng: random.Random) -> list[tuple[str | None, str, str]]:
    """(from, to, kind) for `length` history rows: a creation, then transitions of the pipeline."""
    at = pipeline.initial
    rows: list[tuple[str | None, str, str]] = [(None, at, "create")]
    while len(rows) < length:
        last = len(rows) == length - 1
        options = [t for t in pipeline.next_stages(at) if t.kind != "archive" or last]
        if not options:  # a dead end (terminal stage): the path is shorter than planned
            break
        t = rng.choices(options, weights=[KIND_WEIGHT[t.kind] for t in options])[0]
        rows.append((at, t.target, t.kind))
        at = t.target
    return rows


def seed(engine: Engine, pipeline: Pipeline, accounts: int, per_account: int, rng: random.Random) -> int:
    """Accounts with realistic histories; returns the number of history rows written."""
    sla = {st.key: (st.sla_days or 60) for st in pipeline.stages}
    written = 0
    hist_batch: list[dict[str, Any]] = []
    acc_batch: list[dict[str, Any]] = []
    lengths = path_lengths(accounts, per_account, rng)
    carry = 0  # rows a path could not take (it hit a terminal stage): given to the next account
    with engine.begin() as conn:

        def flush(force: bool = False) -> None:
            if force or len(hist_batch) >= BATCH_ROWS:  # the accounts first: history references them
                if acc_batch:
                    conn.execute(insert(ACC), acc_batch)
                    acc_batch.clear()
                if hist_batch:
                    conn.execute(insert(HIST), hist_batch)
                    hist_batch.clear()

        for i in range(1, accounts + 1):
            path = walk(pipeline, lengths[i - 1] + carry, rng)
            carry = lengths[i - 1] + carry - len(path)
            gaps = [rng.randint(HOUR, 2 * sla[to] * DAY) for _, to, _ in path[:-1]]
            start = NOW - timedelta(seconds=sum(gaps) + rng.randint(HOUR, 120 * DAY))
            at = start
            for n, (src, dst, kind) in enumerate(path):
                entered = at if n else None  # the stay in `src` this row ends, as the app records it
                if n:
                    at += timedelta(seconds=gaps[n - 1])
                hist_batch.append(
                    {
                        "account_id": i,
                        "from_stage": src,
                        "to_stage": dst,
                        "kind": kind,
                        "at": at,
                        "actor": "bench",
                        "via": "bench",
                        "reason": "",
                        "from_entered_at": entered,
                        "stay_seconds": float(gaps[n - 1]) if n else None,
                    }
                )
            written += len(path)
            name = f"Bench Account {i:07d}"
            amount = Decimal(rng.randint(100_000, 20_000_000)) / 100 if rng.random() < 0.85 else None
            contract_end: date | None = None
            if rng.random() < 0.3:
                contract_end = NOW.date() + timedelta(days=rng.randint(-200, 400))
            acc_batch.append(
                {
                    "id": i,
                    "name": name,
                    "name_key": name.casefold(),
                    "stage": path[-1][1],
                    "stage_entered_at": at,
                    "owner": None if i % 5 == 0 else f"slack:U{i % 200:04d}",
                    "amount": amount,
                    "segment": ("smb", "mid", "ent")[i % 3],
                    "contract_end": contract_end,
                    "created_at": start,
                    "updated_at": at,
                    "version": len(path),
                }
            )
            flush()
        flush(force=True)
    with engine.connect() as conn:
        n_acc = conn.execute(text("SELECT count(*) FROM accounts")).scalar_one()
        n_hist = conn.execute(text("SELECT count(*) FROM stage_changes")).scalar_one()
    assert (n_acc, n_hist) == (accounts, written), (n_acc, n_hist, written)
    return written


# ---------------------------------------------------------------- the floor


def forward_sql(pipeline: Pipeline) -> str:
    """True for a history row that moved its account forward: to a target of an `advance`
    transition of the stage it left (the report's "converted")."""
    terms = []
    for st in pipeline.stages:
        targets = sorted({t.target for t in pipeline.next_stages(st.key) if t.kind == "advance"})
        if targets:
            listed = ", ".join(f"'{t}'" for t in targets)
            terms.append(f"(from_stage = '{st.key}' AND to_stage IN ({listed}))")
    return "(" + " OR ".join(terms) + ")"


def floor_queries(dialect: str, now: datetime, pipeline: Pipeline) -> dict[str, TextClause]:
    """One statement per figure (the median's is built from the counts: `median_query`). Times in
    seconds; the period is all of history (the report's default). A stay is a history row (it ends
    the stay in `from_stage`, which began at `from_entered_at`) or an account's current stage."""
    ongoing = f"(:now_epoch - {_epoch_sql(dialect, 'stage_entered_at')})"
    ended_period = "from_entered_at >= :since AND from_entered_at < :until"
    ongoing_period = "stage_entered_at >= :since AND stage_entered_at < :until"
    since, until, now_epoch = _floor_params(now)
    q_start, q_end = _quarter_after(now.date())
    return {
        "moves": text(
            f"SELECT from_stage, count(*), sum(CASE WHEN {forward_sql(pipeline)} THEN 1 ELSE 0 END) "
            f"FROM stage_changes WHERE {ended_period} GROUP BY from_stage UNION ALL "
            f"SELECT stage, count(*), 0 FROM accounts WHERE {ongoing_period} GROUP BY stage"
        ).bindparams(since, until),
        "average": text(
            "SELECT stage, sum(total) / sum(n) FROM ("
            f"SELECT from_stage AS stage, sum(stay_seconds) AS total, count(*) AS n FROM stage_changes "
            f"WHERE {ended_period} GROUP BY from_stage UNION ALL "
            f"SELECT stage, sum({ongoing}), count(*) FROM accounts WHERE {ongoing_period} GROUP BY stage"
            ") s GROUP BY stage"
        ).bindparams(since, until, now_epoch),
        "median": text("SELECT 1"),  # replaced per run by median_query(counts from "moves")
        "forecast": text("SELECT stage, count(*), COALESCE(sum(amount), 0) FROM accounts GROUP BY stage"),
        "renewals": text(
            "SELECT count(*), COALESCE(sum(amount), 0) FROM accounts "
            "WHERE contract_end >= :q_start AND contract_end < :q_end"
        ).bindparams(bindparam("q_start", q_start, type_=Date()), bindparam("q_end", q_end, type_=Date())),
    }


def _epoch_sql(dialect: str, col: str) -> str:
    return f"((julianday({col}) - 2440587.5) * 86400.0)" if dialect == "sqlite" else f"extract(epoch FROM {col})"


def _floor_params(now: datetime) -> tuple[Any, Any, Any]:
    return (
        bindparam("since", datetime(1970, 1, 1, tzinfo=now.tzinfo), type_=UTCDateTime()),
        bindparam("until", now + timedelta(seconds=1), type_=UTCDateTime()),
        bindparam("now_epoch", now.timestamp()),
    )


def median_query(dialect: str, now: datetime, moves: list[Any]) -> TextClause:
    """Each stage's median stay in one statement: per stage, the middle one or two of its ended and
    ongoing stays in order of length (LIMIT / OFFSET over the two, merged), averaged. The counts
    come from the "moves" query, as the report takes them from its own counts."""
    counts: dict[str, int] = defaultdict(int)
    for stage, n, _converted in moves:
        counts[stage] += int(n)
    ongoing = f"(:now_epoch - {_epoch_sql(dialect, 'stage_entered_at')})"
    parts = []
    for i, (stage, n) in enumerate(sorted(counts.items())):
        lo, hi = (n - 1) // 2, n // 2
        parts.append(
            f"SELECT '{stage}' AS stage, avg(dur) FROM ("
            f"SELECT stay_seconds AS dur FROM stage_changes WHERE from_stage = '{stage}' "
            "AND from_entered_at >= :since AND from_entered_at < :until UNION ALL "
            f"SELECT {ongoing} FROM accounts WHERE stage = '{stage}' "
            "AND stage_entered_at >= :since AND stage_entered_at < :until "
            f"ORDER BY dur LIMIT {hi - lo + 1} OFFSET {lo}) m{i}"
        )
    return text(" UNION ALL ".join(parts)).bindparams(*_floor_params(now))


def close(a: float | None, b: float | None, what: str) -> None:
    assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), (what, a, b)


def check(rep: Report, rows: dict[str, list[Any]], pipeline: Pipeline) -> None:
    """The floor's rows, combined as the report combines its own, give the report's figures."""
    entries: dict[str, int] = defaultdict(int)
    converted: dict[str, int] = defaultdict(int)
    for stage, n, moved_on in rows["moves"]:
        entries[stage] += n
        converted[stage] += int(moved_on)
    avg = {s: float(v) / DAY for s, v in rows["average"]}
    med = {s: float(v) / DAY for s, v in rows["median"]}
    by_stage = {s: (int(n), Decimal(str(total))) for s, n, total in rows["forecast"]}
    figures = {f.stage: f for f in rep.stages}
    assert set(figures) == {st.key for st in pipeline.stages}, figures.keys()
    for key, f in figures.items():
        assert (f.entries, f.converted) == (entries.get(key, 0), converted.get(key, 0)), (key, f, entries, converted)
        assert f.in_stage_now == by_stage.get(key, (0, 0))[0], (key, f.in_stage_now, by_stage)
        if key in avg:
            close(f.avg_days, avg[key], f"{key} average")
            close(f.median_days, med[key], f"{key} median")
        else:
            assert f.avg_days is None and f.median_days is None, f
    for line in rep.forecast:
        n, total = by_stage[line.stage]
        assert line.accounts == n, (line, n)
        close(float(line.amount), float(total), f"{line.stage} amount")
        weighted = (total * Decimal(str(pipeline.stage(line.stage).win_probability))).quantize(Decimal("0.01"))
        close(float(line.weighted), float(weighted), f"{line.stage} weighted")
    assert {x.stage for x in rep.forecast} == {k for k in by_stage if not pipeline.stage(k).terminal}
    ((n_renew, amount_renew),) = rows["renewals"]
    assert rep.renewals_next_quarter == n_renew, (rep.renewals_next_quarter, n_renew)
    close(float(rep.renewals_next_quarter_amount), float(amount_renew), "renewals amount")
    assert n_renew > 0 and rep.bottleneck is not None


# ---------------------------------------------------------------- measurement


@dataclass
class Measured(AgainstFloor):
    engine: str
    accounts: int
    history: int
    seed_s: float
    report: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statements: list[tuple[float, str]] = field(default_factory=list)
    profile: str = ""
    explain: str = ""
    max_ratio = TARGET_RATIO
    max_s = TARGET_SECONDS

    def subject(self) -> list[float]:
        return self.report


@contextmanager
def statement_times(engine: Engine) -> Iterator[list[tuple[float, str]]]:
    """(seconds from execute to the driver's return, statement) of every statement sent."""
    seen: list[tuple[float, str]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        seen.append((time.perf_counter() - conn.info.pop("bench_t0"), statement))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def measure(label: str, engine: Engine, args: argparse.Namespace) -> Measured:
    tag = f"[{label}]"
    pipeline = load_preset("default")
    history = args.accounts * args.history_per_account
    print(f"{tag} migrating and seeding {args.accounts:,} accounts, ~{history:,} history rows ...", flush=True)
    t0 = time.perf_counter()
    upgrade(engine)
    written = seed(engine, pipeline, args.accounts, args.history_per_account, random.Random(args.seed))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    m = Measured(label, args.accounts, written, time.perf_counter() - t0)
    print(f"{tag} seeded {written:,} history rows in {m.seed_s:.1f} s; warm-up round ...", flush=True)

    db = Database(engine)
    rules = Rules(pipeline, Roster.build(members={}, approvers={}, admins=[]), targets=())
    clock = FixedClock(NOW)
    queries = floor_queries(engine.dialect.name, NOW, pipeline)

    def run_report() -> Report:
        return report(QUERY, uow=db.reader(), clock=clock, rules=rules)

    def run_floor(record: bool) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        with engine.connect() as conn:
            for name, stmt in queries.items():
                t = time.perf_counter()
                if name == "median":  # the middle positions need the counts (timed with the median)
                    stmt = median_query(engine.dialect.name, NOW, out["moves"])
                out[name] = conn.execute(stmt).all()
                if record:
                    m.parts[name].append(time.perf_counter() - t)
        return out

    rep = run_report()
    check(rep, run_floor(False), pipeline)
    for r in range(args.repeats):
        order = ("floor", "report") if r % 2 == 0 else ("report", "floor")
        print(f"{tag} repeat {r + 1}/{args.repeats}: {', '.join(order)} ...", flush=True)
        for what in order:
            if what == "floor":
                s, rows = timed(lambda: run_floor(True))
                m.floor.append(s)
            else:
                s, rep = timed(run_report)
                m.report.append(s)
        check(rep, rows, pipeline)

    with statement_times(engine) as seen:
        run_report()
    m.statements = seen
    if args.profile:
        m.profile = profiled(run_report, args.profile_lines)
    if args.explain:
        m.explain = explain(engine, run_report)
    return m


def explain(engine: Engine, run_report: Callable[[], Report]) -> str:
    """EXPLAIN QUERY PLAN (SQLite) / EXPLAIN (ANALYZE, BUFFERS) (PostgreSQL) of each SELECT the report sends.

    The statements and their driver-level parameters are captured from one report run, then explained on a
    raw driver connection."""
    out = io.StringIO()
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        run_report()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, params in captured:
            cur.execute(prefix + statement, params)
            out.write(statement.strip() + "\n--\n")
            for row in cur.fetchall():
                out.write(" ".join(str(x) for x in row) + "\n")
            out.write("\n")
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    return out.getvalue()


# ---------------------------------------------------------------- report


def show(results: list[Measured], details: list[str], skipped: list[str], args: argparse.Namespace) -> None:
    print()
    print("## The managers' report vs. one hand-written query per figure")
    print()
    print(
        f"`lifecycle.read.reports.report` at {NOW.isoformat()}, default pipeline, no filters; {args.repeats} repeats "
        f"after a warm-up round, order alternating, medians. "
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, {os.cpu_count()} CPUs."
    )
    print()
    for d in details:
        print(f"- {d}")
    for why in skipped:
        print(f"- postgresql: skipped: {why}")
    print()
    names = list(floor_queries("sqlite", NOW, load_preset("default")))
    print(
        "| engine | accounts | history rows | report s | floor s | report / floor | target | "
        + " | ".join(f"floor {n} s" for n in names)
        + " |"
    )
    print("|---|---:|---:|---:|---:|---:|---|" + "---:|" * len(names))
    for m in results:
        parts = " | ".join(f"{statistics.median(m.parts[n]):.3f}" for n in names)
        print(
            f"| {m.engine} | {m.accounts:,} | {m.history:,} | {statistics.median(m.report):.3f} "
            f"| {statistics.median(m.floor):.3f} | {m.ratio:.2f}x | {verdict(m.passed)} | {parts} |"
        )
    print()
    print("All samples (s), report / floor:")
    print()
    for m in results:
        samples = " / ".join(" ".join(f"{x:.3f}" for x in xs) for xs in (m.report, m.floor))
        print(f"- {m.engine}: {samples}; seeded in {m.seed_s:.1f} s")
    print()
    print("The report's statements, one untimed run (s from execute to the driver's return):")
    print()
    for m in results:
        total = sum(s for s, _ in m.statements)
        print(f"- {m.engine}: {len(m.statements)} statements, {total:.3f} s:")
        for s, stmt in m.statements:
            print(f"  - {s:.3f} s: `{' '.join(stmt.split())[:150]}`")
    print()
    verdicts = ", ".join(
        f"{m.engine} {verdict(m.passed)} ({statistics.median(m.report):.3f} s, {m.ratio:.2f}x)" for m in results
    )
    print(f"target: report <= {TARGET_RATIO}x the floor and < {TARGET_SECONDS:.0f} s: {verdicts}")
    for m in results:
        if m.profile:
            print(f"\n### cProfile of one report: {m.engine}\n\n{m.profile}")
        if m.explain:
            print(f"\n### Plans of the report's statements: {m.engine}\n\n{m.explain}")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--accounts", type=int, default=100_000, help="accounts (default 100000)")
    ap.add_argument("--history-per-account", type=int, default=10, help="stage_changes rows per account, on average")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per engine (default 5)")
    ap.add_argument("--explain", action="store_true", help="query plans of the report's statements")
    add_engine_args(ap, seed=True, profile="one report run")
    args = ap.parse_args(argv)
    if args.accounts < 100 or args.repeats < 1 or args.history_per_account < 1:
        ap.error("need --accounts >= 100, --repeats >= 1, --history-per-account >= 1")

    results: list[Measured] = []
    details: list[str] = []
    skipped: list[str] = []
    for label, engine, detail in engines(args, skipped):
        details.append(f"{label}: {detail}, {'ANALYZE' if label == 'postgresql' else 'no ANALYZE'} after seeding")
        results.append(measure(label, engine, args))
    show(results, details, skipped, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
