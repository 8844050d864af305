"""Scheduled work from the outside: `stagebot jobs run [--now]` for cron users, and the scheduler
inside `stagebot serve` posting a reminder to the owner team's Slack channel."""

from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_settings
from bot.serve import start
from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.rules import Rules
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET, TEAMS_TOML

ALWAYS = "working_days = [1, 2, 3, 4, 5, 6, 7]\nworking_hours = [0, 24]\n"


def run(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    for name in ("STAGEBOT_CONFIG", "STAGEBOT_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


def test_jobs_run_emits_what_is_due_once_and_delivers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stagebot.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[scheduler]\n{ALWAYS}\n' + TEAMS_TOML
    )
    code, _ = run(["console"], tmp_path, monkeypatch, stdin="add Acme --stage SQL\n")
    assert code == 0
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    code, out = run(["jobs", "run", "--now", later], tmp_path, monkeypatch)
    assert code == 0, out
    assert "[#sales]" in out and "Acme has been in SQL" in out and "30-day SLA" in out
    assert "emitted SlaReminder 1" in out
    code, out = run(["jobs", "run", "--now", later], tmp_path, monkeypatch)
    assert code == 0 and "nothing new" in out and "1 already emitted" in out and "[#sales]" not in out


def test_jobs_run_refuses_a_bad_instant_and_respects_quiet_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stagebot.toml").write_text(f'[database]\nurl = "sqlite:///{tmp_path / "q.db"}"\n')
    code, _ = run(["jobs", "run", "--now", "next tuesday"], tmp_path, monkeypatch)
    assert code == 2 and "not an ISO-8601 instant" in capsys.readouterr().err
    code, out = run(["jobs", "run", "--now", "2026-04-04T03:00:00+08:00"], tmp_path, monkeypatch)  # a Saturday night
    assert code == 0 and "outside working hours" in out


@pytest.mark.slow  # real scheduler ticks: seconds of real time
def test_serve_runs_the_scheduler_and_posts_reminders_to_the_owner_channel(tmp_path: Path) -> None:
    db_path = tmp_path / "serve.db"
    engine = make_engine(f"sqlite:///{db_path}")
    upgrade(engine)
    cfg = tmp_path / "stagebot.toml"
    with FakeSlack() as fake:
        cfg.write_text(
            textwrap.dedent(
                f"""\
                [database]
                url = "sqlite:///{db_path}"
                [slack]
                enabled = true
                api_url = "{fake.base_url}"
                [scheduler]
                enabled = true
                tick_seconds = 1
                """
            )
            + ALWAYS
            + TEAMS_TOML
        )
        settings = load_settings(str(cfg), {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET})
        # An account that entered SQL 40 days ago: its 30-day SLA has run out.
        past = Lifecycle(
            Database(engine),
            Rules(settings.pipeline, settings.roster(extra_admins=("console:t",)), targets=()),
            FixedClock(datetime.now(UTC) - timedelta(days=40)),
        )
        past.execute(c.AddAccount(name="Stale Co", stage="SQL", actor=Actor("console", "t"), key=uuid.uuid4().hex))
        engine.dispose()
        running = start(settings, workers=2)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                posts = [json.dumps(x.body) for x in fake.calls_to("chat.postMessage")]
                if any("Stale Co" in p and "SLA" in p for p in posts):
                    break
                time.sleep(0.1)
            reminder = next(x for x in fake.calls_to("chat.postMessage") if "Stale Co" in json.dumps(x.body))
            assert reminder.body["channel"] == "C0SALES"
            assert reminder.response["ok"] is True, reminder.response  # Slack took it (its snooze buttons too)
            time.sleep(2.5)  # two more ticks: the reminder is not posted again
            again = [x for x in fake.calls_to("chat.postMessage") if "Stale Co" in json.dumps(x.body)]
            assert len(again) == 1
        finally:
            running.stop()
