"""Load on loopback: a fixed offered rate of signed slash commands over 2 `stagebot serve` replicas.

    python -m bench.bench_load [--rate 100] [--seconds 30] [--warmup 3] [--accounts 400]
                               [--clients 64] [--pg-url URL] [--timeout S]

The target (from the issue): at 100 signed slash commands per second spread over 2 replicas, zero
errors and p99 latency under 150 ms on this 2-core machine.

Set-up, all on 127.0.0.1 and all thrown away at the end (also on Ctrl-C, errors and --timeout):

* PostgreSQL: `CREATE DATABASE stagebot_load_<random>` on the server of --pg-url (default
  `postgresql+psycopg://postgres@127.0.0.1:5432/test`, trust auth), `python -m bot db upgrade`
  once, then `python -m bot import` of a CSV with --accounts accounts (`load-0000`, ...): the even
  ones in SQL, the odd ones in P1 (an import posts no notifications, so nothing is queued before
  the run). `DROP DATABASE ... WITH (FORCE)` at the end.
* A `FakeSlack` (tests/fakes/slack_api.py) in this process: the Web API the replicas post their
  notifications to, recording every call.
* stagebot: 2 x `python -m bot serve --config FILE` on two free loopback ports (a config file per
  replica, differing only in `[server] port`): the config of tests/e2e/test_serve_slack.py
  (TEAMS_TOML: a member per team, a channel per team) plus `[access] admins = ["slack:U0ADMIN"]`,
  Slack in HTTP mode with `[slack] api_url` at the fake, `[scheduler] enabled = false`;
  `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET` and `STAGEBOT_DATABASE_URL` in the environment; both
  replicas on the same database. Ready when `GET /healthz` answers 200.
* The floor: 2 x `python -m bench.bench_load --floor-server --port N`, a bare slack-bolt `App`
  (signing secret verification on, `process_before_response=True`, `token_verification_enabled=
  False`, a 16-thread listener pool: the same settings as stagebot's app) whose `/stage` listener
  only calls `ack("ok")`, routed by stagebot's own `bot.server.WsgiApp` +
  `adapters.slack.app.http_handler` and served by waitress with 16 threads, as `stagebot serve` is.

During each phase a thread times a 4 KiB write + fdatasync every 20 ms in the temp directory (on
this machine the same disk as PostgreSQL's data): every durable commit waits for such a flush, so
the report can tell the disk's own stalls from stagebot's.

The floor is measured first (no stagebot process is running then), then stagebot, with the same
client, the same schedule and the same command texts (fresh trigger ids and signatures).

The load (open loop): request i is due at t0 + i / rate, whatever happened to earlier requests,
and goes to replica i % 2. --clients threads (default 64) in a separate process (its own GIL;
it shares the 2 CPUs with everything else) each hold one keep-alive HTTP/1.1 `http.client`
connection per replica (64 per replica stays under waitress's default connection_limit of 100);
a free thread takes the next request and sleeps until it is due. Latency is measured from the
scheduled time to the whole response read (so a stalled server is charged for the requests it
delayed: no coordinated omission); service time from the actual send. The report says how late
requests were sent ("send lag": all threads busy, or the load generator starved of CPU), which
would mean the offered rate was not kept. The first --warmup seconds of the schedule are sent but
not counted.

The requests: each a correctly signed `/stage` slash command (unique trigger_id, so a unique
idempotency key) from U0ADMIN with a response_url at the fake; a mix (default 70% moves, 12%
`show`, 12% `history`, 6% `list`, see --mix):

* moves alternate between two groups of accounts, round robin within each group so an account is
  moved again only after every other account of its group (every ~5.7 s at the defaults): the
  even accounts go back and forth SQL -> PQL -> SQL (PQL -> SQL is the pipeline's "back" edge), the
  odd ones round the ungated cycle P1 -> P2 -> P3 -> P4 -> P5 -> CHURNED -> PQL -> SQL -> P0 -> P1
  (as bench/bench_slack.py; PQL -> P0 needs an approval, SQL -> P0 does not). Each move's target
  is known in advance and its ack must say the account moved there;
* `show ACCOUNT` and `history ACCOUNT` of a random account (the ack must name it), `list`.

An error is: a connection error or timeout (--request-timeout, default 10 s), a non-200 status,
or a 200 that is not what the command should get: a stagebot refusal or failure (an ack whose
only block is a ":warning:" section: "Cannot move ...", "Something went wrong (ref ...)", ...),
a move that did not land on its target, a read that does not name its account; for the floor,
any body other than "ok". Errors are counted by kind, with examples. Note that one failed move
usually makes that account's next move fail too (it is then in an unexpected stage).

Also printed: machine facts, CPU seconds per request of the replicas, their PostgreSQL backends,
the load generator and this process (FakeSlack) during the phase, and how much CPU the rest of the
machine used meanwhile (the machine may be shared); the notifications FakeSlack received
(chat.postMessage) and, per channel, the shortest gap between two posts and how many gaps were
under 0.5 s (Slack allows about 1 message/s per channel); the outbox by status at the end
(pending = the backlog); stagebot's latency per --window seconds of the run, next to the machine's
and the replicas' CPU and PostgreSQL's activity in the same window; what each server logged beyond
its start and stop lines; and, to find where stagebot's time goes, PostgreSQL's view: commits,
rows and index entries read per request (pg_stat_database, pg_stat_user_tables/indexes, from the
replicas' start to their exit; WAL and checkpoints of the whole server) and pg_stat_activity
sampled every 20 ms during the phase (the statements active backends were running, their wait
events, backends idle in a transaction).

Options: --rate (per second, both replicas together), --seconds (measured), --warmup (seconds,
not measured), --accounts, --clients, --mix (e.g. "move=70,show=12,history=12,list=6"),
--request-timeout, --pg-url (the server: a throwaway database is created there), --timeout (hard
limit for the whole run, default 240 s + 3 x the schedule), --keep-logs (keep the servers' logs),
--keep-db (leave the database for inspection instead of dropping it), --window (seconds per line of
the over-time figures).
"""

from __future__ import annotations

import argparse
import csv
import functools
import http.client
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Self

from bench.common import (
    ADMIN_ID,
    CPUS,
    CYCLE,
    THREADS,
    TICK,
    bare_bolt_app,
    machine_jiffies,
    moved_to,
    parser,
    pct,
    proc_cpu,
    signed_request,
    stage_label,
)
from bench.common import DEFAULT_PG_URL as DEFAULT_PG
from bench.common import SLACK_PATH as PATH
from tests import healthz
from tests.fakes.slack_requests import SECRET, TEAMS_TOML
from tests.pg import throwaway_database

ROOT = Path(__file__).resolve().parent.parent
REPLICAS = 2
TARGET_P99_MS = 150.0
BACK_AND_FORTH = ["SQL", "PQL"]  # even accounts: SQL -> PQL -> SQL -> ...
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

CONFIG = (
    """\
# bench.bench_load: the database URL comes from STAGEBOT_DATABASE_URL
[server]
host = "127.0.0.1"
port = {port}

[slack]
enabled = true
api_url = "{api}"

[scheduler]
enabled = false

[access]
admins = ["slack:{admin}"]

"""
    + TEAMS_TOML
)


def account_name(i: int) -> str:
    return f"load-{i:04d}"


# ---------------------------------------------------------------- the plan (same for both apps)


@dataclass(frozen=True)
class Planned:
    kind: str  # move | show | history | list
    text: str  # the command text after /stage
    account: str | None = None
    target: str | None = None  # for moves: the stage key the account must land in


def parse_mix(spec: str) -> list[tuple[str, float]]:
    out = []
    for part in spec.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in ("move", "show", "history", "list") or not weight.strip():
            raise ValueError(f"bad --mix part {part!r}: use move=N,show=N,history=N,list=N")
        out.append((name, float(weight)))
    total = sum(w for _, w in out)
    if total <= 0:
        raise ValueError("--mix weights add up to 0")
    return [(n, w / total) for n, w in out]


def make_plan(n: int, accounts: int, mix: list[tuple[str, float]], seed: int = 7) -> list[Planned]:
    """n commands: the kinds drawn from `mix`, moves alternating between the two account groups."""
    rng = random.Random(seed)
    groups = [list(range(0, accounts, 2)), list(range(1, accounts, 2))]
    next_in_group = [0, 0]
    moved: Counter[int] = Counter()  # moves planned so far per account
    moves = 0
    plan = []
    for _ in range(n):
        r, kind = rng.random(), mix[-1][0]
        for name, w in mix:
            if r < w:
                kind = name
                break
            r -= w
        if kind == "move":
            g = moves % 2
            moves += 1
            acc = groups[g][next_in_group[g] % len(groups[g])]
            next_in_group[g] += 1
            k = moved[acc]
            moved[acc] += 1
            name = account_name(acc)
            target = BACK_AND_FORTH[(k + 1) % 2] if g == 0 else CYCLE[(k + 1) % len(CYCLE)]
            plan.append(Planned("move", f"move {name} {target}", name, target))
        elif kind == "list":
            plan.append(Planned("list", "list"))
        else:
            name = account_name(rng.randrange(accounts))
            plan.append(Planned(kind, f"{kind} {name}", name))
    return plan


# ---------------------------------------------------------------- checking a reply


def check_reply(app: str, p: Planned, status: int, body: bytes) -> tuple[str, str] | None:
    """None when the reply is what the command should get, else (kind of error, example)."""
    if status != 200:
        return f"HTTP {status}", f"{p.text}: {body[:160]!r}"
    if app == "floor":
        return None if body == b"ok" else ("unexpected body", f"{p.text}: {body[:160]!r}")
    try:
        data = json.loads(body)
        text = str(data["text"])
        blocks = data.get("blocks") or []
    except (ValueError, KeyError, TypeError):
        return "not a JSON message", f"{p.text}: {body[:160]!r}"
    sections = [str((b.get("text") or {}).get("text", "")) for b in blocks if isinstance(b, dict)]
    if "Something went wrong" in text:
        return "failure (Something went wrong)", f"{p.text}: {text[:200]!r}"
    if len(sections) == 1 and sections[0].startswith(":warning:"):
        head = text.split(" ", 2)[:2]
        return f"refusal ({' '.join(head)} ...)", f"{p.text}: {text[:200]!r}"
    if p.kind == "move":
        assert p.account is not None and p.target is not None
        if moved_to(text, p.account, p.target):
            return None
        return "move not applied as planned", f"{p.text}: {text[:200]!r}"
    if p.account is not None and p.account not in text:
        return "reply does not name the account", f"{p.text}: {text[:200]!r}"
    return None


# ---------------------------------------------------------------- load generator (child process)


def drive(
    app: str,
    ports: list[int],
    plan: list[Planned],
    rate: float,
    warm_n: int,
    clients: int,
    response_url: str,
    request_timeout: float,
    limit_s: float,
) -> dict[str, Any]:
    """Sends `plan` open-loop at `rate`/s, request i to ports[i % len(ports)]; returns one record each.

    A record: (index, replica, scheduled ns, sent ns, done ns, status, error kind, example), times
    relative to t0; sent/done are -1 for a request never sent (the phase time limit).
    """
    bodies = [signed_request(p.text, response_url) for p in plan]
    interval_ns = 1e9 / rate
    n = len(plan)
    lock = threading.Lock()
    cursor = [0]
    records: list[tuple[int, int, int, int, int, int, str | None, str | None]] = []
    t0_box = [0]
    stop_at = [0.0]
    ready = threading.Barrier(clients + 1)
    clock = time.perf_counter_ns

    def worker() -> None:
        conns: list[http.client.HTTPConnection | None] = [None] * len(ports)
        mine = []
        ready.wait()
        t0 = t0_box[0]
        try:
            while True:
                with lock:
                    i = cursor[0]
                    cursor[0] += 1
                if i >= n:
                    break
                due = int(i * interval_ns)
                wait = (t0 + due - clock()) / 1e9
                if wait > 0:
                    time.sleep(wait)
                replica = i % len(ports)
                if time.monotonic() > stop_at[0]:
                    mine.append((i, replica, due, -1, -1, 0, "not sent (phase time limit)", plan[i].text))
                    continue
                conn = conns[replica]
                if conn is None:
                    conn = conns[replica] = http.client.HTTPConnection(
                        "127.0.0.1", ports[replica], timeout=request_timeout
                    )
                body, headers = bodies[i]
                sent = clock() - t0
                try:
                    conn.request("POST", PATH, body, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except TimeoutError as exc:
                    done = clock() - t0
                    conn.close()
                    conns[replica] = None
                    mine.append((i, replica, due, sent, done, 0, "timeout", f"{plan[i].text}: {exc}"))
                    continue
                except (OSError, http.client.HTTPException) as exc:
                    done = clock() - t0
                    conn.close()
                    conns[replica] = None
                    kind = f"connection error ({type(exc).__name__})"
                    mine.append((i, replica, due, sent, done, 0, kind, f"{plan[i].text}: {exc}"))
                    continue
                done = clock() - t0
                bad = check_reply(app, plan[i], resp.status, data)
                mine.append(
                    (i, replica, due, sent, done, resp.status, bad[0] if bad else None, bad[1] if bad else None)
                )
        finally:
            for c in conns:
                if c is not None:
                    c.close()
            with lock:
                records.extend(mine)

    if app == "stagebot":
        stage_label("P1")  # loads the pipeline before t0, not during the first move's check
    threads = [threading.Thread(target=worker, name=f"client-{c}", daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    stop_at[0] = time.monotonic() + limit_s
    t0_box[0] = clock() + 50_000_000  # 50 ms from now: every thread is waiting by then
    ready.wait()
    for t in threads:
        t.join(limit_s + request_timeout + 30)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    # CPU of the measured part only is not separable; report the whole phase's, per request sent.
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    records.sort()
    return {
        "records": records,
        "client_cpu_s": cpu,
        "warm_n": warm_n,
        "hung_threads": sum(t.is_alive() for t in threads),
        "t0_ns": t0_box[0],
    }


# ---------------------------------------------------------------- the floor server (child process)


def floor_server(port: int) -> int:
    """A bare slack-bolt app on stagebot's HTTP stack; logs its port, runs until killed."""
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from waitress.server import create_server

    from adapters.slack.app import http_handler
    from bot.server import WsgiApp

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bolt = bare_bolt_app(
        os.environ["SLACK_SIGNING_SECRET"],
        os.environ["SLACK_BOT_TOKEN"],
        os.environ["FLOOR_SLACK_API"],
        ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="bare-listener"),
    )

    @bolt.command("/stage")
    def on_command(ack: Any) -> None:
        ack("ok")

    def healthz(raw: bytes, headers: dict[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, b'{"ok": true}'

    wsgi = WsgiApp()
    wsgi.route("POST", PATH, http_handler(bolt))
    wsgi.route("GET", "/healthz", healthz)
    server: Any = create_server(wsgi, host="127.0.0.1", port=port, threads=THREADS, ident="floor")
    print(f"floor serving on http://127.0.0.1:{server.effective_port}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    finally:
        server.task_dispatcher.shutdown(timeout=5)
    return 0


# ---------------------------------------------------------------- processes


class Abort(Exception):
    """The run cannot go on (a server did not start, --timeout, SIGTERM)."""


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


def spawn(name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Proc:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,  # Ctrl-C reaches only this script, which stops them in order
        )
    return Proc(name, proc, log)


def free_port() -> int:
    """A free loopback port (bound to port 0 and released; the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(p: Proc) -> None:
    why = healthz.wait_healthy(p.port, p.proc, START_TIMEOUT)
    if why is not None:
        raise Abort(f"{p.name} {why}:\n{p.tail()}")


def stop(p: Proc) -> None:
    """SIGTERM (serve finishes what it accepted and exits 0), then SIGKILL; bounded."""
    if p.proc.poll() is not None:
        return
    try:
        p.proc.send_signal(signal.SIGTERM)
        p.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.proc.kill()
        p.proc.wait(timeout=5)


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    """`python -m bot ARGS`; raises Abort with its output when it fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Abort(f"python -m bot {' '.join(args)} took over {timeout:.0f} s") from exc
    out = (done.stdout + done.stderr).decode("utf-8", errors="replace")
    if done.returncode != 0:
        raise Abort(f"python -m bot {' '.join(args)} exited {done.returncode}:\n{out}")
    return out


# ---------------------------------------------------------------- CPU accounting


def backend_pids(url: str | None) -> list[int]:
    """The PostgreSQL backends connected to the database of `url` (the replicas' connection pools)."""
    if url is None:
        return []
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    eng = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
    finally:
        eng.dispose()
    return [int(r[0]) for r in rows]


@dataclass
class Cpu:
    wall_s: float = 0.0
    servers_s: float = 0.0
    postgres_s: float = 0.0  # the backends of the throwaway database only
    main_s: float = 0.0  # this process: FakeSlack and the waiting
    machine_s: float = 0.0  # busy CPU seconds of the whole machine
    machine_busy: float = 0.0  # share of all CPUs


@contextmanager
def cpu_meter(pids: list[int], db_url: str | None) -> Iterator[Cpu]:
    cpu = Cpu()
    s0 = [proc_cpu(p) or 0.0 for p in pids]
    pg0 = {pid: proc_cpu(pid) or 0.0 for pid in backend_pids(db_url)}
    m0, (b0, t0), w0 = time.process_time(), machine_jiffies(), time.monotonic()
    yield cpu
    m1, (b1, t1), w1 = time.process_time(), machine_jiffies(), time.monotonic()
    s1 = [proc_cpu(p) for p in pids]
    pg1 = {pid: proc_cpu(pid) for pid in backend_pids(db_url)}
    cpu.wall_s = w1 - w0
    cpu.servers_s = sum((b or a) - a for a, b in zip(s0, s1, strict=True))
    cpu.postgres_s = sum((v or 0.0) - pg0.get(pid, 0.0) for pid, v in pg1.items())
    cpu.main_s = m1 - m0
    cpu.machine_s = (b1 - b0) / TICK
    cpu.machine_busy = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def pg_stats(url: str) -> dict[str, float]:
    """Cumulative statistics of the database of `url`: pg_stat_database and per-table scans."""
    import sqlalchemy
    import sqlalchemy.exc
    from sqlalchemy.pool import NullPool

    eng = sqlalchemy.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    out: dict[str, float] = {}
    try:
        with eng.connect() as conn:  # autocommit: every statement sees fresh statistics
            row = conn.execute(
                sqlalchemy.text(
                    "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated,"
                    " tup_deleted, blks_hit, blks_read, deadlocks FROM pg_stat_database"
                    " WHERE datname = current_database()"
                )
            ).one()
            out.update({k: float(v or 0) for k, v in row._mapping.items()})
            for dbname, commits in conn.execute(
                sqlalchemy.text(
                    "SELECT datname, xact_commit FROM pg_stat_database WHERE datname IS NOT NULL"
                    " AND datname <> current_database()"
                )
            ):
                out[f"otherdb:{dbname}"] = float(commits or 0)
            with suppress(sqlalchemy.exc.DBAPIError):  # pg_stat_wal: PostgreSQL 14+
                wal = conn.execute(sqlalchemy.text("SELECT wal_write, wal_sync, wal_bytes FROM pg_stat_wal")).one()
                out.update({f"cluster_{k}": float(v or 0) for k, v in wal._mapping.items()})
            with suppress(sqlalchemy.exc.DBAPIError):  # these columns moved to pg_stat_checkpointer in 17
                checkpoints = "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
                out["cluster_checkpoints"] = float(conn.execute(sqlalchemy.text(checkpoints)).scalar_one() or 0)
            for rel, seq, seq_read, idx, idx_fetch in conn.execute(
                sqlalchemy.text(
                    "SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch FROM pg_stat_user_tables"
                )
            ):
                out[f"{rel}.seq_scan"] = float(seq or 0)
                out[f"{rel}.seq_tup_read"] = float(seq_read or 0)
                out[f"{rel}.idx_scan"] = float(idx or 0)
                out[f"{rel}.idx_tup_fetch"] = float(idx_fetch or 0)
            for idx, scans, read in conn.execute(
                sqlalchemy.text("SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes")
            ):
                out[f"index:{idx}.idx_scan"] = float(scans or 0)
                out[f"index:{idx}.idx_tup_read"] = float(read or 0)
    finally:
        eng.dispose()
    return out


# ---------------------------------------------------------------- results


@dataclass
class Result:
    app: str
    offered: float
    records: list[tuple[int, int, int, int, int, int, str | None, str | None]]
    warm_n: int
    client_cpu_s: float
    cpu: Cpu
    hung_threads: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def measured(self) -> list[tuple[int, int, int, int, int, int, str | None, str | None]]:
        return [r for r in self.records if r[0] >= self.warm_n]

    @functools.cached_property
    def answered(self) -> list[tuple[int, int, int, int, int, int, str | None, str | None]]:
        return [r for r in self.measured if r[4] >= 0]

    @property
    def count(self) -> int:
        return len(self.measured)

    @functools.cached_property
    def latency_ms(self) -> list[float]:  # from the scheduled time
        return [(r[4] - r[2]) / 1e6 for r in self.answered]

    @functools.cached_property
    def service_ms(self) -> list[float]:  # from the actual send
        return [(r[4] - r[3]) / 1e6 for r in self.answered]

    @functools.cached_property
    def send_lag_ms(self) -> list[float]:
        return [(r[3] - r[2]) / 1e6 for r in self.answered]

    @functools.cached_property
    def errors(self) -> Counter[str]:
        return Counter(r[6] for r in self.measured if r[6] is not None)

    @functools.cached_property
    def warm_errors(self) -> Counter[str]:
        return Counter(r[6] for r in self.records if r[0] < self.warm_n and r[6] is not None)

    def examples(self, kind: str, limit: int = 3) -> list[str]:
        seen = [r[7] or "" for r in self.records if r[6] == kind]
        return list(dict.fromkeys(seen))[:limit]

    @property
    def achieved(self) -> float:
        """Replies that were right per second, over the measured window (first due to last reply)."""
        ok = [r for r in self.answered if r[6] is None]
        if not self.answered:
            return 0.0
        span = (max(r[4] for r in self.answered) - min(r[2] for r in self.measured)) / 1e9
        return len(ok) / span if span > 0 else 0.0

    def windows(self, seconds: float) -> list[tuple[float, int, float, float, float, dict[str, float]]]:
        """(window start s, replies, p50, p99, max, sampled figures) per `seconds` of the schedule,
        measured part, by scheduled time."""
        by: dict[int, list[float]] = defaultdict(list)
        first = min((r[2] for r in self.measured), default=0)
        for r in self.answered:
            by[int((r[2] - first) / 1e9 // seconds)].append((r[4] - r[2]) / 1e6)
        sampler = self.extra.get("sampler")
        out = []
        for k, v in sorted(by.items()):
            start = self.extra.get("t0_ns", 0) + first + int(k * seconds * 1e9)
            sampled = sampler.window(start, start + int(seconds * 1e9)) if sampler is not None else {}
            out.append((k * seconds, len(v), pct(v, 0.5), pct(v, 0.99), max(v), sampled))
        return out


# ---------------------------------------------------------------- PostgreSQL


def outbox_and_counts(url: str) -> dict[str, Any]:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    eng = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            status = dict(conn.execute(sqlalchemy.text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
            pending_by_kind = dict(
                conn.execute(
                    sqlalchemy.text("SELECT kind, count(*) FROM outbox WHERE status = 'pending' GROUP BY kind")
                ).all()
            )
            moves = conn.execute(
                sqlalchemy.text("SELECT count(*) FROM stage_changes WHERE kind <> 'create'")
            ).scalar_one()
            accounts = conn.execute(sqlalchemy.text("SELECT count(*) FROM accounts")).scalar_one()
    finally:
        eng.dispose()
    return {
        "outbox": {str(k): int(v) for k, v in status.items()},
        "pending_by_kind": {str(k): int(v) for k, v in pending_by_kind.items()},
        "moves": int(moves),
        "accounts": int(accounts),
    }


# ---------------------------------------------------------------- the run


LOG_MARKERS = {
    "Traceback": "tracebacks",
    "unexpected error ref=": "unexpected errors (user saw 'Something went wrong')",
    "Task queue depth": "waitress 'Task queue depth' (a request waited for a worker thread)",
    "outbox dispatch failed": "outbox dispatch failed",
}
LEVEL = re.compile(r'\b(CRITICAL|ERROR|WARNING)\b|"level"\s*:\s*"(?i:(critical|error|warning))"')
BENIGN = ("serving on http", "shutting down", "`token` will be unused")


def log_summary(p: Proc) -> tuple[Counter[str], list[str]]:
    """What a server logged beyond its start and stop lines: counts by kind, and a few such lines."""
    seen: Counter[str] = Counter()
    examples: list[str] = []
    for line in p.text().splitlines():
        for marker, what in LOG_MARKERS.items():
            if marker in line:
                seen[what] += 1
        m = LEVEL.search(line)
        level = (m.group(1) or m.group(2)).upper() if m else None
        if level and not any(b in line for b in BENIGN):
            seen[f"{level} lines"] += 1
            if len(examples) < 3:
                examples.append(line[:220])
    return seen, examples


CLAIM = "SELECT outbox.id, outbox.event_id"  # how the dispatcher's claim statement starts


class _Background:
    """A daemon thread running `_run` from `with` to the end of the block (it watches `_stop`)."""

    name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        raise NotImplementedError


class Sampler(_Background):
    """Every `every` s, in a thread: the machine's CPU (/proc/stat), the servers' CPU, and with a
    database URL its pg_stat_activity (the statement of each active backend, wait events, backends
    idle in a transaction). Kept as totals and as a timeline for the per-window figures."""

    name = "sampler"

    def __init__(self, url: str | None, pids: list[int], every: float = 0.02) -> None:
        self.url, self.pids, self.every = url, pids, every
        self.samples = 0
        self.active: Counter[str] = Counter()
        self.waits: Counter[str] = Counter()
        self.idle_in_tx = 0
        # (perf_counter_ns, active, in COMMIT, in the outbox claim, machine busy jiffies, all jiffies, servers s)
        self.timeline: list[tuple[int, int, int, int, int, int, float]] = []
        super().__init__()

    def _run(self) -> None:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        eng = None
        conn = None
        q = sqlalchemy.text(
            "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        try:
            if self.url:
                eng = sqlalchemy.create_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
                conn = eng.connect()
            while not self._stop.wait(self.every):
                self.samples += 1
                active = commit = claim = 0
                if conn is not None:
                    for state, wtype, wevent, query in conn.execute(q):
                        if state == "active":
                            text = " ".join(str(query).split())
                            active += 1
                            commit += text == "COMMIT"
                            claim += text.startswith(CLAIM)
                            self.active[text[:150]] += 1
                            if wtype:
                                self.waits[f"{wtype}:{wevent}"] += 1
                        elif state == "idle in transaction":
                            self.idle_in_tx += 1
                busy, total = machine_jiffies()
                servers = sum(proc_cpu(pid) or 0.0 for pid in self.pids)
                self.timeline.append((time.perf_counter_ns(), active, commit, claim, busy, total, servers))
        except Exception as exc:  # diagnostics only: never fail the run for them
            print(f"[bench] sampling stopped: {exc}", file=sys.stderr)
        finally:
            if conn is not None:
                conn.close()
            if eng is not None:
                eng.dispose()

    def window(self, start_ns: int, end_ns: int) -> dict[str, float]:
        """Averages over [start_ns, end_ns): machine busy share, servers' CPUs, PostgreSQL backends."""
        pts = [x for x in self.timeline if start_ns <= x[0] < end_ns]
        if len(pts) < 2:
            return {}
        span = (pts[-1][0] - pts[0][0]) / 1e9
        d_total = pts[-1][5] - pts[0][5]
        return {
            "busy": (pts[-1][4] - pts[0][4]) / d_total if d_total else 0.0,
            "servers": (pts[-1][6] - pts[0][6]) / span if span else 0.0,
            "active": sum(x[1] for x in pts) / len(pts),
            "commit": sum(x[2] for x in pts) / len(pts),
            "claim": sum(x[3] for x in pts) / len(pts),
        }


class DiskProbe(_Background):
    """In a thread: append 4 KiB to a temp file and fdatasync it every `every` s, timing each flush.

    Every durable commit (PostgreSQL's `synchronous_commit=on`) waits for such a flush of the WAL,
    so stalls of the disk itself show up here whether or not stagebot is running. The temp file
    lives in the default temp directory; the report says whether that is the database's disk.
    """

    name = "disk-probe"

    def __init__(self, every: float = 0.02) -> None:
        self.every = every
        self.flushes: list[tuple[int, float]] = []  # (perf_counter_ns at start, seconds)
        super().__init__()

    def _run(self) -> None:
        fd, path = tempfile.mkstemp(prefix="bench-load-fsync-")
        try:
            block = b"x" * 4096
            while not self._stop.wait(self.every):
                os.write(fd, block)
                t0 = time.perf_counter_ns()
                os.fdatasync(fd)
                self.flushes.append((t0, (time.perf_counter_ns() - t0) / 1e9))
        except OSError as exc:  # diagnostics only
            print(f"[bench] disk probe stopped: {exc}", file=sys.stderr)
        finally:
            os.close(fd)
            os.unlink(path)

    def stalls(self, over_s: float = TARGET_P99_MS / 1000) -> list[float]:
        return sorted((d for _, d in self.flushes if d > over_s), reverse=True)

    def summary(self) -> str:
        ds = [d * 1000 for _, d in self.flushes]
        if not ds:
            return "no flushes timed"
        slow = self.stalls()
        return (
            f"{len(ds)} flushes: p50 {fmt(pct(ds, 0.5))} ms, p99 {fmt(pct(ds, 0.99))} ms, max {fmt(max(ds))} ms; "
            f"{len(slow)} over {TARGET_P99_MS:.0f} ms"
            + (f" ({', '.join(fmt(x * 1000) for x in slow[:8])} ms)" if slow else "")
        )


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, fake: Any) -> None:
        self.args = args
        self.tmp = tmp
        self.fake = fake
        self.procs: list[Proc] = []
        self.pool: ProcessPoolExecutor | None = None

    def base_env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "HOME": os.environ.get("HOME", str(self.tmp)),
            "SLACK_BOT_TOKEN": "xoxb-load",
            "SLACK_SIGNING_SECRET": SECRET,
        }

    def config(self, name: str, port: int) -> Path:
        cfg = self.tmp / name
        cfg.write_text(CONFIG.format(port=port, api=self.fake.base_url, admin=ADMIN_ID))
        return cfg

    def start(self, app: str, env: dict[str, str]) -> list[Proc]:
        """REPLICAS servers on free loopback ports; back when each answers GET /healthz."""
        started = []
        for r in range(REPLICAS):
            log = self.tmp / f"{app}-{r}.log"
            port = free_port()
            if app == "stagebot":  # a config per replica: they differ only in [server] port
                cfg = self.config(f"stagebot-{r}.toml", port)
                argv = [sys.executable, "-m", "bot", "serve", "--config", str(cfg)]
            else:
                argv = [sys.executable, "-m", "bench.bench_load", "--floor-server", "--port", str(port)]
            p = spawn(f"{app}-{r}", argv, env, log, self.tmp)
            p.port = port
            self.procs.append(p)
            started.append(p)
        for p in started:
            wait_healthy(p)
            print(f"[{app}] {p.name} ready on 127.0.0.1:{p.port} (pid {p.proc.pid})", flush=True)
        return started

    def stop_all(self) -> None:
        for p in self.procs:
            try:
                stop(p)
            except Exception as exc:
                print(f"[bench] could not stop {p.name}: {exc}", file=sys.stderr)

    def load(self, app: str, procs: list[Proc], plan: list[Planned], warm_n: int, db_url: str | None) -> Result:
        a = self.args
        assert self.pool is not None
        total_s = len(plan) / a.rate
        limit = total_s + 30.0  # nothing is sent later than this (a stalled server)
        print(
            f"[{app}] {len(plan)} requests at {a.rate:g}/s ({a.warmup:g} s warm-up + {a.seconds:g} s measured), "
            f"{a.clients} client threads ...",
            flush=True,
        )
        fut = self.pool.submit(
            drive,
            app,
            [p.port for p in procs],
            plan,
            a.rate,
            warm_n,
            a.clients,
            self.fake.response_url("load"),
            a.request_timeout,
            limit,
        )
        # The CPU meter covers the whole phase (warm-up included); reported per request sent.
        with (
            cpu_meter([p.proc.pid for p in procs], db_url) as cpu,
            Sampler(db_url, [p.proc.pid for p in procs]) as sampler,
            DiskProbe() as disk,
        ):
            out = fut.result(timeout=limit + a.request_timeout + 90)
        r = Result(app, a.rate, out["records"], out["warm_n"], out["client_cpu_s"], cpu, out["hung_threads"])
        r.extra["kinds"] = {i: p.kind for i, p in enumerate(plan)}
        r.extra["sampler"] = sampler
        r.extra["disk"] = disk
        r.extra["t0_ns"] = out["t0_ns"]
        print(
            f"[{app}] done: {r.count} measured, {sum(r.errors.values())} errors, p99 {pct(r.latency_ms, 0.99):.1f} ms",
            flush=True,
        )
        return r

    def run(self) -> None:
        a = self.args
        n = round((a.warmup + a.seconds) * a.rate)
        warm_n = round(a.warmup * a.rate)
        plan = make_plan(n, a.accounts, a.mix)
        moves_per_s = a.rate * sum(w for k, w in a.mix if k == "move") / 2
        spacing = (a.accounts / 2) / moves_per_s if moves_per_s else float("inf")
        if spacing < 2.0:
            print(f"[bench] warning: an account is moved again every {spacing:.1f} s; raise --accounts", flush=True)

        # The load generator: its own process (own GIL), started now, not during a phase.
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.pool.submit(int).result(timeout=60)

        with throwaway_database(a.pg_url, "stagebot_load_", a.keep_db) as (db_url, pg):
            try:
                self._run(plan, warm_n, db_url, pg)
            finally:
                self.stop_all()  # before the database is dropped

    def _run(self, plan: list[Planned], warm_n: int, db_url: str, pg: dict[str, str]) -> None:
        a = self.args
        print(f"[db] created database {pg['name']} on {pg['server']} (PostgreSQL {pg['server_version']})")
        cfg = self.config("stagebot.toml", 0)  # for db upgrade and import
        env = {**self.base_env(), "STAGEBOT_DATABASE_URL": db_url}
        run_cli(["db", "upgrade", "--config", str(cfg)], env, self.tmp)
        seed = self.tmp / "accounts.csv"
        with seed.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["name", "stage"])
            for i in range(a.accounts):
                w.writerow([account_name(i), BACK_AND_FORTH[0] if i % 2 == 0 else CYCLE[0]])
        print("[db] " + run_cli(["import", str(seed), "--config", str(cfg)], env, self.tmp).strip(), flush=True)

        # The floor first: no stagebot process exists yet.
        floor_env = {**self.base_env(), "FLOOR_SLACK_API": self.fake.base_url}
        floor_procs = self.start("floor", floor_env)
        floor = self.load("floor", floor_procs, plan, warm_n, None)
        for p in floor_procs:
            stop(p)
        floor.extra["logs"] = {p.name: log_summary(p) for p in floor_procs}

        stats0 = pg_stats(db_url)
        bot_procs = self.start("stagebot", env)
        posted0 = len(self.fake.calls_to("chat.postMessage"))
        bot = self.load("stagebot", bot_procs, plan, warm_n, db_url)
        calls = self.fake.calls_to("chat.postMessage")[posted0:]
        bot.extra.update(outbox_and_counts(db_url))
        bot.extra["posted"] = len(calls)
        bot.extra["posted_failed"] = sum(1 for c in calls if c.answered != 200)
        bot.extra["gaps"] = channel_gaps(calls)
        bot.extra["moves_planned"] = sum(1 for p in plan if p.kind == "move")
        for p in bot_procs:
            stop(p)
        bot.extra["exit_codes"] = {p.name: p.proc.returncode for p in bot_procs}
        time.sleep(0.5)  # the backends' last statistics reach the cumulative counters as they exit
        stats1 = pg_stats(db_url)
        # Other databases count only when present at both ends (one dropped meanwhile has no delta).
        bot.extra["pg"] = {k: v - stats0[k] for k, v in stats1.items() if k in stats0 or not k.startswith("otherdb:")}
        bot.extra["pg"]["other_commits"] = sum(v for k, v in bot.extra["pg"].items() if k.startswith("otherdb:"))
        bot.extra["logs"] = {p.name: log_summary(p) for p in bot_procs}
        report(floor, bot, pg, a)


def channel_gaps(calls: list[Any]) -> dict[str, tuple[int, float, int]]:
    """Per channel: (posts, shortest gap between consecutive chat.postMessage in s, gaps under 0.5 s).
    Slack allows about 1 message per second per channel."""
    times: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        times[str(c.body.get("channel"))].append(c.at)
    out = {}
    for ch, ts in sorted(times.items()):
        ts.sort()
        gaps = [b - a for a, b in pairwise(ts)]
        out[ch] = (len(ts), min(gaps, default=float("nan")), sum(1 for g in gaps if g < 0.5))
    return out


# ---------------------------------------------------------------- report


def fmt(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def report(floor: Result, bot: Result, pg: dict[str, str], a: argparse.Namespace) -> None:
    from importlib.metadata import version

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mix = ", ".join(f"{k} {w:.0%}" for k, w in a.mix)
    print()
    print(f"## Load on loopback: {a.rate:g} signed slash commands/s over {REPLICAS} replicas")
    print()
    print(
        f"Machine: {CPUS} CPUs ({model or 'unknown model'}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, PostgreSQL {pg['server_version']} (local, "
        f"synchronous_commit={pg['synchronous_commit']}, shared_buffers={pg['shared_buffers']}), "
        f"slack-bolt {version('slack_bolt')}, waitress {version('waitress')}, SQLAlchemy {version('sqlalchemy')}, "
        f"psycopg {version('psycopg')}."
    )
    print(
        f"Open loop: request i due at t0 + i/{a.rate:g} s, to replica i % {REPLICAS}; {a.warmup:g} s warm-up then "
        f"{a.seconds:g} s measured; {a.clients} client threads (one keep-alive connection per replica each) in a "
        f"separate process. Mix: {mix}; {a.accounts} accounts. Latency from the scheduled send time, service "
        f"time from the actual send (ms)."
    )
    print()
    print(
        "| app | offered req/s | achieved req/s | count | errors | p50 | p90 | p99 | max "
        "| service p50 | service p99 | send lag p99 / max |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r, label in ((bot, "stagebot (2 x `serve`, PostgreSQL)"), (floor, "floor (2 x bare slack-bolt, ack 'ok')")):
        lat, svc, lag = r.latency_ms, r.service_ms, r.send_lag_ms
        print(
            f"| {label} | {r.offered:g} | {r.achieved:.1f} | {r.count} | {sum(r.errors.values())} "
            f"| {fmt(pct(lat, 0.5))} | {fmt(pct(lat, 0.9))} | {fmt(pct(lat, 0.99))} | {fmt(max(lat, default=0))} "
            f"| {fmt(pct(svc, 0.5))} | {fmt(pct(svc, 0.99))} | {fmt(pct(lag, 0.99))} / {fmt(max(lag, default=0))} |"
        )
    print()
    ratio = pct(bot.latency_ms, 0.99) / pct(floor.latency_ms, 0.99)
    print(f"- stagebot p99 / floor p99: {ratio:.1f}x")
    for r in (bot, floor):
        per = {rep: pct([(x[4] - x[2]) / 1e6 for x in r.answered if x[1] == rep], 0.99) for rep in range(REPLICAS)}
        by_kind: dict[str, list[float]] = defaultdict(list)
        plan_kinds = r.extra.get("kinds", {})
        for x in r.answered:
            by_kind[plan_kinds.get(x[0], "?")].append((x[4] - x[2]) / 1e6)
        print(
            f"- {r.app}: p99 per replica: "
            + ", ".join(f"#{k} {fmt(v)} ms" for k, v in per.items())
            + "; p50 / p99 per command: "
            + ", ".join(
                f"{k} ({len(v)}) {fmt(pct(v, 0.5))} / {fmt(pct(v, 0.99))} ms" for k, v in sorted(by_kind.items())
            )
        )
        sent = len([x for x in r.records if x[3] >= 0]) or 1
        c = r.cpu
        rest = c.machine_s - c.servers_s - c.postgres_s - r.client_cpu_s - c.main_s
        print(
            f"- {r.app}: CPU per request over the whole phase ({sent} sent in {c.wall_s:.1f} s): "
            f"servers {c.servers_s * 1e3 / sent:.2f} ms, "
            + (f"PostgreSQL backends {c.postgres_s * 1e3 / sent:.2f} ms, " if r.app == "stagebot" else "")
            + f"load generator {r.client_cpu_s * 1e3 / sent:.2f} ms, this process (FakeSlack) "
            f"{c.main_s * 1e3 / sent:.2f} ms; machine busy {c.machine_busy:.0%} of {CPUS} CPUs, of which "
            f"{max(rest, 0.0) / c.wall_s if c.wall_s else 0.0:.2f} CPUs outside this benchmark's processes "
            "(other work on the machine, PostgreSQL's shared server processes)"
        )
        if r.hung_threads:
            print(f"- {r.app}: {r.hung_threads} client threads still running at the end (stuck requests)")
        for kind, count in r.errors.most_common():
            print(f"- {r.app} error: {count} x {kind}, e.g. {r.examples(kind)}")
        for kind, count in r.warm_errors.most_common():
            print(f"- {r.app} warm-up error (not counted): {count} x {kind}, e.g. {r.examples(kind, 2)}")
        for name, (seen, lines) in r.extra.get("logs", {}).items():
            if seen:
                print(f"- {name} logged: " + ", ".join(f"{v} {k}" for k, v in seen.most_common()))
            for ln in lines:
                print(f"  - {ln}")
    e = bot.extra
    st = e.get("pg", {})
    if st:
        sent = len([x for x in bot.records if x[3] >= 0]) or 1
        tables = sorted({k.split(".")[0] for k in st if "." in k}, key=lambda t: -st.get(f"{t}.seq_tup_read", 0.0))
        scans = ", ".join(
            f"{t} {st[t + '.seq_scan']:.0f} seq scans reading {st[t + '.seq_tup_read']:,.0f} rows"
            for t in tables[:4]
            if st.get(f"{t}.seq_scan", 0) > 0
        )
        print(
            f"- stagebot PostgreSQL work, start of replicas to their exit ({sent} requests sent): "
            f"{st.get('xact_commit', 0) / sent:.1f} commits and {st.get('xact_rollback', 0) / sent:.1f} rollbacks "
            f"per request, {st.get('tup_returned', 0) / sent:,.0f} rows returned by scans and "
            f"{st.get('tup_fetched', 0) / sent:,.0f} fetched per request, {st.get('deadlocks', 0):.0f} deadlocks; "
            f"sequential scans: {scans or 'none'}"
        )
        print(
            f"- the PostgreSQL server meanwhile (shared with other work): {st.get('other_commits', 0):,.0f} commits "
            f"in other databases (against {st.get('xact_commit', 0):,.0f} in this one); "
            f"{st.get('cluster_wal_sync', 0):,.0f} WAL syncs, {st.get('cluster_wal_bytes', 0) / 1e6:,.1f} MB of WAL, "
            f"{st.get('cluster_checkpoints', 0):.0f} checkpoints"
        )
        idx = sorted(
            ((k[6:-13], v) for k, v in st.items() if k.startswith("index:") and k.endswith(".idx_tup_read")),
            key=lambda kv: -kv[1],
        )
        print(
            "- index entries read per request (pg_stat_user_indexes.idx_tup_read / requests): "
            + ", ".join(
                f"{name} {v / sent:,.0f} ({st.get(f'index:{name}.idx_scan', 0) / sent:.1f} scans)"
                for name, v in idx[:5]
                if v > 0
            )
        )
    sampler = e.get("sampler")
    if sampler is not None and sampler.active:
        n = sampler.samples
        busy = sum(sampler.active.values())
        print(
            f"- pg_stat_activity sampled {n} times during the phase: on average {busy / n:.2f} backends active "
            f"and {sampler.idle_in_tx / n:.2f} idle in transaction; waits while active: "
            + (", ".join(f"{k} {v / max(busy, 1):.0%}" for k, v in sampler.waits.most_common(4)) or "none")
        )
        for q, v in sampler.active.most_common(6):
            print(f"  - {v / max(busy, 1):.0%} of active samples: {q}")
    print()
    print(
        f"stagebot per {a.window:g} s of the schedule (CPU figures in CPUs of {CPUS}; PostgreSQL: average "
        "backends of the database active, of which in COMMIT / in the outbox claim, sampled every 20 ms):"
    )
    print()
    print(
        "| from s | replies | p50 ms | p99 ms | max ms | machine busy | replicas CPU "
        "| PG active | in COMMIT | in claim |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, n, p50, p99, mx, w in bot.windows(a.window):
        print(
            f"| {t:.0f} | {n} | {fmt(p50)} | {fmt(p99)} | {fmt(mx)} | {w.get('busy', 0) * CPUS:.2f} "
            f"| {w.get('servers', 0):.2f} | {w.get('active', 0):.2f} | {w.get('commit', 0):.2f} "
            f"| {w.get('claim', 0):.2f} |"
        )
    print()
    out = e["outbox"]
    print(
        f"- notifications: FakeSlack received {e['posted']} chat.postMessage during the stagebot phase "
        f"({e['posted_failed']} answered with an error); per channel: posts, shortest gap between two, "
        "gaps under 0.5 s (Slack allows ~1 message/s per channel): "
        + ", ".join(f"{ch} {n}, {g:.3f} s, {short}" for ch, (n, g, short) in e["gaps"].items())
    )
    pending = out.get("pending", 0)
    print(
        f"- outbox at the end: {pending} pending (backlog), {out.get('delivered', 0)} delivered, "
        f"{out.get('dead', 0)} dead; pending by kind {e['pending_by_kind']}"
    )
    print(
        f"- stage moves recorded: {e['moves']} (planned {e['moves_planned']}, warm-up included); "
        f"accounts {e['accounts']}; replicas exited with {e['exit_codes']}"
    )
    print()
    errors = sum(bot.errors.values())
    p99 = pct(bot.latency_ms, 0.99)
    met = errors == 0 and p99 < TARGET_P99_MS and bot.count > 0
    for name, res in (("floor", floor), ("stagebot", bot)):
        disk = res.extra.get("disk")
        if disk is not None:
            print(
                f"- disk during the {name} phase (4 KiB + fdatasync every 20 ms in {tempfile.gettempdir()}): "
                + disk.summary()
            )
    print(
        f"target: 0 errors and p99 < {TARGET_P99_MS:.0f} ms: {'met' if met else 'not met'} "
        f"({errors} errors, p99 {fmt(p99)} ms)"
    )


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--rate", type=float, default=100.0, help="offered requests per second, both replicas (100)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds (30)")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before, not measured (3)")
    ap.add_argument("--accounts", type=int, default=400, help="accounts imported beforehand (400)")
    ap.add_argument("--clients", type=int, default=64, help="client threads (64)")
    ap.add_argument("--mix", default="move=70,show=12,history=12,list=6", help="command mix (weights)")
    ap.add_argument("--request-timeout", type=float, default=10.0, help="per-request socket timeout, s (10)")
    ap.add_argument("--window", type=float, default=5.0, help="seconds per line of the over-time figures (5)")
    ap.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL server URL ({DEFAULT_PG})")
    ap.add_argument("--timeout", type=float, default=None, help="hard limit for the whole run, s")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the servers' logs")
    ap.add_argument("--keep-db", action="store_true", help="do not drop the database (to inspect it; drop it yourself)")
    ap.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)  # internal: one floor replica
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)  # the floor replica's port
    args = ap.parse_args(argv)
    if args.floor_server:
        return floor_server(args.port)
    try:
        args.mix = parse_mix(args.mix)
    except ValueError as exc:
        ap.error(str(exc))
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0 or args.clients < 1 or args.accounts < 4:
        ap.error("--rate and --seconds must be > 0, --warmup >= 0, --clients >= 1, --accounts >= 4")
    if args.timeout is None:
        args.timeout = 240 + 3 * (args.seconds + args.warmup)

    from tests.fakes.slack_api import FakeSlack

    def on_signal(signum: int, _frame: Any) -> None:
        signal.alarm(0)
        raise Abort("--timeout reached" if signum == signal.SIGALRM else f"signal {signum}")

    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(int(args.timeout))

    tmp = Path(tempfile.mkdtemp(prefix="stagebot-bench-load-"))
    fake = FakeSlack()
    bench = Bench(args, tmp, fake)
    code = 0
    try:
        bench.run()
    except (Abort, KeyboardInterrupt) as exc:
        print(f"[bench] aborted: {str(exc) or type(exc).__name__}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup runs to the end (it is bounded)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.stop_all()
        if bench.pool is not None:
            if code:  # aborted: the load generator may be stuck in a phase
                for pid in list(getattr(bench.pool, "_processes", None) or {}):
                    with suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            bench.pool.shutdown(wait=True, cancel_futures=True)
        fake.close()
        if args.keep_logs or code:
            print(f"[bench] logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
