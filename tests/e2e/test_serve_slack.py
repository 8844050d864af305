"""`stagebot serve` as a real process: signed Slack requests over real HTTP, a fake Slack Web API.

The process is started exactly as an admin would start it (`python -m bot serve --config ...`),
with the secrets in its environment, and driven over loopback HTTP like Slack drives it: slash
commands, button presses, Events API callbacks, forged and malformed requests. What the bot sends
to Slack is recorded by `FakeSlack`. The test ends with SIGTERM and a clean exit.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import healthz
from tests.fakes.slack_api import FakeSlack, SlackCall
from tests.fakes.slack_requests import (
    FORM,
    JSON,
    SECRET,
    TEAMS_TOML,
    block_action,
    event_callback,
    signed_headers,
    slash_command,
)

pytestmark = pytest.mark.slow  # starts `stagebot serve` as a subprocess

REPO = Path(__file__).resolve().parents[2]
ACK_LIMIT = 2.5  # Slack gives up after 3 s; a generous bound, not a benchmark
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
NOTIFY_TIMEOUT = 15.0  # notifications are paced at about one per second per channel

CONFIG = (
    """\
[database]
url = "sqlite:///{db}"

[server]
host = "127.0.0.1"
port = {port}

[slack]
enabled = true
api_url = "{api}"

[scheduler]
enabled = false

"""
    + TEAMS_TOML
)


@dataclass
class Reply:
    status: int
    body: str
    seconds: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


SERVING = re.compile(r"stagebot serving on http://127\.0\.0\.1:(\d+)")


def port_from_log(err: Path, proc: subprocess.Popen[bytes]) -> int:
    """serve runs on port 0 (no race for a free port); it logs the port it got."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        m = SERVING.search(err.read_text(encoding="utf-8", errors="replace"))
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            pytest.fail(f"stagebot serve exited early with {proc.returncode}:\n{err.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"stagebot serve logged no port within {START_TIMEOUT}s:\n{err.read_text()}")


class Server:
    """The `stagebot serve` subprocess and a client that speaks to it as Slack does."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, fake: FakeSlack, stderr: Path) -> None:
        self.proc = proc
        self.port = port
        self.fake = fake
        self.stderr_path = stderr

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            started = time.monotonic()
            conn.request(method, path, body=body.encode("utf-8") if body else None, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read().decode("utf-8", errors="replace")
            return Reply(resp.status, data, time.monotonic() - started)
        finally:
            conn.close()

    def command(self, text: str, *, user: str, name: str = "cmd") -> Reply:
        body = slash_command(text, user=user, response_url=self.fake.response_url(name))
        return self.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))

    def press(self, value: str, action_id: str, *, user: str, name: str) -> Reply:
        body = block_action(user=user, action_id=action_id, value=value, response_url=self.fake.response_url(name))
        return self.request("POST", "/slack/events", body, signed_headers(body, content_type=FORM))

    def event(self, event: dict[str, Any], *, event_id: str, extra: dict[str, str] | None = None) -> Reply:
        body = event_callback(event, event_id=event_id)
        headers = signed_headers(body, content_type=JSON)
        headers.update(extra or {})
        return self.request("POST", "/slack/events", body, headers)


def wait_healthy(server: Server) -> None:
    why = healthz.wait_healthy(server.port, server.proc, START_TIMEOUT)
    if why is not None:
        pytest.fail(f"stagebot serve {why}:\n{server.stderr()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Bounded cleanup: SIGTERM, then SIGKILL; never waits forever."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def server(tmp_path: Path, fake: FakeSlack) -> Iterator[Server]:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(textwrap.dedent(CONFIG).format(db=tmp_path / "stagebot.db", port=0, api=fake.base_url))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
    }
    out, err = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(cfg)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        srv = Server(proc, port_from_log(err, proc), fake, err)
        wait_healthy(srv)
        yield srv
    finally:
        stop(proc)


# ---------------------------------------------------------------- helpers


def ephemeral(reply: Reply) -> str:
    """The text of an ephemeral ack, checked to be one: 200, JSON, response_type ephemeral, no trace."""
    assert reply.status == 200, f"{reply.status}: {reply.body}"
    assert "Traceback" not in reply.body
    data = reply.json
    assert data.get("response_type") == "ephemeral", data
    text = str(data.get("text", ""))
    assert text.strip(), data
    return text


def posted_to(fake: FakeSlack, channel: str, *fragments: str, timeout: float = NOTIFY_TIMEOUT) -> SlackCall:
    """The first chat.postMessage to `channel` whose text contains every fragment (waits for it)."""
    deadline = time.monotonic() + timeout
    while True:
        for call in fake.calls_to("chat.postMessage"):
            text = str(call.body.get("text", ""))
            if call.body.get("channel") == channel and all(f in text for f in fragments):
                return call
        if time.monotonic() > deadline:
            seen = [c.summary() for c in fake.calls_to("chat.postMessage")]
            pytest.fail(f"no chat.postMessage to {channel} with {fragments} within {timeout}s; got {seen}")
        time.sleep(0.05)


def blocks_of(call: SlackCall) -> list[dict[str, Any]]:
    raw = call.body.get("blocks", [])
    return json.loads(raw) if isinstance(raw, str) else list(raw)


def buttons(call: SlackCall) -> dict[str, str]:
    """action_id -> value of every button in a recorded message."""
    out: dict[str, str] = {}
    for block in blocks_of(call):
        for el in [*block.get("elements", []), block.get("accessory") or {}]:
            if el.get("type") == "button":
                out[el["action_id"]] = el["value"]
    return out


def response_urls(fake: FakeSlack, name: str, count: int = 1) -> list[SlackCall]:
    deadline = time.monotonic() + 10
    while True:
        got = [c for c in fake.calls_to("response_url") if c.path.endswith("/" + name)]
        if len(got) >= count:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"response_url {name!r} got {len(got)} call(s), expected {count}")
        time.sleep(0.05)


def stage_of(server: Server, account: str) -> str:
    return ephemeral(server.command(f"show {account}", user="U0ALICE"))


# ---------------------------------------------------------------- the test


def test_serve_slack_end_to_end(server: Server, fake: FakeSlack) -> None:
    # --- commands, acked with the answer within Slack's 3 s -------------------------------------
    reply = server.command('add "Acme Corp" --amount 50k', user="U0MARY")
    assert reply.seconds < ACK_LIMIT, reply.seconds
    text = ephemeral(reply)
    assert "Acme Corp" in text and "MQL" in text, text

    for user, frm, to in (("U0MARY", "MQL", "SQL"), ("U0ALICE", "SQL", "PQL")):
        reply = server.command(f"move Acme {to}", user=user)
        assert reply.seconds < ACK_LIMIT, reply.seconds
        text = ephemeral(reply)
        assert "Acme Corp" in text and frm in text and to in text, text

    # --- the owner channel hears of each change ---------------------------------------------------
    posted_to(fake, "C0MARKETING", "Acme Corp", "MQL")
    for frm, to in (("MQL", "SQL"), ("SQL", "PQL")):
        call = posted_to(fake, "C0SALES", "Acme Corp", frm, to)
        assert call.token == "xoxb-test"

    # --- the approval gate, decided by buttons --------------------------------------------------
    text = ephemeral(server.command("move Acme P0 test email sent", user="U0ALICE"))
    assert "Acme Corp" in text and "approval" in text.lower(), text
    card = posted_to(fake, "C0SALES", "Acme Corp", "P0")
    values = buttons(card)
    assert set(values) >= {"stagebot:approve", "stagebot:reject"}, values
    approve = values["stagebot:approve"]

    assert server.press(approve, "stagebot:approve", user="U0ALICE", name="alice").status == 200
    [refusal] = response_urls(fake, "alice")
    assert refusal.body.get("response_type") == "ephemeral", refusal.body
    assert "approver" in str(refusal.body.get("text", "")).lower(), refusal.body
    assert "Stage: PQL" in stage_of(server, "Acme")  # nothing changed
    assert fake.calls_to("chat.update") == []

    assert server.press(approve, "stagebot:approve", user="U0BOSS", name="boss").status == 200
    [update] = fake.wait_for("chat.update", 1, timeout=NOTIFY_TIMEOUT)
    assert update.body["channel"] == "C0SALES" and update.body["ts"] == card.response["ts"]
    updated = json.dumps({"text": update.body.get("text"), "blocks": blocks_of(update)})
    assert "U0BOSS" in updated and "approved" in updated.lower(), updated
    assert "stagebot:approve" not in updated  # the buttons are gone
    assert "test email sent" in updated and "50,000" in updated  # the request's fields are kept
    [boss_answer] = response_urls(fake, "boss")
    assert boss_answer.body.get("response_type") == "ephemeral"
    assert "Stage: P0" in stage_of(server, "Acme")

    assert server.press(approve, "stagebot:approve", user="U0BOSS", name="again").status == 200
    [again] = response_urls(fake, "again")
    assert "already decided by" in str(again.body.get("text", "")), again.body
    assert again.body.get("response_type") == "ephemeral"

    # --- forged, stale, malformed and misrouted requests ----------------------------------------
    body = slash_command("list", user="U0ALICE", response_url=fake.response_url("forged"))
    forged = signed_headers(body, secret="not-the-secret", content_type=FORM)
    assert server.request("POST", "/slack/events", body, forged).status == 401
    stale = signed_headers(body, timestamp=int(time.time()) - 600, content_type=FORM)
    assert server.request("POST", "/slack/events", body, stale).status == 401

    bad_input: dict[str, tuple[str, ...]] = {
        "frobnicate Acme": ("Unknown command", "frobnicate", "help"),
        "show Nonexistent": ("No account", "Nonexistent"),
        "move Acme MQL": ("Cannot move", "P0", "MQL", "you can move to"),  # illegal: P0 -> MQL
        "": ("Usage",),
        "show " + "x" * 2995: ("3000 characters",),
        "show payload": ("No account", "payload"),  # bolt alone would drop a form body containing "payload"
    }
    for command_text, expected in bad_input.items():
        reply = server.command(command_text, user="U0ALICE")
        assert reply.status == 200, (command_text[:40], reply.status, reply.body[:300])
        text = ephemeral(reply)
        assert all(f.lower() in text.lower() for f in expected), (command_text[:40], text[:300])
        assert reply.seconds < ACK_LIMIT, (command_text[:40], reply.seconds)
    assert "Acme Corp" in ephemeral(server.command("move Acme P1 payload verified", user="U0ALICE"))

    junk = "{not json"
    malformed = server.request("POST", "/slack/events", junk, signed_headers(junk, content_type=JSON))
    assert 400 <= malformed.status < 500, malformed
    assert server.request("GET", "/slack/events").status == 405
    assert server.request("GET", "/nowhere").status == 404
    assert server.request("GET", "/healthz").status == 200

    # --- App Home, once per event even when Slack retries ---------------------------------------
    home = {"type": "app_home_opened", "user": "U0BOSS", "channel": "D0BOSS", "tab": "home", "event_ts": "1.0"}
    assert server.event(home, event_id="Ev0HOME1").status == 200
    [published] = fake.wait_for("views.publish", 1, timeout=10)
    assert published.body["user_id"] == "U0BOSS"
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert server.event(home, event_id="Ev0HOME1", extra=retry).status == 200
    other = {**home, "user": "U0CAROL", "channel": "D0CAROL"}
    assert server.event(other, event_id="Ev0HOME2").status == 200
    fake.wait_for("views.publish", 2, timeout=10)
    time.sleep(0.5)  # room for a (wrong) late publish of the retry
    assert [c.body["user_id"] for c in fake.calls_to("views.publish")] == ["U0BOSS", "U0CAROL"]

    # --- SIGTERM: a clean exit -------------------------------------------------------------------
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"stagebot serve did not exit within {STOP_TIMEOUT}s of SIGTERM:\n{server.stderr()}")
    log = server.stderr()
    assert code == 0, log
    assert "Traceback" not in log, log
