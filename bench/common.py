"""What the benchmarks share: engines (a temp SQLite file, a throwaway PostgreSQL schema), timing and
percentiles, CPU meters from /proc, statement counting, verdicts against a floor, signed slash commands,
the checks of a stage move's reply, and the bare slack-bolt app that is the HTTP floor.

Run the benchmarks from the repository root as modules: `python -m bench.bench_moves --help`.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import os
import pstats
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, event, text
from sqlalchemy.pool import NullPool

from lifecycle.db.engine import make_engine
from tests.pg import PgSchema, shown, throwaway_schema

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_ENV = "STAGEBOT_BENCH_DATABASE_URL"
CPUS = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")
THREADS = 16  # waitress threads and bolt listener threads, as `stagebot serve` uses
SLACK_PATH = "/slack/events"
ADMIN_ID = "U0ADMIN"
# Every edge is allowed in the default pipeline and needs no approval or checklist:
# advance x4, churn, winback, back, direct signing, advance.
CYCLE = ["P1", "P2", "P3", "P4", "P5", "CHURNED", "PQL", "SQL", "P0"]
NEXT = {s: CYCLE[(i + 1) % len(CYCLE)] for i, s in enumerate(CYCLE)}


# ---------------------------------------------------------------- timing, percentiles, verdicts


def pct(xs: list[float] | list[int], q: float) -> float:
    """The q-quantile (nearest rank, rounding down) of xs; nan when empty."""
    if not xs:
        return float("nan")
    o = sorted(xs)
    return float(o[min(len(o) - 1, int(q * len(o)))])


def percentiles_ms(xs: list[float]) -> str:
    """p50 / p90 / p99 / max of durations in seconds, as milliseconds."""
    if not xs:
        return "-"
    return " / ".join(f"{v * 1e3:.1f}" for v in [pct(xs, 0.5), pct(xs, 0.9), pct(xs, 0.99), max(xs)])


def timed(op: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, after a garbage collection."""
    gc.collect()
    t0 = time.perf_counter()
    out = op()
    return time.perf_counter() - t0, out


def verdict(passed: bool, miss: str = "BELOW") -> str:
    return "PASS" if passed else miss


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt_ms(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


class AgainstFloor:
    """Timed samples of the code under test (`subject`) and of a hand-written floor (`floor`), in
    seconds; the target: the median within `max_ratio` of the floor's median and under `max_s`."""

    floor: list[float]
    max_ratio: float
    max_s: float

    def subject(self) -> list[float]:
        raise NotImplementedError

    @property
    def ratio(self) -> float:
        return ratio(statistics.median(self.subject()), statistics.median(self.floor))

    @property
    def passed(self) -> bool:
        return self.ratio <= self.max_ratio and statistics.median(self.subject()) < self.max_s


def profiled(op: Callable[[], Any], lines: int, by_own_time: bool = False) -> str:
    """cProfile listing of one call of `op`, by cumulative time (and by own time too)."""
    prof = cProfile.Profile()
    prof.enable()
    op()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(lines)
    if by_own_time:
        out.write("\n--- by own time ---\n")
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(lines)
    return out.getvalue()


# ---------------------------------------------------------------- command lines


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser described by the first paragraph of a script's docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)


def add_engine_args(ap: argparse.ArgumentParser, seed: bool = False, profile: str = "") -> None:
    """--sqlite-only, --pg-url, --sqlite-dir; --seed for a dataset; --profile and --profile-lines when
    `profile` says what is profiled."""
    if seed:
        ap.add_argument("--seed", type=int, default=20261202, help="random seed of the dataset")
    if profile:
        ap.add_argument("--profile", action="store_true", help=f"cProfile {profile}")
        ap.add_argument("--profile-lines", type=int, default=30, help="lines of each profile listing (default 30)")
    ap.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--pg-url", default="", help=f"PostgreSQL URL (default: ${PG_ENV}, else {DEFAULT_PG_URL})")
    ap.add_argument("--sqlite-dir", default=None, help="where the temp SQLite file goes (default: the temp dir)")


# ---------------------------------------------------------------- CPU from /proc


def stat_cpu_s(path: str) -> float | None:
    """utime + stime in seconds from a /proc/.../stat file; None when it is gone."""
    try:
        stat = Path(path).read_text()
    except (OSError, TypeError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_cpu(pid: int) -> float | None:
    """CPU seconds of one process; None when it is gone."""
    return stat_cpu_s(f"/proc/{pid}/stat")


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process, by native id."""
    import threading

    out = {}
    for t in threading.enumerate():
        tid = t.native_id
        s = stat_cpu_s(f"/proc/self/task/{tid}/stat") if tid is not None else None
        if tid is not None and s is not None:
            out[tid] = (t.name, s)
    return out


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; (0, 0) where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals) - idle, sum(vals)


# ---------------------------------------------------------------- statements


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


# ---------------------------------------------------------------- engines


def sqlite3_version() -> str:
    return sqlite3.sqlite_version


@contextmanager
def sqlite_engine(directory: str | None) -> Iterator[Engine]:
    """A stagebot engine on a new SQLite file in a temp dir under `directory`; removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="stagebot-bench-", dir=directory))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    try:
        yield engine
    finally:
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def pg_target(url: str) -> tuple[str | None, str]:
    """(URL, where it came from) when a server answers, else (None, why PostgreSQL is skipped).

    The URL: `url` (a --pg-url), else $STAGEBOT_BENCH_DATABASE_URL, else the local default."""
    source = "--pg-url"
    if not url:
        url, source = os.environ.get(PG_ENV, ""), f"${PG_ENV}"
    explicit = bool(url)
    if not explicit:
        url, source = DEFAULT_PG_URL, "the local default"
    try:
        where = shown(url)
        probe = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    except Exception as exc:  # a malformed URL or a missing driver
        return None, f"{source} is not a usable PostgreSQL URL: {exc}"
    try:
        if probe.dialect.name != "postgresql":
            return None, f"{source} ({where}) is not a PostgreSQL URL"
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means: skip
        why = str(exc).strip().splitlines()[0][:200]
        if explicit:
            return None, f"{source} ({where}) did not answer: {why}"
        return None, f"--pg-url / ${PG_ENV} unset and {DEFAULT_PG_URL} did not answer: {why}"
    finally:
        probe.dispose()
    return url, source


def pg_or_skip(args: Any, skipped: list[str]) -> tuple[str, str] | None:
    """(URL, source) of the PostgreSQL server to bench on, or None with the reason appended to `skipped`
    (--sqlite-only, or no server answers)."""
    if args.sqlite_only:
        skipped.append("--sqlite-only")
        return None
    url, source_or_reason = pg_target(args.pg_url)
    if url is None:
        print(f"[postgresql] skipped: {source_or_reason}", flush=True)
        skipped.append(source_or_reason)
        return None
    return url, source_or_reason


@contextmanager
def pg_engine(url: str, prefix: str = "bench_") -> Iterator[PgSchema]:
    """A throwaway schema with stagebot's engine settings (pool as `make_engine` sets it); dropped after."""
    with throwaway_schema(url, prefix, pool_size=None, max_overflow=None) as pg:
        yield pg


def engines(args: Any, skipped: list[str], fresh: int = 1) -> Iterator[tuple[str, Engine, str]]:
    """(label, engine, description) of `fresh` new databases on each engine in turn: SQLite files
    (`args.sqlite_dir`), then PostgreSQL schemas unless `pg_or_skip` says why not. Each is removed
    when the loop moves on (or stops)."""
    for _ in range(fresh):
        with sqlite_engine(args.sqlite_dir) as engine:
            where = os.path.dirname(os.path.dirname(engine.url.database or ""))
            yield (
                "sqlite",
                engine,
                f"SQLite {sqlite3_version()} file in {where} (WAL, synchronous=FULL, BEGIN IMMEDIATE)",
            )
    server = pg_or_skip(args, skipped)
    for _ in range(fresh if server is not None else 0):
        url, source = server or ("", "")
        with pg_engine(url) as pg:
            detail = pg_detail(pg, source)
            if getattr(pg.engine.pool, "_pre_ping", False):
                detail += ", pool_pre_ping on (one ping per pool checkout)"
            yield "postgresql", pg.engine, detail


def pg_detail(pg: PgSchema, source: str) -> str:
    f = pg.facts
    return (
        f"PostgreSQL {f['server_version']} at {shown(pg.base_url)} ({source}), throwaway schema {pg.name}, "
        f"synchronous_commit={f['synchronous_commit']}, fsync={f['fsync']}"
    )


# ---------------------------------------------------------------- slash commands and their replies


def signed_request(text_: str, response_url: str, user: str = ADMIN_ID) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a correctly signed `/stage TEXT` slash command."""
    from tests.fakes.slack_requests import FORM, signed_headers, slash_command

    body = slash_command(text_, user=user, response_url=response_url)
    headers = signed_headers(body, content_type=FORM)
    headers["Content-Type"] = headers.pop("content-type")
    return body.encode(), headers


@functools.cache
def stage_label(key: str) -> str:
    from lifecycle.domain.pipeline import load_preset

    return load_preset("default").stage_by_key[key].en


def moved_to(reply: str, account: str, target: str) -> bool:
    """Whether a move's reply says `account` moved to `target`.

    Its first line reads "bench-00007: P1 Integration (...) → P2 Testing (...)."; the target is shown
    as "P2 Testing (...)", or as "Churned (...)" for CHURNED."""
    first = reply.split("\n", 1)[0]
    arrow = first.partition(" \u2192 ")[2]
    return first.startswith(f"{account}: ") and arrow.startswith((f"{target} ", f"{stage_label(target)} "))


def bare_bolt_app(signing_secret: str, token: str, api_url: str, listener_pool: ThreadPoolExecutor) -> Any:
    """A slack-bolt App with stagebot's bolt settings (signature checked, listeners inline with the reply
    in the ack, no token check at start), so that an app built on it differs from stagebot's only in
    what its listeners do."""
    from slack_bolt import App
    from slack_sdk import WebClient

    return App(
        signing_secret=signing_secret,
        token_verification_enabled=False,
        client=WebClient(token=token, base_url=api_url, timeout=10),
        listener_executor=listener_pool,
        raise_error_for_unhandled_request=False,
        process_before_response=True,
    )
