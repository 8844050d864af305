"""Property-based HTTP fuzzing of a running `stagebot serve`: hostile requests over real HTTP (issue 19).

One `stagebot serve` subprocess serves all three POST endpoints at once: Slack in HTTP mode
(`/slack/events`), Feishu in webhook mode (`/feishu/events`) and the signals API (`/api/v1/signals`),
on SQLite, or on a private PostgreSQL schema when STAGEBOT_TEST_DATABASE_URL is set (PostgreSQL is the
one that refuses NUL bytes and over-long strings). It logs JSON lines (STAGEBOT_LOG_FORMAT=json).
Hypothesis generates two kinds of request:

* validly signed, encrypted or authorised requests with hostile content (NULs, 5,000-character
  strings, unicode, lone surrogates, wrong types, missing fields, huge numbers, extreme dates);
* requests that are not valid (forged or missing signatures, stale timestamps, wrong tokens and
  keys, garbage bodies, wrong content types), each carrying a real command.

The properties, checked after every request:

* no response is a 5xx (a hang or a dropped connection fails too);
* every line the server writes (stderr and stdout) is a JSON object without a traceback (no `exc`,
  no "Traceback" text): a traceback is a bug that a client could trigger;
* a URL-verification challenge answered 200 is echoed back as valid JSON;
* an invalid request gets a 4xx, and the invalid batch as a whole applies nothing: the database's
  rows (read directly, read-only) are the same before and after, and the fakes of Slack and Feishu
  never hear of the commands the forged requests carried.

Sizes: STAGEBOT_FUZZ_EXAMPLES examples per test (default 100, derandomized, so every CI run sends the
same requests; about 400 requests in all); e.g. STAGEBOT_FUZZ_EXAMPLES=1000 for a long run. A failing
example is reported as found, not shrunk (shrinking re-sends hundreds of requests): set
STAGEBOT_FUZZ_SHRINK=1 for a minimal one. Each test stops at its first failure, as Hypothesis does;
the last test stops the server with SIGTERM, checks its whole log once more (every distinct bad line,
with the request it was logged for) and prints, and records as the junit test-suite property
`fuzz_requests_sent`, how many requests were sent.
"""

from __future__ import annotations

import collections
import http.client
import io
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import sqlalchemy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from bot.cli import main
from tests.adapters.feishu.conftest import ENCRYPT_KEY, VERIFICATION_TOKEN, feishu_env
from tests.e2e.test_serve_slack import REPO, STOP_TIMEOUT, Reply, port_from_log, stop, wait_healthy
from tests.fakes.feishu_api import FakeFeishu
from tests.fakes.feishu_requests import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    card_action,
    encrypt,
    envelope,
    sign,
    text_message,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, JSON, SECRET, block_action, signed_headers, slash_command
from tests.pg import PgSchema

pytestmark = pytest.mark.slow  # starts `stagebot serve` as a subprocess and sends hundreds of requests

EXAMPLES = int(os.environ.get("STAGEBOT_FUZZ_EXAMPLES", "100"))
PG_URL = os.environ.get("STAGEBOT_TEST_DATABASE_URL", "")
TOKEN = "fuzz-api-token-" + uuid.uuid4().hex
BOT_OPEN_ID = "ou_stagebot"
REQUEST_TIMEOUT = 15.0  # a request still unanswered after this is a hang: a failure like a 5xx
SETTLE_TIMEOUT = 15.0
CONTINUED = re.compile(r"\s|Traceback|During handling|The above exception|[A-Za-z_][\w.]*(Error|Exception)\b")
NUMBERS = re.compile(r"[0-9a-f]{8,}|\d+")  # ids and counts, left out when grouping log problems

# Shrinking a failure re-sends hundreds of requests (minutes); CI reports the failing example as found.
SHRINK = os.environ.get("STAGEBOT_FUZZ_SHRINK", "") not in ("", "0")
FUZZ = settings(
    max_examples=EXAMPLES,
    phases=[p for p in Phase if SHRINK or p not in (Phase.shrink, Phase.explain)],
    derandomize=True,  # the same requests on every run: CI failures are reproducible
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

SLACK, FEISHU, SIGNALS = "/slack/events", "/feishu/events", "/api/v1/signals"

CONFIG = """\
[database]
url = "{db}"

[server]
host = "127.0.0.1"
port = 0

[slack]
enabled = true
api_url = "{slack_api}"

[feishu]
enabled = true
mode = "webhook"
domain = "{feishu_api}"

[scheduler]
enabled = false

[access]
admins = ["slack:U0ADMIN", "feishu:ou_admin"]

[teams.marketing]
slack_channel = "C0MARKETING"
feishu_chat = "oc_marketing"
members = ["slack:U0MARY", "feishu:ou_mary"]

[teams.sales]
slack_channel = "C0SALES"
feishu_chat = "oc_sales"
members = ["slack:U0ALICE", "feishu:ou_alice"]
approvers = ["slack:U0BOSS", "feishu:ou_boss"]

[teams.cs]
slack_channel = "C0CS"
feishu_chat = "oc_cs"
members = ["slack:U0CAROL", "feishu:ou_carol"]

[teams.support]
slack_channel = "C0SUPPORT"
feishu_chat = "oc_support"
members = ["slack:U0DAVE", "feishu:ou_dave"]
"""

# Accounts to aim at (made with the console before the server starts), and a pending approval (#1).
SEED = """\
add Acme --stage P2 --external-id ext-acme --amount 50k
add Beta --stage P1
add "Gamma Co" --stage PQL
add Delta --stage P0 --external-id ext-delta
move Gamma P0 fuzz seed
"""

# Tables whose rows are the bot's state. Left out: outbox status (the dispatcher keeps delivering),
# posted_messages and pace (both written by deliveries, never by a request).
STATE_TABLES = (
    "accounts",
    "stage_changes",
    "approvals",
    "checklist_ticks",
    "renewals",
    "handoffs",
    "tasks",
    "signals",
    "rotations",
    "processed_commands",
    "emissions",
)


# ==================================================================================== the server


@dataclass
class Sent:
    """A request sent, kept so a log problem found later can be traced back to it."""

    endpoint: str
    what: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    answer: str = ""

    def show(self) -> str:
        body = self.body if len(self.body) <= 600 else self.body[:600] + b"...(%d bytes)" % len(self.body)
        return (
            f"POST {self.endpoint} [{self.what}] -> {self.status} {self.answer[:200]!r}\n"
            f"  headers: {self.headers}\n  body: {body!r}"
        )


@dataclass
class LogProblem:
    stream: str
    why: str
    line: str
    cid: str | None  # the correlation id on the line, if it is JSON and has one

    def show(self) -> str:
        line = self.line if len(self.line) <= 1500 else self.line[:1500] + "..."
        return f"{self.stream}: {self.why}: {line}"

    def kind(self) -> str:
        """What tells one bug from another: the logger and message (numbers and ids left out), and for a
        traceback the exception's class and the innermost frames it went through, ours and anyone's."""
        try:
            rec = json.loads(self.line)
        except ValueError:
            first, _, rest = self.line.partition("\n")
            return f"{self.stream}|{self.why}|{NUMBERS.sub('#', first[:70])}|{traceback_kind(rest)}"
        msg = NUMBERS.sub("#", str(rec.get("message"))[:50])
        return f"{self.stream}|{self.why}|{rec.get('logger')}|{msg}|{traceback_kind(str(rec.get('exc') or ''))}"


FRAME = re.compile(r'File "([^"]+)", line (\d+)')
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Invalid\w*|Warning|Exit))(?::|$)(?: \(([\w.]+)\))?", re.M)


def traceback_kind(text: str) -> str:
    """A traceback as `ExceptionClass (wrapped class) @ innermost frame of ours / innermost frame`."""
    if not text.strip():
        return ""
    frames = [
        f"{Path(f).name}:{n}" if "site-packages" in f or "/lib/python" in f else f"{f}:{n}"
        for f, n in FRAME.findall(text)
    ]
    ours = [f for f in frames if f.startswith(str(REPO))]
    excs = EXCEPTION.findall(text)
    exc = f"{excs[-1][0]}" + (f" ({excs[-1][1]})" if excs and excs[-1][1] else "") if excs else "?"
    where = (ours[-1].removeprefix(str(REPO) + "/") if ours else "-") + " / " + (frames[-1] if frames else "-")
    return f"{exc} @ {where}"


def line_problem(line: str) -> tuple[str | None, str | None]:
    """(why the line is a problem or None, its correlation id)."""
    try:
        rec = json.loads(line)
    except ValueError:
        return "not JSON", None
    if not isinstance(rec, dict):
        return "not a JSON object", None
    cid = rec.get("correlation_id")
    cid = cid if isinstance(cid, str) else None
    for key in ("exc", "exc_info", "traceback", "stack", "stack_info"):
        if rec.get(key):
            return f"has a traceback ({key})", cid
    if "Traceback" in line:
        return "mentions a Traceback", cid
    return None, cid


class LogWatch:
    """Reads what the server wrote to a file since the last look, whole lines only."""

    def __init__(self, path: Path, stream: str) -> None:
        self.path, self.stream, self.offset = path, stream, 0

    def new_problems(self) -> list[LogProblem]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        out: list[LogProblem] = []
        block = False  # the line before was not JSON: a traceback printed after it goes on
        for raw in data[:end].splitlines():
            if not raw.strip():
                continue
            line = raw.decode("utf-8", "replace")
            why, cid = line_problem(line)
            if why == "not JSON" and block and CONTINUED.match(line):
                out[-1].line += "\n" + line
                continue
            block = why == "not JSON"
            if why is None and line != raw.decode("utf-8", "surrogateescape"):
                why = "not UTF-8"
            if why:
                out.append(LogProblem(self.stream, why, line, cid))
        return out

    def all_problems(self) -> list[LogProblem]:
        self.offset = 0
        problems = self.new_problems()
        rest = self.path.read_bytes()[self.offset :]
        if rest.strip():  # a last line without its newline
            why, cid = line_problem(rest.decode("utf-8", "replace"))
            if why:
                problems.append(LogProblem(self.stream, why, rest.decode("utf-8", "replace"), cid))
        return problems


@dataclass
class FuzzServer:
    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    stdout_path: Path
    slack: FakeSlack
    feishu: FakeFeishu
    app_id: str
    state: Engine
    sent: dict[str, Sent] = field(default_factory=dict)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.logs = [LogWatch(self.stderr_path, "stderr"), LogWatch(self.stdout_path, "stdout")]

    def stderr(self) -> str:  # for wait_healthy
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, Any] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            started = time.monotonic()
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read().decode("utf-8", errors="replace")
            return Reply(resp.status, data, time.monotonic() - started)
        finally:
            conn.close()

    def send(self, endpoint: str, body: bytes, headers: dict[str, Any], what: str) -> tuple[str, Reply]:
        rid = f"fz-{next(self.ids):06d}"
        sent = Sent(endpoint, what, body, {k: _shown(v) for k, v in headers.items()})
        self.sent[rid] = sent
        self.counts[endpoint] += 1
        try:
            wire = {k: _header_value(v) for k, v in headers.items()}
            reply = self.request("POST", endpoint, body, {**wire, "X-Request-Id": rid})
        except (OSError, http.client.HTTPException) as exc:
            pytest.fail(f"no answer ({exc!r}) to {rid}:\n{sent.show()}")
        sent.status, sent.answer = reply.status, reply.body
        return rid, reply

    def quiet(self, quiet_for: float = 0.03, at_most: float = 1.0) -> None:
        """Wait until the server has written nothing for `quiet_for` seconds: what a request does after its
        answer (a reply, a followup to a response_url) is logged by then, and checked with the request."""
        deadline = time.monotonic() + at_most
        sizes = [w.path.stat().st_size for w in self.logs]
        while time.monotonic() < deadline:
            time.sleep(quiet_for)
            now = [w.path.stat().st_size for w in self.logs]
            if now == sizes:
                return
            sizes = now

    def log_problems(self) -> list[tuple[LogProblem, Sent | None]]:
        """The bad lines written since the last look, each with the request it was logged for, if known."""
        return [(p, self.sent.get(p.cid or "")) for w in self.logs for p in w.new_problems()]


def _header_value(v: Any) -> Any:
    """http.client sends str header values as Latin-1; anything else goes as UTF-8 bytes."""
    if isinstance(v, str):
        try:
            v.encode("latin-1")
        except UnicodeEncodeError:
            return v.encode("utf-8")
    return v


def _shown(v: Any) -> str:
    s = v.decode("latin-1") if isinstance(v, bytes) else str(v)
    return s if len(s) <= 200 else s[:200] + f"...({len(s)} chars)"


def seed(cfg: Path) -> None:
    """The SEED accounts, made with the console (the same config without the platforms, whose secrets
    only the server's environment has)."""
    text = cfg.read_text()
    console = cfg.with_name("console.toml")
    console.write_text(re.sub(r"\[(slack|feishu)\]\n(?:[^\[\n][^\n]*\n)*\n?", "", text))
    out = io.StringIO()
    assert main(["console", "--config", str(console)], stdin=io.StringIO(SEED), stdout=out) == 0, out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    tmp = tmp_path_factory.mktemp("fuzz_http")
    schema = PgSchema(PG_URL, prefix="fuzz_") if PG_URL else None
    db_url = schema.url if schema else f"sqlite:///{tmp / 'stagebot.db'}"
    app_id = f"cli_{uuid.uuid4().hex[:12]}"
    with FakeSlack() as slack, FakeFeishu(bot_open_id=BOT_OPEN_ID) as feishu:
        cfg = tmp / "stagebot.toml"
        cfg.write_text(CONFIG.format(db=db_url, slack_api=slack.base_url, feishu_api=feishu.url))
        seed(cfg)
        if schema:
            state = schema.engine
        else:  # read-only: the test never writes to the server's database
            state = sqlalchemy.create_engine(f"sqlite:///file:{tmp / 'stagebot.db'}?mode=ro&uri=true")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": "xoxb-fuzz",
            "SLACK_SIGNING_SECRET": SECRET,
            **feishu_env(app_id),
            "STAGEBOT_API_TOKEN": TOKEN,
            "STAGEBOT_LOG_FORMAT": "json",
            "STAGEBOT_LOG_LEVEL": "info",  # more of the logging code runs on hostile input
        }
        out, err = tmp / "serve.stdout", tmp / "serve.stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--config", str(cfg)],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        try:
            srv = FuzzServer(proc, port_from_log(err, proc), err, out, slack, feishu, app_id, state)
            wait_healthy(srv)  # type: ignore[arg-type]  # duck-typed: proc, port, stderr
            yield srv
        finally:
            stop(proc)
            state.dispose()
            if schema:
                schema.drop()


# ==================================================================================== the properties


def check(server: FuzzServer, rid: str, reply: Reply, *, refused: bool = False, after: bool = True) -> None:
    """The properties of one request, and of the log lines written since the last look (once the server
    has gone quiet, when the request may start work `after` its answer: replies, followups).

    A bad line logged for an earlier request (a reply or report that finished late) does not fail
    this one: it is kept for the last test, which reports it with the request it was logged for."""
    sent = server.sent[rid]
    if after:
        server.quiet()
    problems = server.log_problems()  # read first, so this request's lines are never left to the next
    assert reply.status < 500, f"{reply.status} {reply.body[:500]!r} for:\n{sent.show()}"
    if refused:
        assert 400 <= reply.status < 500, f"an invalid request got {reply.status} {reply.body[:300]!r}:\n{sent.show()}"
    mine = [p for p, origin in problems if origin is None or origin is sent]
    if mine:
        lines = "\n".join(p.show() for p in mine)
        pytest.fail(f"the server logged {len(mine)} bad line(s) for:\n{sent.show()}\n{lines}")


def check_challenge(reply: Reply, challenge: Any, rid: str, server: FuzzServer) -> None:
    """A URL-verification request answered 200 gets its challenge back, in valid JSON."""
    if reply.status != 200 or not isinstance(challenge, str):
        return
    try:
        got = json.loads(reply.body)
    except ValueError:
        pytest.fail(f"the challenge came back as invalid JSON {reply.body[:300]!r} for:\n{server.sent[rid].show()}")
    assert isinstance(got, dict) and got.get("challenge") == challenge, (got, server.sent[rid].show())


def state(engine: Engine) -> dict[str, Any]:
    """Every row of the state tables, and which outbox rows exist (not their delivery status)."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for name in STATE_TABLES:
            rows = conn.execute(sqlalchemy.text(f"SELECT * FROM {name}")).all()
            out[name] = sorted(repr(tuple(r)) for r in rows)
        outbox = conn.execute(sqlalchemy.text("SELECT id, event_id, target, kind FROM outbox")).all()
        out["outbox"] = sorted(repr(tuple(r)) for r in outbox)
    return out


def settled(engine: Engine) -> dict[str, Any]:
    """The state once it has stopped changing (replies and reports of earlier requests finish in the
    background) for half a second."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = state(engine)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = state(engine)
        if now == last:
            return now
        last = now
    pytest.fail(f"the database kept changing for {SETTLE_TIMEOUT}s with no requests coming in")


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"added": sorted(set(after[k]) - set(before[k]))[:5], "removed": sorted(set(before[k]) - set(after[k]))[:5]}
        for k in before
        if before[k] != after[k]
    }


# ==================================================================================== hostile values

SAFE_CHARS = st.characters(codec="utf-8")  # any code point but the surrogates (a form body is UTF-8)
# fmt: off
NASTY = [
    "", " ", "\x00", "a\x00b", "\x00" * 64, "x" * 5000, "é" * 2500, "🙂" * 1300, "中" * 3000, "a" * 65, "a" * 129,
    "a" * 201, "\u202eevil", "“Acme”", "‘Acme’", '"', "'", "\\", "\t\n\r\x0b\x0c", "\x1b[31m",
    "\x7f\u0085\u2028\u2029", "\ufeff", "\u200b", "\uffff", "%00", "%s%s%n", "{}", "[]", "null", "<@U0ALICE>",
    "<!channel>", "&lt;&amp;&gt;", "</script><script>alert(1)</script>", "ＡＣＭＥ", "ǅ İ ß", "-1", "0", "9" * 400,
    "18446744073709551616", "9223372036854775808", "1e309", "NaN", "Infinity", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00", "Acme", "acme", "#1", "#9223372036854775808", "P2", "ext-acme",
]
# fmt: on
SURROGATES = ["\ud800", "a\udfffb", "\udc80" * 10]  # valid in JSON (escaped), not encodable as UTF-8
REPEATED = st.builds(
    lambda c, n: c * n, st.sampled_from(["x", "é", "\x00", "🙂", " ", "“", "中", "9", "%"]), st.integers(0, 6000)
)
nasty = st.sampled_from(NASTY)
form_str = st.one_of(
    nasty,
    st.text(SAFE_CHARS, max_size=40),
    st.builds(lambda a, b: a + b, nasty, st.text(SAFE_CHARS, max_size=20)),
    REPEATED,
)
json_str = st.one_of(form_str, st.sampled_from(SURROGATES), st.text(max_size=20))
HUGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**19 - 1, 10**30, 10**4000]
json_scalar = st.one_of(
    json_str,
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(),  # NaN and ±Infinity too: Python's JSON reads them
    st.booleans(),
    st.none(),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
# Number literals Python's json turns into a ValueError, an inf or a float that is no longer the number.
RAW_NUMBERS = ["1" + "0" * 5000, "1e999999", "-1e999999", "99999999999999.995", "1e-400", "0." + "0" * 500 + "1"]
DEEP = ["[" * 100_000 + "]" * 100_000, '{"a":' * 20_000 + "1" + "}" * 20_000]


def dumps(value: Any) -> str:
    """JSON as any client could write it: ASCII, lone surrogates escaped, NaN and Infinity allowed."""
    return json.dumps(value)


class Raw:
    """A literal put into a JSON document as is (a number Python could not write, a duplicate key)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


def dumps_raw(value: Any) -> str:
    """`dumps`, with every `Raw` inside put in literally."""
    raws: dict[str, str] = {}

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            mark = f"@@raw{len(raws)}@@"
            raws[mark] = v.text
            return mark
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = dumps(swap(value))
    for mark, literal in raws.items():
        text = text.replace(json.dumps(mark), literal)
    return text


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 4) -> st.SearchStrategy[Any]:
    """`usual`, but about one time in `one_in` `odd`: a request stays close enough to a real one to get
    past the first checks, with a field or two hostile, instead of failing on the first of many."""
    return st.integers(1, one_in).flatmap(lambda i: odd if i == 1 else usual)


def now_and_then(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.integers(1, one_in)) == 1


raw_number = st.sampled_from(RAW_NUMBERS).map(Raw)
hostile = mostly(json_value, raw_number, 8)  # any JSON in a field, now and then a literal no library writes
odd_str = mostly(json_str, hostile, 3)  # a field meant to be a string: mostly a (hostile) string
unique = st.uuids().map(lambda u: u.hex)
# Ids, keys and user ids: what databases and URLs refuse (longer than any column, NUL, a lone surrogate),
# types that are no id, and any other hostile string. Form fields are always strings, and UTF-8.
FORM_IDS = ["x" * 5000, "a" * 201, "é" * 150, "a\x00b", "\x00", "", " ", "1.2\n3", "../../x", "%00"]
form_id = st.one_of(st.sampled_from(FORM_IDS), REPEATED, form_str)
odd_id = st.one_of(st.sampled_from([*FORM_IDS, "\ud800", "a\udfffb", 0, -1, 2**63, None, ["x"], {"id": 1}]), odd_str)


def maybe_drop(draw: st.DrawFn, doc: dict[str, Any], keys: list[str], one_in: int = 4) -> None:
    """Now and then, one or two of `keys` left out."""
    if now_and_then(draw, one_in):
        for k in draw(st.sets(st.sampled_from(keys), min_size=1, max_size=2)):
            doc.pop(k, None)


# ==================================================================================== 1. Slack

SLACK_USERS = ["U0ADMIN", "U0ALICE", "U0BOSS", "U0MARY", "U0CAROL", "U0DAVE", "U0NOBODY"]
VERBS = [
    "",
    "add ",
    "add Fz-",
    "show ",
    "move Acme ",
    "move Beta P2 ",
    "move ",
    "list ",
    "check Acme ",
    "history ",
    "help ",
    "report ",
    "approve ",
    "reject 1 ",
    "assign Acme ",
    "renew Acme --amount ",
    "renew Acme --amount 10k --until ",
    "add Fz --amount ",
    "add Fz --contract-end ",
    "add Fz --external-id ",
    "churn ",
    "tasks ",
    "claim ",
    "snooze Acme ",
]
# Commands that change something when they work, so the hostile fields around them (who, which
# delivery, where to answer) reach the database: a unique name per add.
WRITES = st.one_of(
    st.builds(lambda u: f"add Fz{u[:12]} --stage MQL", unique),
    st.builds(lambda u: f'add "Fz {u[:8]}" --amount 5k --external-id x{u[:10]}', unique),
    st.sampled_from(["move Beta P2 fuzzed", "move Beta P1", "check Acme 1", "check Delta 1", "assign Acme @alice"]),
    st.sampled_from(["approve 1 ok", "reject 1 no", "churn Delta lost", "winback Delta back", "list", "show Acme"]),
)
commands = mostly(st.builds(lambda verb, s: verb + s, st.sampled_from(VERBS), form_str), WRITES, 2)
SLASH_FIELDS = ["user_id", "trigger_id", "response_url", "channel_id", "team_id", "user_name", "command", "text"]
# The fields a command's idempotency key and actor are made of come up more often.
HOSTILE_FIELDS = ["trigger_id", "trigger_id", "response_url", "user_id", *SLASH_FIELDS]
ACTION_IDS = ["stagebot:approve", "stagebot:reject", "stagebot:claim", "stagebot:show", "stagebot:done"]
OPS = ["approve", "reject", "claim", "show", "done", "snooze", "bogus"]
ID_FIELDS = ["approval", "handoff", "account", "task", "days"]
id_like = st.one_of(
    st.sampled_from([1, 2, 3, 0, -1, "1", "01", " 1", "1 ", "١", "²", True]),
    st.sampled_from(HUGE_INTS),
    st.sampled_from(["9223372036854775807", "9223372036854775808", "9999999999999999999", "1" * 20]),
    hostile,
)
button_value_dicts = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, "1", 1.0, 2, None]), "op": st.sampled_from(OPS) | json_value},
    optional={k: id_like for k in ID_FIELDS},
)
button_values = st.one_of(
    button_value_dicts.map(dumps_raw),  # a string, as Slack carries it
    form_str,  # not JSON at all
    st.sampled_from(
        [
            '{"v":1,"op":"approve","approval":1,"approval":"x"}',
            '{"v":1,"op":"approve","op":"claim","handoff":1}',
            '{"v":1,"op":"show","account":1' + "0" * 5000 + "}",
            '{"v":1e999,"op":"show","account":1}',
            '{"v":1,"op":"snooze","account":1,"days":99999999999999999999}',
            '{"v":1,"op":"snooze","account":1,"days":9999999999999999999}',
            '{"v":1,"op":"done","task":NaN}',
            *DEEP,
        ]
    ),
    json_value,  # not even a string
    button_value_dicts,
)


def response_urls(slack: FakeSlack) -> st.SearchStrategy[Any]:
    """Response URLs the server may call: the fake's (any path), or junk that is no URL at all. Never
    another host: everything stays on loopback."""
    return st.one_of(
        st.builds(lambda name: slack.response_url(f"fz-{name}"), unique),
        st.builds(lambda s: slack.response_url("fz-") + s, form_str),
        form_str.filter(lambda s: "://" not in s and not s.startswith("//")),
    )


@st.composite
def slash_commands(draw: st.DrawFn, slack: FakeSlack) -> tuple[str, bytes, str]:
    text = draw(commands)
    user = draw(st.sampled_from(SLACK_USERS))
    base = slash_command(text, user=user, response_url=slack.response_url(f"fz-{uuid.uuid4().hex}"))
    fields: dict[str, Any] = dict(parse_qsl(base, keep_blank_values=True))
    if now_and_then(draw, 2):
        for name in draw(st.sets(st.sampled_from(HOSTILE_FIELDS), min_size=1, max_size=2)):
            fields[name] = draw(response_urls(slack) if name == "response_url" else form_id)
    maybe_drop(draw, fields, SLASH_FIELDS, 6)
    pairs = list(fields.items())
    if now_and_then(draw, 6) and pairs:  # a field given twice
        k, _ = draw(st.sampled_from(pairs))
        pairs.append((k, draw(form_str)))
    return "slash command", urlencode(pairs).encode(), FORM


@st.composite
def block_actions(draw: st.DrawFn, slack: FakeSlack) -> tuple[str, bytes, str]:
    user = draw(st.sampled_from(SLACK_USERS))
    base = block_action(user=user, action_id="stagebot:approve", value="", response_url=slack.response_url("x"))
    payload = json.loads(dict(parse_qsl(base))["payload"])
    action = payload["actions"][0]
    action["action_id"] = draw(mostly(st.sampled_from(ACTION_IDS), st.builds(lambda s: "stagebot:" + s, form_str)))
    action["value"] = draw(button_values)
    if now_and_then(draw, 3):
        action["action_ts"] = draw(odd_id)
    if now_and_then(draw, 3):
        payload["user"]["id"] = draw(odd_id)
    payload["response_url"] = draw(response_urls(slack))
    if now_and_then(draw, 4):
        payload["container"] = {"type": "view", "view_id": "V0HOME"}
        payload["view"] = {"id": "V0HOME", "type": draw(st.sampled_from(["home", "modal"]) | json_value)}
        payload.pop("response_url")
    if now_and_then(draw, 6):
        payload["type"] = draw(st.sampled_from(["view_submission", "shortcut", "message_action"]) | json_value)
    if now_and_then(draw, 6):
        payload["actions"] = draw(st.sampled_from([[], [action, action]]) | json_value)
    maybe_drop(draw, payload, ["user", "actions", "container", "channel", "message", "team", "trigger_id"], 6)
    if now_and_then(draw, 10):
        payload = draw(json_value)
    pairs = [("payload", dumps_raw(payload))]
    if now_and_then(draw, 10):
        pairs.append(("payload", draw(form_str)))
    return "block_actions", urlencode(pairs).encode(), FORM


EVENT_TYPES = [
    "app_home_opened",
    "message",
    "app_mention",
    "member_joined_channel",
    "tokens_revoked",
    "app_uninstalled",
]


@st.composite
def event_callbacks(draw: st.DrawFn) -> tuple[str, bytes, str]:
    event: dict[str, Any] = {
        "type": draw(
            mostly(st.just("app_home_opened"), st.sampled_from([*EVENT_TYPES, ["app_home_opened"]]) | hostile, 3)
        ),
        "user": draw(mostly(st.sampled_from(SLACK_USERS), odd_id)),
        "channel": draw(mostly(st.just("D0ADMIN"), odd_str)),
        "tab": draw(mostly(st.sampled_from(["home", "home", "messages", None]), odd_str)),
        "event_ts": draw(mostly(st.just("1.0"), odd_str)),
    }
    maybe_drop(draw, event, list(event), 6)
    outer: dict[str, Any] = {
        "token": "legacy",
        "team_id": draw(mostly(st.just("T0TEAM"), odd_str, 6)),
        "api_app_id": "A0APP",
        "event": event if not now_and_then(draw, 10) else draw(json_value),
        "type": draw(mostly(st.just("event_callback"), st.sampled_from(["app_rate_limited", ["event_callback"]]), 8)),
        "event_id": draw(mostly(st.builds(lambda u: f"Ev{u[:10].upper()}", unique), odd_id, 3)),
        "event_time": draw(mostly(st.integers(0, 2**31), hostile, 6)),
        "authorizations": draw(
            mostly(st.just([{"team_id": "T0TEAM", "user_id": "UBOT", "is_bot": True}]), json_value, 8)
        ),
    }
    maybe_drop(draw, outer, list(outer), 8)
    return "event_callback", dumps_raw(outer).encode(), JSON


# What a JSON answer must escape, and what it cannot hold, most of the time; any JSON now and then.
challenges = mostly(st.sampled_from(['"', "\\", 'a"}', "\x00", "\n", "</script>", "\u2028"]) | json_str, hostile, 4)


@st.composite
def slack_challenges(draw: st.DrawFn) -> tuple[str, bytes, str]:
    body = {"token": "legacy", "challenge": draw(challenges), "type": "url_verification"}
    return "url_verification", dumps_raw(body).encode(), JSON


@st.composite
def slack_oddities(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """Signed, but odd as a whole: ssl_check, raw garbage, huge or deep JSON, a content type that lies."""
    body = draw(
        st.sampled_from(
            ["ssl_check=1&token=legacy", "payload=", "payload=%7B", "{}", "[]", "null", '"x"', "", *DEEP]
            + ['{"type":"event_callback","event_id":' + n + "}" for n in RAW_NUMBERS]
        )
        | form_str
    )
    ctype = draw(st.sampled_from([FORM, JSON, "text/plain", "multipart/form-data; boundary=x", "", FORM + "; x=y"]))
    return "odd body", body.encode(), ctype


def challenge_in(body: bytes) -> Any:
    try:
        return json.loads(body).get("challenge")
    except ValueError:  # a literal Python will not read: no challenge to compare
        return None


def test_signed_slack_requests_with_hostile_content(server: FuzzServer) -> None:
    requests = st.one_of(
        slash_commands(server.slack),
        block_actions(server.slack),
        event_callbacks(),
        slack_challenges(),
        slack_oddities(),
    )

    @FUZZ
    @given(request=requests, content_type=st.sampled_from([*[None] * 8, "swap", "charset"]))
    def slack(request: tuple[str, bytes, str], content_type: str | None) -> None:
        what, body, ctype = request
        if content_type == "swap":
            ctype = JSON if ctype == FORM else FORM
        elif content_type == "charset":
            ctype += "; charset=utf-8"
        # Signed over the exact bytes sent (signed_headers takes text; the body is UTF-8 or ASCII).
        headers = signed_headers(body.decode("utf-8"), content_type=ctype)
        rid, reply = server.send(SLACK, body, headers, what)
        check(server, rid, reply)
        if what == "url_verification":
            check_challenge(reply, challenge_in(body), rid, server)

    slack()


# ==================================================================================== 2. Feishu

FEISHU_USERS = ["ou_admin", "ou_alice", "ou_boss", "ou_mary", "ou_nobody"]
FEISHU_TYPES = [
    "im.message.receive_v1",
    "card.action.trigger",
    "im.chat.member.bot.added_v1",
    "im.chat.member.bot.deleted_v1",
    "im.message.message_read_v1",
    "im.message.recalled_v1",
    "im.chat.access_event.bot_p2p_chat_entered_v1",
    "application.bot.menu_v6",
    "im.chat.updated_v1",
]
text_content = mostly(st.builds(lambda verb, s: verb + s, st.sampled_from(VERBS), json_str), WRITES, 2)
contents = st.one_of(
    text_content.map(lambda t: dumps({"text": t})),
    text_content.map(lambda t: dumps({"text": t})),
    text_content.map(lambda t: dumps({"text": t})),
    text_content.map(lambda t: dumps({"text": "@_user_1 " + t})),
    json_str,  # not JSON
    json_value.map(dumps),  # JSON of any type
    hostile.map(lambda v: dumps_raw({"text": v})),  # text of the wrong type
    st.fixed_dictionaries({}, optional={"title": hostile, "content": json_value}).map(dumps_raw),  # a post
    json_value,  # not even a string
)
mention_lists = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.just([{"key": "@_user_1", "id": {"open_id": BOT_OPEN_ID}, "name": "stagebot", "tenant_key": "t1"}]),
    st.lists(st.fixed_dictionaries({}, optional={"key": json_str, "id": json_value, "name": hostile}), max_size=2),
    json_value,
)


@st.composite
def feishu_messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    event = text_message(
        "x",
        open_id=draw(st.sampled_from(FEISHU_USERS)),
        chat_id=draw(st.sampled_from(["oc_dm", "oc_sales"])),
        chat_type=draw(st.sampled_from(["p2p", "group"])),
        message_id=f"om_{uuid.uuid4().hex[:24]}",
    )
    msg, sender = event["message"], event["sender"]
    msg["content"] = draw(contents)
    if now_and_then(draw, 4):
        msg["message_type"] = draw(st.sampled_from(["post", "image", "file", "sticker", ""]) | json_value)
    if now_and_then(draw, 3):
        msg["message_id"] = draw(odd_id)
    if now_and_then(draw, 6):
        msg["chat_type"] = draw(st.sampled_from(["topic_group", "private"]) | json_value)
    mentions = draw(mention_lists)
    if mentions is not None:
        msg["mentions"] = mentions
    if now_and_then(draw, 3):
        sender["sender_id"]["open_id"] = draw(odd_id)
    if now_and_then(draw, 6):
        msg["parent_id"] = draw(odd_str)
    if now_and_then(draw, 6):
        msg["chat_id"] = draw(odd_str)
    maybe_drop(draw, msg, ["message_id", "content", "message_type", "chat_type", "chat_id"], 8)
    maybe_drop(draw, event, ["message", "sender"], 10)
    return "im.message.receive_v1", event


@st.composite
def feishu_cards(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    event = card_action(
        {},
        open_id=draw(st.sampled_from(FEISHU_USERS)),
        open_message_id=draw(mostly(st.just(f"om_{uuid.uuid4().hex[:24]}"), odd_id, 3)),
        open_chat_id=draw(mostly(st.sampled_from(["oc_sales", "oc_cs"]), odd_str)),
    )
    event["action"]["value"] = draw(mostly(button_value_dicts, button_values, 3))
    if now_and_then(draw, 3):
        event["operator"]["open_id"] = draw(odd_id)
    if now_and_then(draw, 6):
        event["action"]["tag"] = draw(st.sampled_from(["select_static", "input", "overflow"]) | json_value)
    if now_and_then(draw, 6):
        event["action"]["form_value"] = draw(json_value)
    if now_and_then(draw, 6):
        event["token"] = draw(odd_str)
    maybe_drop(draw, event, ["operator", "context", "token", "host"], 8)
    return "card.action.trigger", event


@st.composite
def feishu_others(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Other event types, with any event."""
    event_type = draw(st.sampled_from(FEISHU_TYPES[2:]))
    event = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "operator": st.fixed_dictionaries({}, optional={"operator_id": json_value}) | json_value,
                "event_key": mostly(st.sampled_from(["list", "report", "team_report", "help"]), odd_str),
                "chat_id": odd_str,
                "name": odd_str,
            },
        )
    )
    return event_type, event


@st.composite
def feishu_events(draw: st.DrawFn, app_id: str) -> tuple[str, Any]:
    kind = draw(st.sampled_from([feishu_messages, feishu_messages, feishu_cards, feishu_others]))
    event_type, event = draw(kind())
    payload: dict[str, Any] = envelope(
        event_type, event, token=VERIFICATION_TOKEN, app_id=app_id, event_id=f"ev_{uuid.uuid4().hex}"
    )
    header = payload["header"]
    if now_and_then(draw, 5):
        header["event_type"] = draw(
            st.sampled_from([[event_type], FEISHU_TYPES, {"t": event_type}, event_type.upper()]) | hostile
        )
    if now_and_then(draw, 3):
        header["event_id"] = draw(odd_id)
    if now_and_then(draw, 4):
        for name in draw(st.sets(st.sampled_from(["create_time", "app_id", "tenant_key"]), min_size=1, max_size=2)):
            header[name] = draw(odd_str)
    if now_and_then(draw, 10):
        payload["event"] = draw(json_value)
    maybe_drop(draw, payload, ["event"], 10)
    maybe_drop(draw, header, ["event_id", "event_type", "create_time", "app_id", "tenant_key"], 10)
    if now_and_then(draw, 12):
        payload["schema"] = draw(st.sampled_from(["1.0", 2.0]) | json_value)
    return f"event {str(header.get('event_type'))[:60]!r}", payload


@st.composite
def feishu_challenges(draw: st.DrawFn) -> tuple[str, Any]:
    challenge = draw(challenges)
    return "url_verification", {"challenge": challenge, "token": VERIFICATION_TOKEN, "type": "url_verification"}


def feishu_request(
    payload: Any, *, lower: bool = False, ctype: str = "application/json"
) -> tuple[bytes, dict[str, str]]:
    """Encrypted and signed as Feishu does it; the plaintext is written by `dumps_raw`, so it can hold
    lone surrogates (escaped) and literal numbers no library would write."""
    plain = dumps_raw(payload).encode("ascii")
    body = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, plain)}).encode()
    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    headers = {
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(ts, nonce, ENCRYPT_KEY, body),
        "Content-Type": ctype,
    }
    return body, ({k.lower(): v for k, v in headers.items()} if lower else headers)


def test_signed_feishu_requests_with_hostile_content(server: FuzzServer) -> None:
    @FUZZ
    @given(
        request=feishu_events(server.app_id) | feishu_challenges(),
        lower=st.booleans(),
        ctype=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    )
    def feishu(request: tuple[str, Any], lower: bool, ctype: str) -> None:
        what, payload = request
        body, headers = feishu_request(payload, lower=lower, ctype=ctype)
        rid, reply = server.send(FEISHU, body, headers, f"{what}, plaintext {dumps_raw(payload)[:800]}")
        check(server, rid, reply)
        if what == "url_verification":
            check_challenge(reply, payload["challenge"], rid, server)

    feishu()


# ==================================================================================== 3. signals

ACCOUNTS = ["Acme", "Beta", "Gamma Co", "Delta", "acme", " Acme ", "#1", "#2", "#0", "#-1", "ACME", "Ａｃｍｅ"]
SIGNAL_NAMES = ["test_email_sent", "domain_verified", "api_configured", "production_send", "daily_send_volume"]
offsets = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-(24 * 60 - 1), 24 * 60 - 1))
datetimes = st.builds(
    lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)), offsets
)
AT_EXTREMES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00+23:59",
    "2026-02-30T10:00:00+08:00",
    "2026-11-27T10:00:00Z",
    "2026-11-27T10:00:00+08:00",
    "2026-11-27T24:00:00+08:00",
    "2026-11-27T10:00:00+24:00",
    "2026-11-27",
    "1767225600",
    "+002026-11-27T10:00:00Z",
]
# Values the API accepts (so they reach the database), at its limits: the value below 1e14, any offset.
good_values = st.one_of(
    st.integers(0, 10**6),
    st.integers(0, 10**14 - 1),
    st.floats(0, 1e14, exclude_max=True),
    st.decimals(0, Decimal("99999999999999.99"), places=2).map(lambda d: Raw(str(d))),
    st.sampled_from(["99999999999999.99", "99999999999999.994", "99999999999999.995", "0.001", "1E+13", "1e-7"]).map(
        Raw
    ),
    st.sampled_from(["12", "1e13", "99999999999999.99", " 5 "]),
)
good_ats = st.sampled_from(AT_EXTREMES[:4]) | datetimes | st.sampled_from(AT_EXTREMES)
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "account": st.sampled_from(ACCOUNTS),
    "external_id": st.sampled_from(["ext-acme", "ext-delta", "EXT-ACME"]),
    "signal": st.sampled_from(SIGNAL_NAMES),
    "value": good_values,
    "at": good_ats,
    "id": unique,
    "source": st.sampled_from(["product", "billing", "api"]),
}
BAD: dict[str, st.SearchStrategy[Any]] = {
    "account": odd_str,
    "external_id": odd_str,
    "signal": odd_str,
    "value": st.one_of(st.sampled_from([*HUGE_INTS, -1, "lots", "NaN", True]), st.floats(), raw_number, json_value),
    "at": odd_str,
    "id": odd_id,
    "source": odd_str,
}


@st.composite
def signal_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A signal with every field it needs and some it may have, one or two of them hostile (and now and
    then: both or neither of account and external_id, an unknown field, a key twice, no object)."""
    who = draw(mostly(st.sampled_from(["account", "external_id"]), st.sampled_from(["both", "neither"]), 10))
    names = {"account": ["account"], "external_id": ["external_id"], "both": ["account", "external_id"]}.get(who, [])
    names += ["signal", *(k for k in ("value", "at", "id", "source") if draw(st.booleans()))]
    bad = draw(st.sets(st.sampled_from(names), max_size=2))
    body = {k: draw(BAD[k] if k in bad else GOOD[k]) for k in names}
    if now_and_then(draw, 10):
        body[draw(st.text(max_size=8))] = draw(json_value)
    text = dumps_raw(body)
    if now_and_then(draw, 10):  # a key twice: the last one wins in Python
        key = draw(st.sampled_from(["account", "signal", "at", "value", "id"]))
        text = text[:-1] + ", " + json.dumps(key) + ": " + dumps_raw(draw(hostile)) + "}"
    if now_and_then(draw, 15):
        text = draw(st.sampled_from(["", "[]", "null", "1", '"x"', *DEEP, *RAW_NUMBERS]) | json_str)
    return "signal", text.encode("utf-8", "surrogatepass")


def test_authorised_signals_with_hostile_content(server: FuzzServer) -> None:
    @FUZZ
    @given(
        request=signal_bodies(),
        ctype=st.sampled_from(
            ["application/json", "application/json", "application/json; charset=utf-8", "text/plain"]
        ),
        scheme=st.sampled_from(["Bearer", "Bearer", "bearer", "BEARER"]),
    )
    def signals(request: tuple[str, bytes], ctype: str, scheme: str) -> None:
        what, body = request
        headers = {"Content-Type": ctype, "Authorization": f"{scheme} {TOKEN}"}
        rid, reply = server.send(SIGNALS, body, headers, what)
        check(server, rid, reply, after=False)

    signals()


# ==================================================================================== 4. invalid requests


@dataclass
class Forged:
    endpoint: str
    what: str
    body: bytes
    headers: dict[str, Any]
    marker: str  # in what a wrongly accepted request would create or send


def stale_ts(draw: st.DrawFn) -> str:
    now = int(time.time())
    return str(draw(st.sampled_from([now - 310, now + 310, now - 86_400, now + 10**9, 0, -1])))


@st.composite
def forged_slack(draw: st.DrawFn, slack: FakeSlack) -> Forged:
    marker = f"Forged{uuid.uuid4().hex[:10]}"
    kind = draw(st.sampled_from(["command", "button", "home"]))
    if kind == "command":
        body = slash_command(f"add {marker}", user="U0ADMIN", response_url=slack.response_url(marker))
        ctype = FORM
    elif kind == "button":
        value = json.dumps({"v": 1, "op": "approve", "approval": 1})
        body = block_action(
            user="U0BOSS", action_id="stagebot:approve", value=value, response_url=slack.response_url(marker)
        )
        ctype = FORM
    else:
        event = {"type": "app_home_opened", "user": marker, "channel": "D0X", "tab": "home", "event_ts": "1.0"}
        body = json.dumps({"type": "event_callback", "event_id": f"Ev{marker}", "event": event, "team_id": "T0TEAM"})
        ctype = JSON
    defect = draw(st.sampled_from(["secret", "stale", "ts", "missing", "signature", "tampered"]))
    headers: dict[str, Any] = signed_headers(body, content_type=ctype)
    if defect == "secret":
        headers = signed_headers(
            body, secret=draw(st.sampled_from(["x", SECRET + "x", SECRET.upper(), SECRET[:-1]])), content_type=ctype
        )
    elif defect == "stale":
        headers = signed_headers(body, timestamp=int(stale_ts(draw)), content_type=ctype)
    elif defect == "ts":
        headers["x-slack-request-timestamp"] = draw(st.sampled_from(["", "abc", "1e9", " ", "١٢٣", "9" * 400]))
    elif defect == "missing":
        for k in draw(st.sets(st.sampled_from(["x-slack-request-timestamp", "x-slack-signature"]), min_size=1)):
            headers.pop(k)
    elif defect == "signature":
        good = headers["x-slack-signature"]
        headers["x-slack-signature"] = draw(
            st.sampled_from(["", "v0=", "v1=" + good[3:], good.upper(), good[:-1], "v0=" + "0" * 64, good + "0"])
        )
    else:
        body += draw(st.sampled_from(["&x=1", " ", "\n", "%00"]))
    if draw(st.integers(0, 3)) == 0:
        headers["content-type"] = draw(st.sampled_from([FORM, JSON, "text/plain", "", "multipart/form-data"]))
    return Forged(SLACK, f"slack {kind}, {defect}", body.encode(), headers, marker)


@st.composite
def forged_feishu(draw: st.DrawFn, app_id: str) -> Forged:
    marker = f"Forged{uuid.uuid4().hex[:10]}"
    kind = draw(st.sampled_from(["message", "card", "challenge"]))
    if kind == "message":
        event = text_message(f"add {marker}", open_id="ou_admin", message_id=f"om_{marker}")
        payload: dict[str, Any] = envelope("im.message.receive_v1", event, token=VERIFICATION_TOKEN, app_id=app_id)
    elif kind == "card":
        event = card_action({"v": 1, "op": "approve", "approval": 1}, open_id="ou_boss", open_message_id=f"om_{marker}")
        payload = envelope("card.action.trigger", event, token=VERIFICATION_TOKEN, app_id=app_id)
    else:
        payload = {"challenge": marker, "token": VERIFICATION_TOKEN, "type": "url_verification"}
    defects = ["token", "key", "plain", "garbage"] + ([] if kind == "challenge" else ["signature", "stale", "missing"])
    defect = draw(st.sampled_from(defects))
    wrong_token = draw(st.sampled_from(["", "x", VERIFICATION_TOKEN + "x", VERIFICATION_TOKEN.upper()]))
    if defect == "token":
        if "header" in payload:
            payload["header"]["token"] = wrong_token
        else:
            payload["token"] = wrong_token
    key = draw(st.sampled_from(["", "x", ENCRYPT_KEY + "x"])) if defect == "key" else ENCRYPT_KEY
    plain = json.dumps(payload).encode()
    body = plain if defect == "plain" else json.dumps({"encrypt": encrypt(key or "k", plain)}).encode()
    if defect == "garbage":
        body = draw(
            st.sampled_from([b"", b"{not json", b"[]", b'{"encrypt": 1}', b'{"encrypt": "%%%"}', b'{"encrypt": ""}'])
            | st.binary(max_size=100)
        )
    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    if defect == "stale":
        ts = stale_ts(draw)
    headers: dict[str, Any] = {
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(ts, nonce, key, body),
        "Content-Type": draw(st.sampled_from(["application/json", "text/plain", FORM, ""])),
    }
    if defect == "signature":
        headers[HEADER_SIGNATURE] = draw(
            st.sampled_from(["", "0" * 64, sign(ts, nonce, "wrong", body), headers[HEADER_SIGNATURE].upper()])
        )
    if defect == "missing":
        for k in draw(st.sets(st.sampled_from([HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE]), min_size=1)):
            headers.pop(k)
    return Forged(FEISHU, f"feishu {kind}, {defect}", body, headers, marker)


@st.composite
def forged_signals(draw: st.DrawFn) -> Forged:
    marker = f"forged-{uuid.uuid4().hex[:10]}"
    signal_ = draw(st.sampled_from(["test_email_sent", "domain_verified", "api_configured"]))
    body = json.dumps({"account": draw(st.sampled_from(["Acme", "Beta", "Delta"])), "signal": signal_, "id": marker})
    defect = draw(st.sampled_from(["none", "token", "scheme", "garbage"]))
    headers: dict[str, Any] = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", FORM, ""]))}
    if defect == "token":
        headers["Authorization"] = "Bearer " + draw(
            st.sampled_from(["", "x", TOKEN + "x", TOKEN[:-1], TOKEN.upper(), TOKEN + "\t" + TOKEN, "Bearer " + TOKEN])
        )
    elif defect == "scheme":
        headers["Authorization"] = draw(
            st.sampled_from([TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}", f"Bearer:{TOKEN}", f"Bearer\t{TOKEN}"])
        )
    elif defect == "garbage":  # the right token, a body that is no signal
        headers["Authorization"] = f"Bearer {TOKEN}"
        body = draw(
            st.sampled_from(["", "{not json", "[]", "null", '"x"', *DEEP]) | json_str.filter(lambda s: s[:1] != "{")
        )
    raw = body.encode("utf-8", "surrogatepass")
    return Forged(SIGNALS, f"signals, {defect}", raw, headers, marker)


def test_invalid_requests_are_refused_and_apply_nothing(server: FuzzServer) -> None:
    before = settled(server.state)
    markers: list[str] = []

    @FUZZ
    @given(forged=st.one_of(forged_slack(server.slack), forged_feishu(server.app_id), forged_signals()))
    def invalid(forged: Forged) -> None:
        markers.append(forged.marker)
        rid, reply = server.send(forged.endpoint, forged.body, forged.headers, forged.what)
        check(server, rid, reply, refused=True, after=False)

    invalid()
    time.sleep(1.0)  # room for anything a refused request (wrongly) started in the background
    after = state(server.state)
    assert after == before, f"the invalid requests changed the database: {difference(before, after)}"
    heard = [
        c.summary()
        for c in server.slack.calls
        if any(m in c.path or m in json.dumps(c.body, default=str) for m in markers)
    ]
    assert not heard, f"Slack heard of forged requests: {heard[:5]}"
    replies = [m for m in server.feishu.messages if any(mk in str(m) for mk in markers)]
    assert not replies, f"Feishu heard of forged requests: {replies[:5]}"


# ==================================================================================== 5. the whole log


def test_the_server_stops_cleanly_and_its_whole_log_is_clean(
    server: FuzzServer, capsys: pytest.CaptureFixture[str], record_testsuite_property: Callable[[str, object], None]
) -> None:
    """Last (file order): SIGTERM, a clean exit, and every line of the log checked once more, with each
    problem traced to the request it was logged for. Also says how many requests were sent."""
    total = sum(server.counts.values())
    record_testsuite_property("fuzz_requests_sent", total)
    for endpoint, n in sorted(server.counts.items()):
        record_testsuite_property(f"fuzz_requests_sent{endpoint.replace('/', '_')}", n)
    with capsys.disabled():
        per = ", ".join(f"{e} {n}" for e, n in sorted(server.counts.items()))
        db = "PostgreSQL" if PG_URL else "SQLite"
        classes = collections.Counter(f"{s.status // 100}xx" if s.status else "no answer" for s in server.sent.values())
        answers = ", ".join(f"{k} {n}" for k, n in sorted(classes.items()))
        print(f"\n[fuzz] {total} requests sent ({per}; {answers}); {EXAMPLES} examples per test; {db}", flush=True)

    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"stagebot serve did not exit within {STOP_TIMEOUT}s of SIGTERM")
    problems = [(p, server.sent.get(p.cid or "")) for w in server.logs for p in w.all_problems()]
    # One line per distinct problem (the same message for many requests is one bug).
    distinct: dict[str, tuple[LogProblem, Sent | None, int]] = {}
    for p, origin in problems:
        key = p.kind()
        seen = distinct.get(key)
        distinct[key] = (p, origin, 1) if seen is None else (seen[0], seen[1] or origin, seen[2] + 1)
    report = "\n\n".join(
        f"[{n}x] {p.show()}" + (f"\n  for {origin.show()}" if origin else "") for p, origin, n in distinct.values()
    )
    assert not problems, f"{len(problems)} bad log line(s), {len(distinct)} distinct (exit code {code}):\n\n{report}"
    assert code == 0, f"stagebot serve exited with {code}"
