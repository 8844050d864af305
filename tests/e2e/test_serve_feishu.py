"""`stagebot serve` as a real process with Feishu in webhook mode: encrypted, signed requests over real HTTP,
a fake Feishu Open API in the test process.

The process is started as an admin would start it (`python -m bot serve --config ...`, the four FEISHU_* secrets
in its environment, `[server] port = 0`) and driven over loopback HTTP the way Feishu drives it: URL verification,
messages with commands, card-button callbacks, forged and malformed requests. What the bot sends to Feishu is
recorded by `FakeFeishu`. One process serves the whole module (lark-oapi takes seconds to import), logging JSON
(STAGEBOT_LOG_FORMAT=json); the last test stops it with SIGTERM and checks the exit code and the log, so the tests
run in file order.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.feishu.conftest import (
    BOT,
    ENCRYPT_KEY,
    TEAMS_TOML,
    VERIFICATION_TOKEN,
    card_buttons,
    card_texts,
    feishu_env,
)
from tests.e2e.test_serve_slack import ACK_LIMIT, NOTIFY_TIMEOUT, STOP_TIMEOUT, Reply, port_from_log, stop, wait_healthy
from tests.fakes.feishu_api import FakeFeishu, Message
from tests.fakes.feishu_requests import card_action, envelope, signed, text_message, url_verification

pytestmark = pytest.mark.slow  # starts `stagebot serve` as a subprocess

REPO = Path(__file__).resolve().parents[2]
EVENTS = "/feishu/events"
REPLY_TIMEOUT = 10.0

CONFIG = (
    """\
[database]
url = "sqlite:///{db}"

[server]
host = "127.0.0.1"
port = 0

[feishu]
enabled = true
mode = "webhook"
domain = "{api}"

[scheduler]
enabled = false

[access]
admins = ["feishu:ou_admin"]

"""
    + TEAMS_TOML
)


def mid() -> str:
    return f"om_{uuid.uuid4().hex[:16]}"


class FeishuServer:
    """The `stagebot serve` subprocess and a client that speaks to it as Feishu does.

    Has what the Slack test's `wait_healthy` uses (proc, request, stderr), so that helper serves here too.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, fake: FakeFeishu, stderr: Path, app_id: str, stdout: Path
    ) -> None:
        self.proc = proc
        self.port = port
        self.fake = fake
        self.stderr_path = stderr
        self.stdout_path = stdout
        self.app_id = app_id

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None) -> Reply:
        data = body.encode("utf-8") if isinstance(body, str) else body
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            started = time.monotonic()
            # http.client sends header names exactly as given (lower-case ones stay lower-case on the wire).
            conn.request(method, path, body=data or None, headers=headers or {})
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", errors="replace")
            return Reply(resp.status, text, time.monotonic() - started)
        finally:
            conn.close()

    def send(self, payload: dict[str, Any], **signing: Any) -> Reply:
        body, headers = signed(payload, encrypt_key=ENCRYPT_KEY, **signing)
        return self.request("POST", EVENTS, body, headers)

    def event(self, event_type: str, event: dict[str, Any], **signing: Any) -> Reply:
        return self.send(envelope(event_type, event, token=VERIFICATION_TOKEN, app_id=self.app_id), **signing)

    def say(self, text: str, *, open_id: str, message_id: str, **kw: Any) -> Reply:
        """A text message to the bot (a direct chat unless chat_type="group"); acked 200 within Feishu's 3 s."""
        reply = self.event("im.message.receive_v1", text_message(text, open_id=open_id, message_id=message_id, **kw))
        assert reply.status == 200, f"{reply.status}: {reply.body}"
        assert reply.seconds < ACK_LIMIT, f"{text!r} acked in {reply.seconds:.2f}s"
        return reply

    def press(self, value: Any, *, open_id: str, open_message_id: str) -> Reply:
        event = card_action({}, open_id=open_id, open_message_id=open_message_id)
        event["action"]["value"] = value
        return self.event("card.action.trigger", event)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFeishu]:
    # The lark-oapi client (and its token cache) lives in the subprocess: no reset_lark_token_cache() needed here.
    with FakeFeishu(bot_open_id=BOT) as f:
        yield f


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeFeishu) -> Iterator[FeishuServer]:
    tmp = tmp_path_factory.mktemp("serve_feishu")
    cfg = tmp / "stagebot.toml"
    cfg.write_text(textwrap.dedent(CONFIG).format(db=tmp / "stagebot.db", api=fake.url))
    app_id = f"cli_{uuid.uuid4().hex[:12]}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "STAGEBOT_LOG_FORMAT": "json",
        **feishu_env(app_id),
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
        srv = FeishuServer(proc, port_from_log(err, proc), fake, err, app_id, out)
        wait_healthy(srv)  # type: ignore[arg-type]  # duck-typed: proc, request, stderr
        yield srv
    finally:
        stop(proc)


# ---------------------------------------------------------------- helpers


def reply_to(server: FeishuServer, message_id: str) -> Message:
    """The bot's (first) reply to a message, waited for."""

    def replies() -> list[Message]:
        return [m for m in server.fake.messages if m.reply_to == message_id]

    if not server.fake.wait_for(lambda: bool(replies()), REPLY_TIMEOUT):
        pytest.fail(f"no reply to {message_id} within {REPLY_TIMEOUT}s; log:\n{server.stderr()[-3000:]}")
    return replies()[0]


def answer(server: FeishuServer, text: str, *, open_id: str = "ou_admin", **kw: Any) -> str:
    """Say `text` to the bot and return the English text of the card it replies with."""
    message_id = mid()
    server.say(text, open_id=open_id, message_id=message_id, **kw)
    got = reply_to(server, message_id)
    assert got.msg_type == "interactive", got
    return card_texts(got.content)


def card_in(server: FeishuServer, chat: str, predicate: Callable[[Message], bool]) -> Message:
    """The first interactive message posted (not replied) to `chat` that satisfies `predicate` (waited for)."""

    def found() -> list[Message]:
        return [
            m
            for m in server.fake.messages
            if m.receive_id == chat and m.reply_to is None and m.msg_type == "interactive" and predicate(m)
        ]

    if not server.fake.wait_for(lambda: bool(found()), NOTIFY_TIMEOUT):
        seen = [card_texts(m.content) for m in server.fake.messages if m.receive_id == chat]
        pytest.fail(f"no matching card in {chat} within {NOTIFY_TIMEOUT}s; got {seen}")
    return found()[0]


def toast_text(reply: Reply) -> str:
    return str(reply.json["toast"]["i18n"]["en_us"])


# ---------------------------------------------------------------- the tests


def test_url_verification_and_commands_by_direct_message(server: FeishuServer) -> None:
    reply = server.send(url_verification("c-e2e-123", VERIFICATION_TOKEN))
    assert reply.status == 200 and reply.json == {"challenge": "c-e2e-123"}, reply

    said = answer(server, "add Acme --stage P1")
    assert "Acme" in said, said

    said = answer(server, "move Acme P2 first test sent")
    assert "Acme" in said and "P2" in said, said

    def moved(m: Message) -> bool:
        texts = card_texts(m.content)
        return all(f in texts for f in ("Acme", "P1", "P2"))

    card = card_in(server, "oc_cs", moved)
    assert card.receive_id == "oc_cs" and card.msg_type == "interactive"


def test_the_approval_flow_by_card_buttons(server: FeishuServer) -> None:
    assert "Beta" in answer(server, "add Beta --stage PQL")
    assert "approval" in answer(server, "move Beta P0", open_id="ou_alice").lower()

    card = card_in(server, "oc_sales", lambda m: "Beta" in card_texts(m.content) and bool(card_buttons(m.content)))
    buttons = card_buttons(card.content)
    assert len(buttons) == 2, buttons
    approve = buttons[0]["behaviors"][0]["value"]
    assert isinstance(approve, dict) and approve.get("op") == "approve", approve

    # A sales member who is not an approver: an error toast, nothing else.
    refused = server.press(approve, open_id="ou_alice", open_message_id=card.message_id)
    assert refused.status == 200, refused
    assert refused.json["toast"]["type"] == "error", refused.json
    assert "card" not in refused.json
    assert "PQL" in answer(server, "show Beta")

    # The approver: a success toast and the decided card, within the callback (Feishu gives up at 3 s).
    done = server.press(approve, open_id="ou_boss", open_message_id=card.message_id)
    assert done.status == 200, done
    assert done.seconds < ACK_LIMIT, f"the approve callback took {done.seconds:.2f}s"
    assert done.json["toast"]["type"] == "success", done.json
    assert done.json["card"]["type"] == "raw", done.json
    assert card_buttons(done.json["card"]["data"]) == []
    assert "P0" in answer(server, "show Beta")

    # The posted card is also updated in place (PATCH) for everyone, by the outbox.
    patched = server.fake.wait_for(lambda: any(m == card.message_id for m, _ in server.fake.patches), NOTIFY_TIMEOUT)
    assert patched, f"the approval card {card.message_id} was never patched; patches: {server.fake.patches}"
    content = next(c for m, c in server.fake.patches if m == card.message_id)
    assert card_buttons(content) == [] and "ou_boss" in card_texts(content)

    # A second press (a double click) is told the approval is already decided.
    again = server.press(approve, open_id="ou_boss", open_message_id=card.message_id)
    assert again.status == 200, again
    assert "already decided" in toast_text(again), again.json


def test_bad_requests_are_refused_never_5xx(server: FeishuServer) -> None:
    def command(message_id: str) -> dict[str, Any]:
        event = text_message("list", open_id="ou_admin", message_id=message_id)
        return envelope("im.message.receive_v1", event, token=VERIFICATION_TOKEN, app_id=server.app_id)

    tampered_id = mid()
    body, headers = signed(command(tampered_id), encrypt_key=ENCRYPT_KEY)
    headers["X-Lark-Signature"] = "0" * 64
    tampered = server.request("POST", EVENTS, body, headers)
    assert tampered.status == 401, tampered

    stale_id = mid()
    body, headers = signed(command(stale_id), encrypt_key=ENCRYPT_KEY, timestamp=int(time.time()) - 600)
    stale = server.request("POST", EVENTS, body, headers)
    assert stale.status == 401, stale

    junk = server.request("POST", EVENTS, b"{not json", {"Content-Type": "application/json"})
    assert junk.status == 400, junk

    wrong_method = server.request("GET", EVENTS)
    assert wrong_method.status == 405, wrong_method

    lower_id = mid()
    body, headers = signed(command(lower_id), encrypt_key=ENCRYPT_KEY, lower_case_headers=True)
    assert all(name == name.lower() for name in headers)
    lower = server.request("POST", EVENTS, body, headers)
    assert lower.status == 200, lower
    reply_to(server, lower_id)

    for reply in (tampered, stale, junk, wrong_method, lower):
        assert reply.status < 500 and "Traceback" not in reply.body, reply
    time.sleep(0.2)  # room for a (wrong) late reply to a refused request
    refused = {tampered_id, stale_id}
    assert [m for m in server.fake.messages if m.reply_to in refused] == []
    assert server.request("GET", "/healthz").status == 200


def log_records(server: FeishuServer) -> list[dict[str, Any]]:
    """Every line stagebot wrote to stderr, each one a JSON record (json.loads fails the test otherwise)."""
    records = []
    for line in server.stderr().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line that is not JSON: {line!r}")
    return records


def test_malformed_requests_are_400_and_the_log_stays_json_without_tracebacks(server: FeishuServer) -> None:
    """Encrypted and signed with the right keys, wrong inside (issue 19): each is a 400 naming the field,
    logged as one JSON warning; lark-oapi never fails on them, so nothing is logged at ERROR, with a traceback,
    or as lark-oapi's own `[Lark] …` text on stdout."""
    before = len(log_records(server))

    def malformed(kind: str, event: dict[str, Any], **header: Any) -> dict[str, Any]:
        payload = envelope(kind, event, token=VERIFICATION_TOKEN, app_id=server.app_id)
        payload["header"].update(header)  # event_type too
        return payload

    def message(message_id: str) -> dict[str, Any]:
        return text_message("list", open_id="ou_admin", message_id=message_id)

    wrong_type = message(mid())
    wrong_type["message"] = "nonsense"  # lark-oapi's UnmarshalException
    cases = [
        ("header.event_type", malformed("im.message.receive_v1", message(mid()), event_type=["x"])),
        ("header.event_id", malformed("im.message.receive_v1", message(mid()), event_id="e" * 300)),
        ("header.event_id", malformed("im.message.receive_v1", message(mid()), event_id="ev\x00")),
        ("event.message.message_id", malformed("im.message.receive_v1", message("om_\x00"))),
        ("event.message.message_id", malformed("im.message.receive_v1", message("om_" + "x" * 300))),
        ("event.message", malformed("im.message.receive_v1", wrong_type)),
        ("event.operator.open_id", malformed("card.action.trigger", card_action({"v": 1}, open_id="ou_\x00"))),
    ]
    no_event = malformed("im.message.receive_v1", {})
    del no_event["event"]
    cases.append(("event", no_event))
    for field, payload in cases:
        reply = server.send(payload)
        assert reply.status == 400 and field in reply.json["error"], (field, reply)

    challenge = server.send(url_verification('a"b}\\', VERIFICATION_TOKEN))
    assert challenge.status == 200 and challenge.json == {"challenge": 'a"b}\\'}, challenge

    time.sleep(0.3)  # room for a (wrong) late reply or log line
    records = log_records(server)[before:]
    refused = [r for r in records if r["message"].startswith("Feishu request refused")]
    assert len(refused) == len(cases), records
    assert all(r["level"] == "warning" and "exc" not in r for r in refused), refused
    loud = [r for r in records if r["level"] in ("error", "critical") or "exc" in r or r["logger"] == "Lark"]
    assert loud == [], loud
    assert "Traceback" not in server.stderr()
    assert "[Lark]" not in server.stdout()


def test_sigterm_stops_it_cleanly(server: FeishuServer) -> None:
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"stagebot serve did not exit within {STOP_TIMEOUT}s of SIGTERM:\n{server.stderr()}")
    took = time.monotonic() - started
    log = server.stderr()
    assert code == 0, log
    assert took < 5.0, f"SIGTERM took {took:.2f}s to stop it:\n{log}"
    assert "Traceback" not in log, log
    assert log_records(server), "the whole run logged JSON lines only"
    assert "[Lark]" not in server.stdout()
