"""A full run of `stagebot serve` with every platform on, JSON logs at debug level, then a grep of
everything it wrote for the configured secrets.

The run does what makes secrets most likely to surface: signed and forged Slack requests, an
encrypted Feishu message, a Feishu token refused mid-run (so the app secret is sent again), Slack
answering 500 and 429, product signals with right and wrong bearer tokens, a scrape of /metrics.
The log must hold none of the secret values, and not even our masking's "[redacted]": masking is
the last line of defence, and a run where it had to act means some code logged a secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.adapters.feishu.conftest import BOT, ENCRYPT_KEY, VERIFICATION_TOKEN
from tests.e2e.test_serve_slack import Server, port_from_log, stop, wait_healthy
from tests.fakes.feishu_api import TOKEN_INVALID, FakeFeishu
from tests.fakes.feishu_requests import envelope, signed, text_message
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import FORM, SECRET, signed_headers, slash_command

pytestmark = pytest.mark.slow  # starts `stagebot serve` as a subprocess

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 30.0

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

[logging]
format = "json"
level = "debug"

[access]
admins = ["slack:U0ADMIN", "feishu:ou_admin"]

[teams.marketing]
slack_channel = "C0MARKETING"
feishu_chat = "oc_marketing"

[teams.sales]
slack_channel = "C0SALES"
feishu_chat = "oc_sales"

[teams.cs]
slack_channel = "C0CS"
feishu_chat = "oc_cs"

[teams.support]
slack_channel = "C0SUPPORT"
feishu_chat = "oc_support"
"""


def test_a_full_run_logs_json_with_request_ids_and_no_secret(tmp_path: Path) -> None:
    app_id = f"cli_{uuid.uuid4().hex[:12]}"
    secrets = {
        "SLACK_BOT_TOKEN": f"xoxb-{uuid.uuid4().hex}",
        "SLACK_SIGNING_SECRET": SECRET,
        "FEISHU_APP_ID": app_id,
        "FEISHU_APP_SECRET": f"app-secret-{uuid.uuid4().hex}",
        "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN,
        "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
        "STAGEBOT_API_TOKEN": f"api-{uuid.uuid4().hex}",
    }
    with FakeSlack() as slack, FakeFeishu(bot_open_id=BOT) as feishu:
        cfg = tmp_path / "stagebot.toml"
        cfg.write_text(
            textwrap.dedent(CONFIG).format(db=tmp_path / "stagebot.db", slack=slack.base_url, feishu=feishu.url)
        )
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **secrets}
        err = tmp_path / "serve.stderr"
        with (tmp_path / "serve.stdout").open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--config", str(cfg)],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        try:
            server = Server(proc, port_from_log(err, proc), slack, err)
            wait_healthy(server)
            slack.fail("chat.postMessage", status=500, error="internal_error", times=1)
            slack.fail("chat.postMessage", status=429, error="ratelimited", retry_after=1, times=1)
            feishu.script("create", TOKEN_INVALID)

            body = slash_command("add Leaky --stage P1", user="U0ADMIN", response_url=slack.response_url("c1"))
            headers = {**signed_headers(body, content_type=FORM), "X-Request-Id": "trace-me-1"}
            assert server.request("POST", "/slack/events", body, headers).status == 200
            assert server.command("move Leaky P2", user="U0ADMIN").status == 200
            forged = {**signed_headers(body, content_type=FORM), "x-slack-signature": "v0=" + "0" * 64}
            assert server.request("POST", "/slack/events", body, forged).status == 401

            event = text_message("show Leaky", open_id="ou_admin", message_id=f"om_{uuid.uuid4().hex[:16]}")
            raw, fheaders = signed(
                envelope("im.message.receive_v1", event, token=VERIFICATION_TOKEN, app_id=app_id),
                encrypt_key=ENCRYPT_KEY,
            )
            assert server.request("POST", "/feishu/events", raw.decode(), fheaders).status == 200

            signal = json.dumps({"account": "Leaky", "signal": "test_email_sent", "id": "s1"})
            bearer = {"Content-Type": "application/json", "Authorization": f"Bearer {secrets['STAGEBOT_API_TOKEN']}"}
            assert server.request("POST", "/api/v1/signals", signal, bearer).status == 200
            wrong = {"Content-Type": "application/json", "Authorization": "Bearer " + secrets["SLACK_BOT_TOKEN"]}
            assert server.request("POST", "/api/v1/signals", signal, wrong).status == 401
            assert server.request("GET", "/metrics").status == 200

            deadline = time.monotonic() + DEADLINE  # deliveries retried past the 500, the 429 and the token
            while time.monotonic() < deadline and not (
                len(slack.calls_to("chat.postMessage")) >= 4 and len(feishu.messages) >= 3
            ):
                time.sleep(0.2)
        finally:
            stop(proc)
    log = err.read_text(encoding="utf-8", errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert len(slack.calls_to("chat.postMessage")) >= 4 and len(feishu.messages) >= 3, log[-3000:]

    for name, value in secrets.items():
        assert value not in log, f"{name} appears in the log"
    assert "[redacted]" not in log, "something tried to log a secret (masked, but it should not happen)"

    records = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    assert {r["level"] for r in records} >= {"debug", "warning"}
    assert any(r["correlation_id"] == "trace-me-1" for r in records)
    assert any(r["logger"].startswith("stagebot") and r["correlation_id"] for r in records)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_log_format_and_level_can_come_from_the_environment(tmp_path: Path, fmt: str) -> None:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n')
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "STAGEBOT_LOG_FORMAT": fmt,
        "STAGEBOT_LOG_LEVEL": "info",
    }
    res = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade", "--config", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert lines, "info level logs the migration"
    if fmt == "json":
        assert all(json.loads(x)["level"] for x in lines)
    else:
        assert all(not x.startswith("{") for x in lines)
