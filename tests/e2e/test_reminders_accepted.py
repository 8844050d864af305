"""`stagebot serve` with Slack and Feishu enabled and its scheduler running: the reminders it posts on its
own (an SLA reminder, a renewal reminder, a handoff escalation) are accepted by both strict fakes, which
refuse what the real platforms refuse. A refused reminder is marked dead and never reaches a channel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import load_settings
from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.rules import Rules
from tests.adapters.feishu.conftest import feishu_env
from tests.e2e.test_serve_slack import Server, port_from_log, stop, wait_healthy
from tests.fakes.feishu_api import FakeFeishu
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET

pytestmark = pytest.mark.slow  # starts `stagebot serve` as a subprocess

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0  # generous: three kinds, paced at about one message a second per channel

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
enabled = true
tick_seconds = 1
working_days = [1, 2, 3, 4, 5, 6, 7]
working_hours = [0, 24]

[access]
admins = ["console:t"]

[teams.marketing]
slack_channel = "C0MARKETING"
feishu_chat = "oc_marketing"
members = ["slack:U0MARY"]

[teams.sales]
slack_channel = "C0SALES"
feishu_chat = "oc_sales"
members = ["slack:U0ALICE"]
approvers = ["slack:U0BOSS", "feishu:ou_boss"]

[teams.cs]
slack_channel = "C0CS"
feishu_chat = "oc_cs"
members = ["slack:U0CAROL"]

[teams.support]
slack_channel = "C0SUPPORT"
feishu_chat = "oc_support"
members = ["slack:U0DAVE"]
"""


def test_reminders_serve_posts_on_its_own_are_accepted_by_slack_and_feishu(tmp_path: Path) -> None:
    db_path = tmp_path / "stagebot.db"
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, **feishu_env("cli_reminders")}
    with FakeSlack() as slack, FakeFeishu() as feishu:
        cfg = tmp_path / "stagebot.toml"
        cfg.write_text(textwrap.dedent(CONFIG).format(db=db_path, slack=slack.base_url, feishu=feishu.url))
        settings = load_settings(str(cfg), env)
        engine = make_engine(f"sqlite:///{db_path}")
        upgrade(engine)
        rules = Rules(settings.pipeline, settings.roster(), targets=())  # the past makes no notifications
        actor = Actor("console", "t")
        now = datetime.now(UTC)

        def at(days_ago: float) -> Lifecycle:
            return Lifecycle(Database(engine), rules, FixedClock(now - timedelta(days=days_ago)))

        def key() -> str:
            return uuid.uuid4().hex

        # In SQL for 40 days: past its 30-day SLA.
        at(40).execute(c.AddAccount(name="Stale Co 🚀 <&>", stage="SQL", actor=actor, key=key()))
        # Handed to Sales two days ago and never taken: the 24-hour escalation is due.
        at(3).execute(c.AddAccount(name="Waiting Co", actor=actor, key=key()))
        at(2).execute(c.MoveStage(account="Waiting Co", target="SQL", actor=actor, key=key()))
        # A mature customer whose contract ends in 20 days: the 30-day renewal reminder is due.
        at(1).execute(
            c.AddAccount(
                name="Renew Co",
                stage="P5",
                contract_end=date.today() + timedelta(days=20),
                actor=actor,
                key=key(),
            )
        )
        engine.dispose()

        err = tmp_path / "serve.stderr"
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--config", str(cfg)],
                cwd=tmp_path,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            wait_healthy(Server(proc, port_from_log(err, proc), slack, err))
            wanted = {"sla": "Stale Co", "handoff": "Waiting Co", "renewal": "Renew Co"}

            def slack_has(name: str) -> bool:
                return any(
                    name in json.dumps(x.body, ensure_ascii=False) and x.response.get("ok")
                    for x in slack.calls_to("chat.postMessage")
                )

            def feishu_has(name: str) -> bool:
                return any(name in json.dumps(m.content, ensure_ascii=False) for m in feishu.messages)

            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                if all(slack_has(n) and feishu_has(n) for n in wanted.values()) and pending(db_path) == 0:
                    break
                time.sleep(0.2)
            refused = [x.summary() for x in slack.calls if isinstance(x.response, dict) and not x.response.get("ok")]
            refused += [
                f"feishu {x.kind} -> {x.status} code {x.code}" for x in feishu.calls if x.status != 200 or x.code
            ]
            assert not refused, refused
            for what, name in wanted.items():
                assert slack_has(name), f"no {what} reminder for {name} accepted by Slack"
                assert feishu_has(name), f"no {what} reminder for {name} accepted by Feishu"
            assert dead(db_path) == 0
            # The SLA reminder carries its snooze buttons on both platforms.
            sla = next(x for x in slack.calls_to("chat.postMessage") if "Stale Co" in json.dumps(x.body))
            assert "snooze" in json.dumps(sla.body["blocks"]).lower()
        finally:
            stop(proc)
        assert "Traceback" not in err.read_text(errors="replace")


def _count(db_path: Path, status: str) -> int:
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM outbox WHERE status = :s"), {"s": status}).scalar_one())
    finally:
        engine.dispose()


def pending(db_path: Path) -> int:
    return _count(db_path, "pending")


def dead(db_path: Path) -> int:
    return _count(db_path, "dead")
