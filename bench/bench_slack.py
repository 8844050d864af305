"""Slash-command latency over HTTP: stagebot's real server stack against a bare slack-bolt app.

    python -m bench.bench_slack [--requests 2000] [--warmup 200] [--accounts 400] [--pg-url URL]

The servers run in this process, one after the other in the same run, on the same stack: waitress
`create_server(wsgi, host="127.0.0.1", port=0, threads=16)` in front of a `bot.server.WsgiApp`
routing `POST /slack/events` to slack-bolt. The servers' event loops run in threads here (the loop
of `server.run()`, with a stop flag so the bench can shut them down cleanly).

* stagebot: `bot.serve.start(settings, workers=16)` -- what `stagebot serve` runs: Slack enabled,
  the Web API pointed at a `FakeSlack` on 127.0.0.1, the outbox dispatcher thread posting
  notifications to it (paced at 1 message/s per channel, as in production; one channel per team of
  the default pipeline: 4), SQLite in a temp dir (and PostgreSQL in a throwaway schema with
  --pg-url). Accounts `bench-00000`.. are created in P1 beforehand, without notifications. Every
  request is a real stage move (`/stage move bench-NNNNN P2`, then P3, ...: the ungated cycle
  P1 -> P2 -> P3 -> P4 -> P5 -> CHURNED -> PQL -> SQL -> P0 -> P1), by an admin; the ack must say the
  account moved (a refusal counts as an error).
* bare: `slack_bolt.App(signing_secret=..., token_verification_enabled=False, client=WebClient(
  base_url=fake), listener_executor=ThreadPoolExecutor(16), process_before_response=True)` (the
  same bolt settings as stagebot's) whose `/stage` listener only acks "ok", dispatched with
  `adapters.slack.app.dispatch` -- the floor of the same stack.
* bare + durable write: the same bare app, whose listener first runs, on stagebot's engine
  (`make_engine`, a database of its own seeded like stagebot's), the durable transaction a stage
  move cannot do without: the account looked up by name, its stage and version updated, a history
  row, an outbox row and the idempotency key inserted, one commit (on SQLite behind an in-process
  writer lock, as stagebot's `Database`); then it acks "ok". No rules, events or rendering: the
  ratio of stagebot to this row is stagebot's own overhead above "bolt + the unavoidable write".
  It runs on each engine stagebot runs on (SQLite; PostgreSQL with --pg-url, its own schema).

The load: 16 closed-loop clients, each a thread with one keep-alive `http.client` connection,
sending the same signed slash commands to each app (each client owns a slice of the accounts, so an
account's moves are sequential). The clients run in a separate process (own GIL) that shares the
machine's CPUs with the servers; the report says how busy the machine was. Latency is from
sending the request to having read the whole response. The bare app is measured first, then per engine the
write row and stagebot, so nothing of stagebot but its idle dispatcher poll runs meanwhile.

Reading the numbers: all apps run bolt with `process_before_response=True`, so the listener runs
on the waitress thread that took the request and its ack is the HTTP response (no hand-off to the
listener pool, no polling for the ack). With 16 closed-loop clients and no pause between requests
the servers are saturated, and on one GIL the latency follows the CPU each request costs: the
p99 ratio is close to the ratio of the server CPU per request, which the table shows. A listener
that has not acked within 3 s makes bolt answer 404 "unhandled request" (counted as an error;
the move itself may still commit afterwards).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import multiprocessing
import platform
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ADMIN_ID,
    CPUS,
    CYCLE,
    THREADS,
    bare_bolt_app,
    fmt_ms,
    machine_jiffies,
    moved_to,
    parser,
    pct,
    percentiles_ms,
    ratio,
    signed_request,
    thread_cpu,
    verdict,
)
from bench.common import SLACK_PATH as PATH
from tests.fakes.slack_requests import SECRET

CLIENTS = 16
START = "P1"
CHANNELS = {"marketing": "C0MARKETING", "sales": "C0SALES", "cs": "C0CS", "support": "C0SUPPORT"}
TARGET_RATIO = 1.5  # stagebot p99 within 1.5x of the bare app's
TARGET_P99_MS = 100.0


def account_name(i: int) -> str:
    return f"bench-{i:05d}"


# ---------------------------------------------------------------- load generator (child process)


def plan(client: int, start: int, count: int, clients: int, accounts: int) -> list[tuple[str, str, str]]:
    """(command text, account, target stage) for requests start..start+count of one client.

    Client c owns accounts c, c + clients, ...; its i-th request moves account mine[i % len(mine)]
    for the (i // len(mine))-th time, so the target is known without asking the server.
    """
    mine = list(range(client, accounts, clients))
    out = []
    for i in range(start, start + count):
        name = account_name(mine[i % len(mine)])
        target = CYCLE[(i // len(mine) + 1) % len(CYCLE)]
        out.append((f"move {name} {target}", name, target))
    return out


FLOORS = ("bare", "write")  # the apps whose listener only acks "ok" (after a write, for "write")


def check_reply(kind: str, status: int, body: bytes, name: str, target: str) -> str | None:
    """None when the reply is what the command should get, else why not."""
    if status != 200:
        return f"HTTP {status}: {body[:120]!r}"
    if kind in FLOORS:
        return None if body == b"ok" else f"unexpected ack {body[:120]!r}"
    try:
        text = json.loads(body)["text"]
    except (ValueError, KeyError, TypeError):
        return f"ack is not a JSON message: {body[:120]!r}"
    return None if moved_to(text, name, target) else f"not moved to {target}: {text[:160]!r}"


def drive(
    kind: str,
    port: int,
    response_url: str,
    counts: list[int],
    starts: list[int],
    accounts: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Runs one closed-loop phase: client c sends counts[c] requests; returns latencies and errors."""
    clients = len(counts)
    prepared: list[list[tuple[bytes, dict[str, str], str, str]]] = []
    for c in range(clients):
        reqs = []
        for text, name, target in plan(c, starts[c], counts[c], clients, accounts):
            body, headers = signed_request(text, response_url)
            reqs.append((body, headers, name, target))
        prepared.append(reqs)
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(clients)]
    for conn in conns:
        conn.connect()
    lat: list[list[int]] = [[] for _ in range(clients)]
    replies: list[list[tuple[int, bytes, str, str]]] = [[] for _ in range(clients)]
    failures: list[list[str]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        conn, mine, out, got = conns[c], lat[c], replies[c], failures[c]
        clock = time.perf_counter_ns
        barrier.wait()
        for body, headers, name, target in prepared[c]:
            if time.monotonic() > deadline[0]:
                got.append("not sent: phase time limit reached")
                continue
            t0 = clock()
            try:
                conn.request("POST", PATH, body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                got.append(f"{type(exc).__name__}: {exc}")
                conn.close()  # http.client reconnects on the next request
                continue
            mine.append(clock() - t0)
            out.append((resp.status, data, name, target))

    threads = [threading.Thread(target=client, args=(c,), name=f"client-{c}") for c in range(clients)]
    for t in threads:
        t.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    deadline[0] = time.monotonic() + timeout_s
    t0 = time.perf_counter_ns()
    barrier.wait()
    for t in threads:
        t.join(timeout_s + 35)
    wall = time.perf_counter_ns() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        conn.close()
    errors = [e for f in failures for e in f]
    for out in replies:
        for status, data, name, target in out:
            why = check_reply(kind, status, data, name, target)
            if why is not None:
                errors.append(why)
    return {
        "lat": [x for per in lat for x in per],
        "wall_ns": wall,
        "errors": len(errors),
        "examples": list(dict.fromkeys(errors))[:3],
        "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
    }


# ---------------------------------------------------------------- CPU accounting (server process)


def thread_group(name: str) -> str:
    if name.startswith("waitress-"):
        return "waitress workers (HTTP, bolt dispatch, signature check)"
    if name.startswith("slack-listener"):
        return "stagebot bolt listeners (the /stage command)"
    if name.startswith(("bare-listener", "write-listener")):
        return "bare bolt listeners (ack only, or write and ack)"
    if name == "outbox-dispatcher":
        return "outbox dispatcher"
    if name.startswith("http-loop-"):
        return "waitress event loops"
    return "other (main, fake Slack, ended threads)"


@dataclass
class Cpu:
    process_s: float = 0.0
    by_group: Counter[str] = field(default_factory=Counter)
    machine_busy: float = 0.0  # share of all CPUs


@contextmanager
def cpu_meter() -> Iterator[Cpu]:
    cpu = Cpu()
    p0, th0, (b0, tot0) = time.process_time(), thread_cpu(), machine_jiffies()
    yield cpu
    p1, th1, (b1, tot1) = time.process_time(), thread_cpu(), machine_jiffies()
    cpu.process_s = p1 - p0
    for tid, (name, s) in th1.items():
        cpu.by_group[thread_group(name)] += s - th0.get(tid, (name, 0.0))[1]
    known = sum(v for k, v in cpu.by_group.items() if not k.startswith("other"))
    cpu.by_group["other (main, fake Slack, ended threads)"] = max(0.0, cpu.process_s - known)
    cpu.machine_busy = (b1 - b0) / (tot1 - tot0) if tot1 > tot0 else 0.0


class QueueDepth(logging.Handler):
    """Counts waitress's "Task queue depth is N" warnings (a request waited for a free worker thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.max = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if record.args and isinstance(record.args, tuple) and isinstance(record.args[0], int):
            self.max = max(self.max, record.args[0])

    def reset(self) -> None:
        self.count, self.max = 0, 0


QUEUE = QueueDepth()


# ---------------------------------------------------------------- servers


class HttpServer:
    """waitress on 127.0.0.1:0 in a thread; `stop()` closes the listener, connections and workers."""

    def __init__(self, name: str, wsgi: Any) -> None:
        from waitress.server import create_server

        self.server: Any = create_server(wsgi, host="127.0.0.1", port=0, threads=THREADS, ident=name)
        self.port: int = self.server.effective_port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"http-loop-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from waitress import wasyncore

        srv = self.server
        timeout = min(srv.adj.asyncore_loop_timeout, 0.2)  # bounds how long stop() waits
        while not self._stop.is_set():  # server.run() is `while map: poll(timeout, map)`
            wasyncore.loop(timeout=timeout, map=srv._map, use_poll=srv.adj.asyncore_use_poll, count=1)

    def stop(self) -> None:
        from waitress import wasyncore

        self._stop.set()
        self._thread.join(5)
        try:
            self.server.close()
            wasyncore.close_all(self.server._map)
        finally:
            self.server.task_dispatcher.shutdown(timeout=5)


def bolt_route(bolt: Any) -> Callable[[bytes, dict[str, str], str], tuple[int, dict[str, str], bytes]]:
    """The same handler as `bot.serve.start`'s /slack/events route."""
    from adapters.slack.app import http_handler

    return http_handler(bolt)


@dataclass
class Bare:
    http: HttpServer
    pool: ThreadPoolExecutor

    def stop(self) -> None:
        self.http.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)


def start_bare(name: str, fake_base_url: str, write: Callable[[str, str], None] | None = None) -> Bare:
    """A bare slack-bolt app on the same stack: its /stage listener acks "ok", after `write(account,
    target)` when given (the command text is "move ACCOUNT TARGET")."""
    from bot.server import WsgiApp

    pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix=f"{name}-listener")
    bolt = bare_bolt_app(SECRET, "xoxb-bench", fake_base_url, pool)

    @bolt.command("/stage")
    def on_command(ack: Any, command: dict[str, Any]) -> None:
        if write is not None:
            _, account, target = command["text"].split()
            write(account, target)
        ack("ok")

    wsgi = WsgiApp()
    wsgi.route("POST", PATH, bolt_route(bolt))
    try:
        return Bare(HttpServer(name, wsgi), pool)
    except BaseException:
        pool.shutdown(wait=False)
        raise


class DurableWrite:
    """The durable transaction a stage move cannot do without, hand-written on stagebot's engine: look the
    account up by name, update its stage and version, insert the history row, the outbox row and the
    idempotency key; one transaction, committed (SQLite: BEGIN IMMEDIATE, WAL, synchronous=FULL, writers
    queued on an in-process lock as stagebot's `Database` does). No rules, no events, no reply to render."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import bindparam, text

        from lifecycle.db.models import UTCDateTime

        def sql(stmt: str) -> Any:
            return text(stmt).bindparams(bindparam("now", type_=UTCDateTime()))

        self.engine = engine
        self.lock: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        self.find = text("SELECT id, stage FROM accounts WHERE name_key = :k")
        self.update = sql(
            "UPDATE accounts SET stage = :to, stage_entered_at = :now, updated_at = :now, version = version + 1"
            " WHERE id = :id"
        )
        self.history = sql(
            "INSERT INTO stage_changes (account_id, from_stage, to_stage, kind, at, actor, via, reason)"
            " VALUES (:id, :frm, :to, 'advance', :now, :actor, 'slack', '')"
        )
        self.outbox = sql(
            "INSERT INTO outbox (event_id, target, account_id, kind, payload, created_at, available_at, status,"
            " attempts) VALUES (:ev, 'slack', :id, 'StageChanged', :payload, :now, :now, 'pending', 0)"
        )
        self.key = sql(
            "INSERT INTO processed_commands (key, command, account_id, outcome, processed_at)"
            " VALUES (:key, 'MoveStage', :id, :outcome, :now)"
        )

    def __call__(self, account: str, target: str) -> None:
        now = datetime.now(UTC)
        with self.lock, self.engine.begin() as conn:
            acc_id, frm = conn.execute(self.find, {"k": account.casefold()}).one()
            p = {"id": acc_id, "frm": frm, "to": target, "now": now}
            conn.execute(self.update, p)
            conn.execute(self.history, {**p, "actor": f"slack:{ADMIN_ID}"})
            payload = json.dumps({"account": account, "from": frm, "to": target, "at": now.isoformat()})
            conn.execute(self.outbox, {**p, "ev": str(uuid.uuid4()), "payload": payload})
            conn.execute(self.key, {**p, "key": uuid.uuid4().hex, "outcome": payload})


WRITE = (
    "the durable transaction of a move (account looked up by name, its stage updated, a history row, an outbox row"
    " and the idempotency key inserted; one commit) on stagebot's engine"
)

CONFIG = """\
[database]
url = "{db}"

[slack]
enabled = true
api_url = "{api}"

[scheduler]
enabled = false

[access]
admins = ["slack:{admin}"]
"""


def stagebot_settings(tmp: Path, db_url: str, env_db_url: str | None, api: str) -> Any:
    from bot.config import load_settings

    text = CONFIG.format(db=db_url, api=api, admin=ADMIN_ID)
    for team, channel in CHANNELS.items():
        text += f'\n[teams.{team}]\nslack_channel = "{channel}"\n'
    cfg = tmp / "stagebot.toml"
    cfg.write_text(text)
    env = {"SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET}
    if env_db_url:
        env["STAGEBOT_DATABASE_URL"] = env_db_url  # keeps a PostgreSQL password out of the file
    return load_settings(str(cfg), env)


def seed_accounts(settings: Any, accounts: int) -> None:
    """Accounts in P1 before the server starts, with no notification targets (no outbox backlog)."""
    from bot.bootstrap import build
    from lifecycle.domain.access import Actor
    from lifecycle.domain.commands import AddAccount

    app = build(settings, notifiers={})
    try:
        admin = Actor("slack", ADMIN_ID)
        for i in range(accounts):
            app.core.execute(AddAccount(actor=admin, key=uuid.uuid4().hex, name=account_name(i), stage=START))
    finally:
        app.close()


SHORT = {
    "stagebot bolt": "listeners",
    "outbox": "dispatcher",
    "waitress workers": "waitress",
    "waitress event": "loops",
}


class TxStats:
    """Engine listeners: transactions per thread group, and for write transactions the time spent in
    BEGIN (on SQLite, BEGIN IMMEDIATE: waiting for the write lock) and from BEGIN to COMMIT.

    Registered after `make_engine`'s own "begin" listener, so "begin" here fires once BEGIN returned;
    a unit of work connects and begins back to back, so connect -> begin is the time in BEGIN.
    """

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.seen: Counter[str] = Counter()
        self.waits: list[float] = []
        self.holds: list[float] = []
        self._local = threading.local()
        # Never removed: event.remove() while other threads begin transactions breaks SQLAlchemy's
        # listener iteration ("deque mutated during iteration"); the engine goes away with the app.
        for name, fn in (("engine_connect", self._connect), ("begin", self._begin), ("commit", self._commit)):
            event.listen(engine, name, fn)

    def _connect(self, conn: Any) -> None:
        self._local.connected = time.perf_counter()

    def _begin(self, conn: Any) -> None:
        now = time.perf_counter()
        ro = conn.get_execution_options().get("stagebot_readonly", False)
        self._local.begun = None if ro else now
        if self.on:
            group = thread_group(threading.current_thread().name)
            who = next((v for k, v in SHORT.items() if group.startswith(k)), "other")
            self.seen[f"{who} {'read' if ro else 'write'}"] += 1
            connected = getattr(self._local, "connected", None)
            if not ro and connected is not None:
                self.waits.append(now - connected)
        self._local.connected = None

    def _commit(self, conn: Any) -> None:  # fires when COMMIT is about to be sent
        begun = getattr(self._local, "begun", None)
        if self.on and begun is not None:
            self.holds.append(time.perf_counter() - begun)
        self._local.begun = None


# ---------------------------------------------------------------- phases and results


@dataclass
class Result:
    label: str
    detail: str
    lat_ns: list[int]
    wall_ns: int
    errors: int
    examples: list[str]
    cpu: Cpu
    client_cpu_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.lat_ns)

    def pct(self, q: float) -> float:
        return pct(self.lat_ns, q) / 1e6

    @property
    def cpu_per_req_ms(self) -> float:
        return self.cpu.process_s * 1e3 / max(self.n, 1)

    @property
    def max_ms(self) -> float:
        return max(self.lat_ns) / 1e6 if self.lat_ns else float("nan")

    @property
    def rps(self) -> float:
        return self.n / (self.wall_ns / 1e9) if self.wall_ns else 0.0


class Driver:
    """Runs phases in the load-generator process and keeps each app's per-client position."""

    def __init__(self, pool: ProcessPoolExecutor, args: argparse.Namespace, response_url: str) -> None:
        self.pool, self.args, self.response_url = pool, args, response_url

    @staticmethod
    def split(total: int) -> list[int]:
        return [total // CLIENTS + (1 if c < total % CLIENTS else 0) for c in range(CLIENTS)]

    def phase(self, kind: str, port: int, starts: list[int], total: int) -> tuple[dict[str, Any], list[int]]:
        counts = self.split(total)
        fut = self.pool.submit(
            drive, kind, port, self.response_url, counts, starts, self.args.accounts, self.args.phase_timeout
        )
        out = fut.result(timeout=self.args.phase_timeout + 120)
        return out, [s + c for s, c in zip(starts, counts, strict=True)]

    def measure(
        self, kind: str, label: str, detail: str, port: int, log: str, hook: Callable[[bool], None] = lambda on: None
    ) -> Result:
        """Warm-up, then the measured phase; `hook(True)` / `hook(False)` bracket the measured phase."""
        a = self.args
        starts = [0] * CLIENTS
        print(f"[{log}] warm-up: {a.warmup} requests ...", flush=True)
        warm, starts = self.phase(kind, port, starts, a.warmup)
        if warm["errors"]:
            print(f"[{log}] warm-up errors: {warm['errors']}, e.g. {warm['examples']}", flush=True)
        print(f"[{log}] measuring: {a.requests} requests, {CLIENTS} clients ...", flush=True)
        hook(True)
        QUEUE.reset()
        try:
            with cpu_meter() as cpu:
                out, _ = self.phase(kind, port, starts, a.requests)
        finally:
            hook(False)
        r = Result(label, detail, out["lat"], out["wall_ns"], out["errors"], out["examples"], cpu, out["client_cpu_s"])
        r.extra["warmup_errors"] = warm["errors"]
        r.extra["queue"] = (QUEUE.count, QUEUE.max)
        print(f"[{log}] {r.n} replies in {r.wall_ns / 1e9:.1f} s, {r.errors} errors", flush=True)
        return r


def outbox_status(running: Any) -> Counter[str]:
    from sqlalchemy import text

    with running.app.db.reader() as uow:
        rows = uow.conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all()
    return Counter({str(s): int(n) for s, n in rows})


def record_moves(r: Result, engine: Any, args: argparse.Namespace) -> Result:
    """The stage moves in the database, next to how many there should be (warm-up + measured, less errors)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        moves = conn.execute(text("SELECT count(*) FROM stage_changes WHERE kind <> 'create'")).scalar_one()
    r.extra["moves_recorded"] = int(moves)
    r.extra["moves_expected"] = args.warmup + args.requests - r.errors - r.extra["warmup_errors"]
    return r


def bench_write(label: str, detail: str, settings: Any, fake: Any, driver: Driver, args: argparse.Namespace) -> Result:
    """The bare app whose listener runs `DurableWrite` on stagebot's engine, over the same seeded accounts."""
    from lifecycle.db.engine import make_engine

    log = f"write {label.split()[-1].strip('()').lower()}"
    print(f"[{log}] creating {args.accounts} accounts in {START} ...", flush=True)
    seed_accounts(settings, args.accounts)
    engine = make_engine(settings.database_url)
    app = None
    try:
        app = start_bare("write", fake.base_url, DurableWrite(engine))
        r = driver.measure("write", label, detail, app.http.port, log)
        return record_moves(r, engine, args)
    finally:
        if app is not None:
            app.stop()
        engine.dispose()


def bench_stagebot(
    label: str, detail: str, settings: Any, fake: Any, driver: Driver, args: argparse.Namespace
) -> Result:

    from bot.serve import start

    log = label.split()[-1].strip("()").lower()
    print(f"[{log}] creating {args.accounts} accounts in {START} ...", flush=True)
    seed_accounts(settings, args.accounts)
    posted_before = len(fake.calls_to("chat.postMessage"))
    running = start(settings, workers=THREADS)
    http = None
    try:
        tx = TxStats(running.app.db.engine)
        http = HttpServer("stagebot", running.wsgi)
        at_start: dict[str, int] = {}

        def hook(on: bool) -> None:
            tx.on = on
            if on:
                at_start["posted"] = len(fake.calls_to("chat.postMessage"))

        r = driver.measure("stagebot", label, detail, http.port, log, hook)
        posted_end = len(fake.calls_to("chat.postMessage"))
        r.extra["tx"] = dict(tx.seen)
        r.extra["tx_wait"], r.extra["tx_hold"] = percentiles_ms(tx.waits), percentiles_ms(tx.holds)
        r.extra["posted_during"] = posted_end - at_start["posted"]

        # The outbox: what the dispatcher delivered, and what is still pending (1 msg/s per channel).
        http.stop()
        http = None
        t0 = time.monotonic()
        status = outbox_status(running)
        first_pending, first_posted = status.get("pending", 0), len(fake.calls_to("chat.postMessage"))
        print(f"[{log}] waiting up to {args.drain_wait:.0f} s for notifications ({first_pending} pending) ...")
        while time.monotonic() - t0 < args.drain_wait:
            time.sleep(1.0)
            status = outbox_status(running)
            pending = status.get("pending", 0)
            if pending == 0:
                break
            spent = time.monotonic() - t0
            rate = (len(fake.calls_to("chat.postMessage")) - first_posted) / spent
            if spent >= 5 and (rate <= 0 or pending / rate > 3 * args.drain_wait):
                break  # it would take minutes: report instead of waiting
        spent = time.monotonic() - t0
        calls = fake.calls_to("chat.postMessage")[posted_before:]
        posted = posted_before + len(calls)
        r.extra["channels_used"] = len({c.body.get("channel") for c in calls})
        r.extra.update(
            outbox=dict(status),
            posted_total=posted - posted_before,
            drain_s=spent,
            drain_rate=(posted - first_posted) / spent if spent else 0.0,
        )
        return record_moves(r, running.app.db.engine, args)
    finally:
        if http is not None:
            http.stop()
        running.stop()


# ---------------------------------------------------------------- PostgreSQL


@contextmanager
def pg_schema(url: str) -> Iterator[tuple[str, str]]:
    """A throwaway schema; yields (URL whose connections use it as search_path, description)."""
    from tests.pg import shown, throwaway_schema

    with throwaway_schema(url, "bench_slack_") as pg:
        f = pg.facts
        yield (
            pg.url,
            f"PostgreSQL {f['server_version']} at {shown(url)}, throwaway schema {pg.name}, "
            f"synchronous_commit={f['synchronous_commit']}",
        )


# ---------------------------------------------------------------- report


def report(bare: Result, pairs: list[tuple[Result, Result]], skipped: list[str], args: argparse.Namespace) -> None:
    """`pairs`: (bare + durable write, stagebot) on each engine."""
    from importlib.metadata import version

    writes, bots = [w for w, _ in pairs], [b for _, b in pairs]
    rows = [bare, *(r for pair in pairs for r in pair)]
    print()
    print("## Slash commands over HTTP: stagebot vs. a bare slack-bolt app, and vs. bolt + the durable write")
    print()
    print(
        f"{args.requests} signed `/stage move` slash commands per app at `POST {PATH}` after {args.warmup} warm-up, "
        f"{CLIENTS} closed-loop clients (one keep-alive `http.client` connection each), waitress {THREADS} threads, "
        f"bolt listener pool {THREADS}. Python {platform.python_version()}, slack-bolt {version('slack_bolt')}, "
        f"waitress {version('waitress')}, "
        f"SQLAlchemy {version('sqlalchemy')}. "
        f"**{CPUS} CPUs shared by the servers and the load generator** (a separate process)."
    )
    print()
    print(f"- bare: {bare.detail}")
    for r in rows[1:]:
        print(f"- {r.label}: {r.detail}")
    for why in skipped:
        print(f"- stagebot (PostgreSQL): skipped: {why}")
    print()
    print(
        "| app | replies | errors | p50 ms | p90 ms | p99 ms | max ms | req/s "
        "| server CPU ms/req | load-gen CPU ms/req | machine CPU busy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.label} | {r.n} | {r.errors} | {fmt_ms(r.pct(0.50))} | {fmt_ms(r.pct(0.90))} "
            f"| {fmt_ms(r.pct(0.99))} | {fmt_ms(r.max_ms)} | {r.rps:,.0f} "
            f"| {r.cpu_per_req_ms:.2f} | {r.client_cpu_s * 1e3 / max(r.n, 1):.2f} "
            f"| {r.cpu.machine_busy:.0%} of {CPUS} |"
        )
    print()
    for w, b in pairs:
        for r, floor in ((w, bare), (b, bare), (b, w)):
            print(
                f"- {r.label} / {floor.label}: p50 {ratio(r.pct(0.5), floor.pct(0.5)):.1f}x, "
                f"p99 {ratio(r.pct(0.99), floor.pct(0.99)):.1f}x, req/s {ratio(r.rps, floor.rps):.2f}x, "
                f"server CPU per request {ratio(r.cpu_per_req_ms, floor.cpu_per_req_ms):.1f}x"
            )
    print()
    print("Server-process CPU by thread group during the measured phase (seconds, share of the process):")
    print()
    for r in rows:
        parts = ", ".join(
            f"{g} {s:.2f} ({s / r.cpu.process_s:.0%})" for g, s in r.cpu.by_group.most_common() if s >= 0.005
        )
        print(f"- {r.label}: {r.cpu.process_s:.2f} s in {r.wall_ns / 1e9:.1f} s: {parts}")
    print()
    for r in rows:
        n, deepest = r.extra["queue"]
        print(
            f"- {r.label}: waitress logged 'Task queue depth' {n} times (requests waiting for a worker thread), "
            f"deepest {deepest}"
        )
    print()
    for r in writes:
        e = r.extra
        print(
            f"- {r.label}: stage moves recorded {e['moves_recorded']} (expected {e['moves_expected']}: "
            f"warm-up + measured, less errors)"
        )
        for ex in r.examples:
            print(f"- {r.label} error example: {ex}")
    print()
    for r in bots:
        e = r.extra
        out = e["outbox"]
        tx = ", ".join(f"{k} {v}" for k, v in sorted(e["tx"].items(), key=lambda kv: -kv[1]))
        print(f"{r.label}:")
        print()
        print(f"- database transactions begun during the measured phase: {tx}")
        begin = "BEGIN IMMEDIATE (waiting for SQLite's write lock)" if "SQLite" in r.label else "BEGIN"
        print(
            f"- write transactions, p50 / p90 / p99 / max ms: time in {begin} {e['tx_wait']}; "
            f"from BEGIN to COMMIT {e['tx_hold']}"
        )
        pending, delivered = out.get("pending", 0), out.get("delivered", 0)
        eta = f", about {pending / e['drain_rate']:.0f} s more to drain" if pending and e["drain_rate"] > 0 else ""
        print(
            f"- notifications (outbox target slack, {len(CHANNELS)} team channels, paced at 1 message/s each): "
            f"{e['posted_during']} chat.postMessage during the measured phase; {e['posted_total']} in all "
            f"(to {e['channels_used']} distinct channels), "
            f"{delivered} outbox rows delivered, {pending} pending"
            f"{', ' + str(out.get('dead', 0)) + ' dead' if out.get('dead') else ''} after waiting "
            f"{e['drain_s']:.0f} s ({e['drain_rate']:.1f} messages/s{eta})"
        )
        print(
            f"- stage moves recorded in the database: {e['moves_recorded']} "
            f"(expected {e['moves_expected']}: warm-up + measured, less errors)"
        )
        for ex in r.examples:
            why = " (bolt answers this when the listener has not acked within 3 s)" if "unhandled" in ex else ""
            print(f"- error example: {ex}{why}")
        print()
    for ex in bare.examples:
        print(f"- bare error example: {ex}")
    for w, r in pairs:
        within = r.pct(0.99) <= TARGET_RATIO * bare.pct(0.99)
        under = r.pct(0.99) < TARGET_P99_MS
        print(
            f"target: {r.label} p99 within {TARGET_RATIO}x of the bare app: "
            f"{verdict(within, 'MISS')} ({ratio(r.pct(0.99), bare.pct(0.99)):.1f}x); "
            f"p99 under {TARGET_P99_MS:.0f} ms: {verdict(under, 'MISS')} ({fmt_ms(r.pct(0.99))} ms); "
            f"against bare + durable write (no target): {ratio(r.pct(0.99), w.pct(0.99)):.1f}x"
        )


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per app (default 2000)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up requests per app (default requests/10)")
    ap.add_argument("--accounts", type=int, default=400, help="accounts created in P1 beforehand (default 400)")
    ap.add_argument("--pg-url", default="", help="also run stagebot on PostgreSQL (a throwaway schema) at this URL")
    ap.add_argument("--drain-wait", type=float, default=30.0, help="max seconds to wait for notifications (30)")
    ap.add_argument("--phase-timeout", type=float, default=90.0, help="max seconds of one phase (90)")
    ap.add_argument("--sqlite-dir", default=None, help="where the temp SQLite file goes (default: the temp dir)")
    args = ap.parse_args(argv)
    if args.requests < CLIENTS or args.accounts < CLIENTS:
        ap.error(f"--requests and --accounts must be >= {CLIENTS}")
    args.warmup = args.requests // 10 if args.warmup is None else args.warmup

    from tests.fakes.slack_api import FakeSlack

    queue_log = logging.getLogger("waitress.queue")  # counted and reported, not printed
    queue_log.addHandler(QUEUE)
    queue_log.propagate = False

    tmp = Path(tempfile.mkdtemp(prefix="stagebot-bench-slack-", dir=args.sqlite_dir))
    fake = FakeSlack()
    bare_app: Bare | None = None
    # The load generator: a separate process (its own GIL) running the client threads.
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        pool.submit(int).result(timeout=60)  # start it now, not during the first phase
        driver = Driver(pool, args, fake.response_url("cmd"))

        bare_app = start_bare("bare", fake.base_url)
        bare = driver.measure(
            "bare", "bare slack-bolt", "slack-bolt App, /stage listener acks 'ok'", bare_app.http.port, "bare"
        )
        bare_app.stop()
        bare_app = None

        def settings_in(name: str, db_url: str, env_db_url: str | None = None) -> Any:
            d = tmp / name
            d.mkdir()
            return stagebot_settings(d, db_url.format(dir=d), env_db_url, fake.base_url)

        def pair(
            engine: str, details: tuple[str, str], write_settings: Any, bot_settings: Any
        ) -> tuple[Result, Result]:
            """(bare + durable write, stagebot) on one engine; `details`: where each one's database is."""
            w_label, w_detail = (
                f"bare + durable write ({engine})",
                f"the bare app, its listener runs {WRITE}, {details[0]}",
            )
            detail = details[1]
            w = bench_write(w_label, w_detail, write_settings, fake, driver, args)
            b = bench_stagebot(f"stagebot ({engine})", f"`bot.serve.start`, {detail}", bot_settings, fake, driver, args)
            return w, b

        pairs: list[tuple[Result, Result]] = []
        skipped: list[str] = []
        sq = f"SQLite {sqlite3.sqlite_version} file in {tmp.parent} (WAL, synchronous=FULL)"
        sqlite_url = "sqlite:///{dir}/stagebot.db"
        pairs.append(
            pair("SQLite", (sq, sq), settings_in("write-sqlite", sqlite_url), settings_in("sqlite", sqlite_url))
        )
        if args.pg_url:
            schemas = ExitStack()
            try:
                (w_url, w_detail), (b_url, b_detail) = [schemas.enter_context(pg_schema(args.pg_url)) for _ in range(2)]
            except Exception as exc:  # no server, a bad URL, no rights: report it and keep the SQLite result
                schemas.close()
                why = str(exc).strip().splitlines()[0][:200]
                print(f"[postgresql] skipped: {why}", flush=True)
                skipped.append(why)
            else:
                with schemas:  # drops the schemas afterwards
                    unused = "sqlite:///unused.db"
                    w_settings, b_settings = settings_in("write-pg", unused, w_url), settings_in("pg", unused, b_url)
                    pairs.append(pair("PostgreSQL", (w_detail, b_detail), w_settings, b_settings))
        else:
            skipped.append("no --pg-url")
        report(bare, pairs, skipped, args)
    finally:
        if bare_app is not None:
            bare_app.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        fake.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
