"""Stage moves per second through the use-case layer, against a raw-transaction floor on the same engine.

    python bench/bench_moves.py [--moves 3000] [--accounts 200] [--sqlite-only] [--pg-url URL]

For each engine (SQLite in a temp file; PostgreSQL in a throwaway schema when a server answers) it
measures, in the same run and on the same SQLAlchemy Engine:

* moves/s: `Lifecycle.execute(MoveStage(...))`, sequential, a fresh idempotency key each, the real
  SystemClock, an admin actor, the default pipeline, outbox target "console". Accounts start in P1
  and cycle P1 -> P2 -> P3 -> P4 -> P5 -> CHURNED -> PQL -> SQL -> P0 -> P1 (allowed, ungated edges).
* the floor: one INSERT (scratch history table) + one UPDATE (scratch one-row counter) per
  transaction, via `with engine.begin() as conn:` -- same engine, pool, pragmas and BEGIN IMMEDIATE.
  This is the denominator of the ratio.
* the same transaction on the bare DBAPI connection (`engine.raw_connection()`), for transparency.

Floor, raw and moves are measured in two interleaved rounds (floor, raw, moves / moves, raw, floor)
so that drift (page cache, WAL growth, autovacuum) hits all three alike.
PostgreSQL URL: --pg-url, else $STAGEBOT_BENCH_DATABASE_URL, else the local default if it answers.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import Engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from lifecycle.core import Lifecycle  # noqa: E402
from lifecycle.db.engine import make_engine  # noqa: E402
from lifecycle.db.migrate import upgrade  # noqa: E402
from lifecycle.db.uow import Database  # noqa: E402
from lifecycle.domain.access import Actor, Roster  # noqa: E402
from lifecycle.domain.clock import SystemClock  # noqa: E402
from lifecycle.domain.commands import AddAccount, MoveStage  # noqa: E402
from lifecycle.domain.pipeline import load_preset  # noqa: E402
from lifecycle.domain.rules import Rules  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_ENV = "STAGEBOT_BENCH_DATABASE_URL"
TARGET = 0.40  # moves/s must reach this share of the engine floor

ADMIN = Actor("console", "bench", "bench")
START = "P1"
# Every edge is allowed in the default pipeline and needs no approval or checklist:
# advance x4, churn, winback, back, direct signing, advance.
CYCLE = ["P1", "P2", "P3", "P4", "P5", "CHURNED", "PQL", "SQL", "P0"]
NEXT = {s: CYCLE[(i + 1) % len(CYCLE)] for i, s in enumerate(CYCLE)}

FLOOR_INSERT = "INSERT INTO bench_floor_history (account_id, x) VALUES (:a, :x)"
FLOOR_UPDATE = "UPDATE bench_floor_counter SET n = n + 1 WHERE id = 1"


# ---------------------------------------------------------------- measurement


@dataclass
class Series:
    """Wall time and per-operation latencies (ns) of one kind of operation, over all rounds."""

    ns: int = 0
    lat: list[int] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.lat) / (self.ns / 1e9) if self.ns else 0.0

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.lat) / 1e6 if self.lat else 0.0

    @property
    def p99_ms(self) -> float:
        if not self.lat:
            return 0.0
        ordered = sorted(self.lat)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] / 1e6


def run(series: Series, op: Callable[[int], None], start: int, count: int) -> None:
    clock = time.perf_counter_ns
    lat = series.lat
    t0 = clock()
    for i in range(start, start + count):
        a = clock()
        op(i)
        lat.append(clock() - a)
    series.ns += clock() - t0


@dataclass
class Result:
    engine: str
    detail: str
    moves: Series
    floor: Series
    raw: Series
    stmts_per_move: float
    stmts_per_floor_tx: float
    per_edge: list[tuple[str, Counter[str]]]

    @property
    def ratio(self) -> float:
        return self.moves.per_s / self.floor.per_s if self.floor.per_s else 0.0


@contextmanager
def counting(engine: Engine) -> Iterator[Counter[str]]:
    """Count statements sent to the driver (by first keyword), including BEGIN IMMEDIATE on SQLite."""
    seen: Counter[str] = Counter()

    def listener(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        seen[statement.lstrip().split(None, 1)[0].upper()] += 1

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def fmt_counts(seen: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------- the workload


def create_scratch_tables(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pk = "INTEGER PRIMARY KEY"
    else:
        pk = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE bench_floor_history (id {pk}, account_id INTEGER NOT NULL, x INTEGER)"))
        conn.execute(text("CREATE TABLE bench_floor_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)"))
        conn.execute(text("INSERT INTO bench_floor_counter (id, n) VALUES (1, 0)"))


def bench_engine(label: str, detail: str, engine: Engine, args: argparse.Namespace) -> Result:
    print(f"[{label}] migrating and seeding {args.accounts} accounts in {START} ...", flush=True)
    upgrade(engine)
    create_scratch_tables(engine)
    rules = Rules(load_preset("default"), Roster.build({}, {}, admins=[ADMIN.ref]), targets=("console",))
    core = Lifecycle(Database(engine), rules, SystemClock())

    names = [f"bench account {i:05d}" for i in range(args.accounts)]
    for name in [*names, "bench probe"]:
        core.execute(AddAccount(actor=ADMIN, key=uuid.uuid4().hex, name=name, stage=START))
    stage = dict.fromkeys(names, START)
    n_accounts = len(names)

    def move(i: int) -> None:
        name = names[i % n_accounts]
        target = NEXT[stage[name]]
        core.execute(MoveStage(actor=ADMIN, key=uuid.uuid4().hex, account=name, target=target))
        stage[name] = target

    def floor_tx(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(text(FLOOR_INSERT), {"a": i % n_accounts, "x": i})
            conn.execute(text(FLOOR_UPDATE))

    # The bare driver connection, held for the whole run (no pool checkout, no SQLAlchemy).
    fairy = engine.raw_connection()
    try:
        dbapi = fairy.driver_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        if engine.dialect.name == "sqlite":  # isolation_level=None (see make_engine): explicit BEGIN
            ins = FLOOR_INSERT.replace(":a", "?").replace(":x", "?")

            def raw_tx(i: int) -> None:
                cur.execute("BEGIN IMMEDIATE")
                cur.execute(ins, (i % n_accounts, i))
                cur.execute(FLOOR_UPDATE)
                cur.execute("COMMIT")

        else:  # psycopg: the first statement opens the transaction
            ins = FLOOR_INSERT.replace(":a", "%s").replace(":x", "%s")

            def raw_tx(i: int) -> None:
                cur.execute(ins, (i % n_accounts, i))
                cur.execute(FLOOR_UPDATE)
                dbapi.commit()

        moves, floor, raw = Series(), Series(), Series()
        warm = args.warmup
        print(f"[{label}] warm-up: {warm} moves, {warm} floor tx, {warm} raw tx ...", flush=True)
        run(Series(), move, 0, warm)
        run(Series(), floor_tx, 0, warm)
        run(Series(), raw_tx, 0, warm)

        half_m = args.moves // 2
        half_f = args.floor_tx // 2
        m_at, f_at, r_at = warm, warm, warm
        t0 = time.perf_counter()
        print(f"[{label}] round 1: floor, raw, moves ...", flush=True)
        run(floor, floor_tx, f_at, half_f)
        run(raw, raw_tx, r_at, half_f)
        run(moves, move, m_at, half_m)
        f_at, r_at, m_at = f_at + half_f, r_at + half_f, m_at + half_m
        print(f"[{label}] round 2: moves, raw, floor ...", flush=True)
        run(moves, move, m_at, args.moves - half_m)
        run(raw, raw_tx, r_at, args.floor_tx - half_f)
        run(floor, floor_tx, f_at, args.floor_tx - half_f)
        print(f"[{label}] measured in {time.perf_counter() - t0:.1f} s; counting statements per move ...", flush=True)
        cur.close()
    finally:
        fairy.close()

    # Statements per move, outside the timed part: the probe account once round the cycle (one of each edge).
    per_edge: list[tuple[str, Counter[str]]] = []
    at = START
    for _ in CYCLE:
        target = NEXT[at]
        with counting(engine) as seen:
            core.execute(MoveStage(actor=ADMIN, key=uuid.uuid4().hex, account="bench probe", target=target))
        per_edge.append((f"{at}->{target}", seen))
        at = target
    with counting(engine) as seen_floor:
        for i in range(10):
            floor_tx(i)
    stmts_per_move = sum(sum(c.values()) for _, c in per_edge) / len(per_edge)
    stmts_per_floor = sum(seen_floor.values()) / 10

    # Sanity: every account really moved as far as the workload says, and the floor counter agrees.
    with engine.connect() as conn:
        history = conn.execute(text("SELECT count(*) FROM stage_changes WHERE kind <> 'create'")).scalar_one()
        counter = conn.execute(text("SELECT n FROM bench_floor_counter WHERE id = 1")).scalar_one()
    expected_moves = warm + args.moves + len(CYCLE)
    expected_floor = 2 * (warm + args.floor_tx) + 10  # engine floor and raw DBAPI floor both count
    assert history == expected_moves, (history, expected_moves)
    assert counter == expected_floor, (counter, expected_floor)

    return Result(label, detail, moves, floor, raw, stmts_per_move, stmts_per_floor, per_edge)


# ---------------------------------------------------------------- engines


def bench_sqlite(args: argparse.Namespace) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="stagebot-bench-", dir=args.sqlite_dir))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    try:
        detail = f"SQLite {sqlite3_version()} file in {tmp.parent} (WAL, synchronous=FULL, BEGIN IMMEDIATE)"
        return bench_engine("sqlite", detail, engine, args)
    finally:
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def sqlite3_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def pg_target(args: argparse.Namespace) -> tuple[str | None, str]:
    """(URL, where it came from) when a server answers, else (None, why PostgreSQL is skipped)."""
    url, source = args.pg_url, "--pg-url"
    if not url:
        url, source = os.environ.get(PG_ENV, ""), f"${PG_ENV}"
    explicit = bool(url)
    if not explicit:
        url, source = DEFAULT_PG_URL, "the local default"
    try:
        shown = make_url(url).render_as_string(hide_password=True)
        probe = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    except Exception as exc:  # a malformed URL or a missing driver
        return None, f"{source} is not a usable PostgreSQL URL: {exc}"
    try:
        if probe.dialect.name != "postgresql":
            return None, f"{source} ({shown}) is not a PostgreSQL URL"
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means: skip
        why = str(exc).strip().splitlines()[0][:200]
        if explicit:
            return None, f"{source} ({shown}) did not answer: {why}"
        return None, f"--pg-url / ${PG_ENV} unset and {DEFAULT_PG_URL} did not answer: {why}"
    finally:
        probe.dispose()
    return url, source


def bench_pg(url: str, source: str, args: argparse.Namespace) -> Result:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url, pool_size=1, max_overflow=0)
    engine: Engine | None = None
    created = False
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            created = True
            version = conn.execute(text("SHOW server_version")).scalar_one()
            sync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
            fsync = conn.execute(text("SHOW fsync")).scalar_one()
        engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
        shown = engine.url.render_as_string(hide_password=True)
        detail = (
            f"PostgreSQL {version} at {shown} ({source}), throwaway schema {schema}, "
            f"synchronous_commit={sync}, fsync={fsync}"
        )
        if getattr(engine.pool, "_pre_ping", False):
            detail += ", pool_pre_ping on (one ping per checkout: every move and every engine-floor tx)"
        return bench_engine("postgresql", detail, engine, args)
    finally:
        if engine is not None:
            engine.dispose()
        if created:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ---------------------------------------------------------------- report


def report(results: list[Result], skipped: list[str], args: argparse.Namespace) -> None:
    print()
    print("## Stage moves vs. the raw-transaction floor")
    print()
    print(
        f"{args.moves} sequential `Lifecycle.execute(MoveStage)` over {args.accounts} accounts "
        f"(cycle {' -> '.join([*CYCLE, CYCLE[0]])}), after {args.warmup} warm-up moves; "
        f"floor: {args.floor_tx} transactions of 1 INSERT + 1 UPDATE. "
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, {os.cpu_count()} CPUs."
    )
    print()
    for r in results:
        print(f"- {r.engine}: {r.detail}")
    for why in skipped:
        print(f"- postgresql: skipped: {why}")
    print()
    print(
        "| engine | moves/s | floor tx/s (engine) | moves / floor | raw DBAPI tx/s "
        "| move mean ms | move p99 ms | floor mean ms | SQL stmts/move | SQL stmts/floor tx |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.engine} | {r.moves.per_s:,.0f} | {r.floor.per_s:,.0f} | {r.ratio:.0%} | {r.raw.per_s:,.0f} "
            f"| {r.moves.mean_ms:.2f} | {r.moves.p99_ms:.2f} | {r.floor.mean_ms:.2f} "
            f"| {r.stmts_per_move:.1f} | {r.stmts_per_floor_tx:.0f} |"
        )
    print()
    print(
        "SQL statements per move, by edge, counted with a `before_cursor_execute` listener "
        "(SQLite's BEGIN IMMEDIATE is counted; psycopg's implicit BEGIN, COMMIT and pool pre-ping are not):"
    )
    print()
    for r in results:
        total = Counter[str]()
        for _, seen in r.per_edge:
            total.update(seen)
        edges = "; ".join(f"{edge} {sum(seen.values())}" for edge, seen in r.per_edge)
        print(f"- {r.engine}: {edges}; over the cycle: {fmt_counts(total)}")
    print()
    verdicts = ", ".join(f"{r.engine} {'PASS' if r.ratio >= TARGET else 'BELOW'} ({r.ratio:.0%})" for r in results)
    print(f"target: >= {TARGET:.0%} of the floor: {verdicts}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--moves", type=int, default=3000, help="measured moves per engine (default 3000)")
    ap.add_argument("--accounts", type=int, default=200, help="accounts created in P1 beforehand (default 200)")
    ap.add_argument("--floor-tx", type=int, default=None, help="measured floor transactions (default: --moves)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up operations of each kind (default: moves/10)")
    ap.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--pg-url", default="", help=f"PostgreSQL URL (default: ${PG_ENV}, else {DEFAULT_PG_URL})")
    ap.add_argument("--sqlite-dir", default=None, help="where the temp SQLite file goes (default: the temp dir)")
    args = ap.parse_args(argv)
    if args.moves < 2 or args.accounts < 1:
        ap.error("--moves must be >= 2 and --accounts >= 1")
    args.floor_tx = args.floor_tx or args.moves
    args.warmup = args.moves // 10 if args.warmup is None else args.warmup

    results: list[Result] = []
    skipped: list[str] = []
    results.append(bench_sqlite(args))
    if args.sqlite_only:
        skipped.append("--sqlite-only")
    else:
        url, source_or_reason = pg_target(args)
        if url is None:
            print(f"[postgresql] skipped: {source_or_reason}", flush=True)
            skipped.append(source_or_reason)
        else:
            results.append(bench_pg(url, source_or_reason, args))
    report(results, skipped, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
