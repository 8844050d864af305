"""Cron without `serve`: the console and `stagebot jobs run` deliver what they emit to Slack and Feishu
at the platforms' pace, and nothing a simulated `--now` run writes holds back a `serve` started later.

Every step is a real process, as an operator runs it; Slack and Feishu are the strict fakes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.adapters.feishu.conftest import feishu_env
from tests.e2e.test_serve_slack import Server, port_from_log, stop, wait_healthy
from tests.fakes.feishu_api import FakeFeishu
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, SECRET, signed_headers, slash_command

pytestmark = pytest.mark.slow  # runs `stagebot` as subprocesses, on a schedule

REPO = Path(__file__).resolve().parents[2]
CHANNELS = {"marketing": ("C0MARKETING", "oc_marketing"), "sales": ("C0SALES", "oc_sales")}
CHANNELS |= {"cs": ("C0CS", "oc_cs"), "support": ("C0SUPPORT", "oc_support")}

CONFIG = """\
[database]
url = "sqlite:///{db}"

[server]
host = "127.0.0.1"
port = 0

[slack]
enabled = true
api_url = "{slack}"

[feishu]
enabled = true
mode = "webhook"
domain = "{feishu}"

[scheduler]
enabled = false
working_days = [1, 2, 3, 4, 5, 6, 7]
working_hours = [0, 24]

[access]
admins = ["slack:U0BOSS"]
"""

# Three accounts a channel and a few moves: more than one message waits in every channel.
SCRIPT = """\
add "Mkt One"
add "Mkt Two"
add "Mkt Three"
add "Sales One" --stage SQL
add "Sales Two" --stage SQL
move "Sales Two" PQL demo done
add "Cs One" --stage P1
add "Cs Two" --stage P1
add "Cs Three" --stage P2
"""


@dataclass
class Setup:
    cfg: Path
    db: Path
    env: dict[str, str]
    slack: FakeSlack
    feishu: FakeFeishu


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with FakeSlack() as slack, FakeFeishu() as feishu:
        teams = "".join(
            f'\n[teams.{team}]\nslack_channel = "{s}"\nfeishu_chat = "{f}"\nmembers = ["slack:U0{team.upper()}"]\n'
            for team, (s, f) in CHANNELS.items()
        )
        cfg = tmp_path / "stagebot.toml"
        db = tmp_path / "stagebot.db"
        cfg.write_text(textwrap.dedent(CONFIG).format(db=db, slack=slack.base_url, feishu=feishu.url) + teams)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            **feishu_env("cli_cron_test"),
        }
        yield Setup(cfg, db, env, slack, feishu)


def stagebot(s: Setup, *args: str, stdin: str = "", timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--config", str(s.cfg)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=s.cfg.parent,
        env=s.env,
        timeout=timeout,
    )


def outbox(s: Setup) -> dict[tuple[str, str], int]:
    engine = create_engine(f"sqlite:///{s.db}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT target, status, count(*) FROM outbox GROUP BY target, status")).all()
    finally:
        engine.dispose()
    return {(t, st): n for t, st, n in rows}


def slack_posts(s: Setup) -> list[dict[str, object]]:
    return [c.body for c in s.slack.calls_to("chat.postMessage") if c.response.get("ok")]


def test_jobs_run_delivers_everything_pending_and_due_and_serve_is_not_held_afterwards(setup: Setup) -> None:
    s = setup
    # The console leaves its notifications for someone else (--wait 0), as a quick script would.
    res = stagebot(s, "console", "--wait", "0", stdin=SCRIPT)
    assert res.returncode == 0, res.stderr
    assert "still pending" in res.stdout and "`stagebot serve` delivers them" in res.stdout
    left = {k: n for k, n in outbox(s).items() if k[1] == "pending"}
    assert left.get(("slack", "pending"), 0) > 4, left  # more than one a channel was left waiting
    before = len(slack_posts(s))

    # One cron run, four months on: it delivers what the console left and the reminders now due.
    later = (datetime.now(UTC) + timedelta(days=120)).isoformat()
    started = time.monotonic()
    res = stagebot(s, "jobs", "run", "--now", later)
    took = time.monotonic() - started
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SlaReminder" in res.stdout and "still pending" not in res.stdout
    counts = outbox(s)
    assert not [k for k in counts if k[1] != "delivered"], counts  # nothing pending, nothing refused
    posts = slack_posts(s)
    assert len(posts) > before
    by_channel = {ch: [p for p in posts if p["channel"] == ch] for ch, _ in CHANNELS.values()}
    assert all(by_channel.values()), {ch: len(v) for ch, v in by_channel.items()}
    reminders = [p for p in posts if "SLA" in json.dumps(p)]
    assert reminders, "the SLA reminders due in four months reached Slack"
    feishu_chats = {m.receive_id for m in s.feishu.messages}
    assert feishu_chats >= {f for _, f in CHANNELS.values()}
    assert any("SLA" in json.dumps(m.content, ensure_ascii=False) for m in s.feishu.messages)
    # Every row went once: as many Slack posts as Slack outbox rows' channels, no duplicates by text.
    texts = [(p["channel"], p.get("text")) for p in posts]
    assert len(texts) == len(set(texts)), "a notification was posted twice"
    assert took < 200  # generous: pacing makes it take a few seconds per channel

    # A serve started afterwards delivers a new change at once: nothing from the run holds a channel.
    err = s.cfg.parent / "serve.stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(s.cfg)],
            cwd=s.cfg.parent,
            env=s.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        srv = Server(proc, port_from_log(err, proc), s.slack, err)
        wait_healthy(srv)
        body = slash_command("add Zeta", user="U0MARKETING", response_url=s.slack.response_url("zeta"))
        sent = time.monotonic()
        reply = srv.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))
        assert reply.status == 200
        deadline = sent + 10
        while time.monotonic() < deadline and not any("Zeta" in json.dumps(p) for p in slack_posts(s)):
            time.sleep(0.05)
        arrived = [p for p in slack_posts(s) if "Zeta" in json.dumps(p)]
        assert arrived and arrived[0]["channel"] == "C0MARKETING"
        assert time.monotonic() - sent < 10
    finally:
        stop(proc)
    assert "Traceback" not in err.read_text(errors="replace")


def test_jobs_run_says_what_it_leaves_when_the_wait_runs_out(setup: Setup) -> None:
    s = setup
    assert stagebot(s, "console", "--wait", "0", stdin=SCRIPT).returncode == 0
    res = stagebot(s, "jobs", "run", "--wait", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "still pending after 0 s" in res.stdout and "run `stagebot jobs run` again" in res.stdout
    # Another run with time to wait finishes the job.
    res = stagebot(s, "jobs", "run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not [k for k in outbox(s) if k[1] != "delivered"]


def test_wait_must_be_a_number_of_seconds(setup: Setup) -> None:
    res = stagebot(setup, "jobs", "run", "--wait", "soon")
    assert res.returncode == 2 and "'soon' is not a number of seconds" in res.stderr
