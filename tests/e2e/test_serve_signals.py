"""The signals API (`POST /api/v1/signals`) of `stagebot serve`, run as a subprocess and driven over
real HTTP: a signal ticks a checklist item and a complete P2 goes live; every bad input is a 4xx
with a JSON error and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.e2e.test_serve_slack import REPO, Reply, Server, port_from_log, stop, wait_healthy

pytestmark = pytest.mark.slow  # starts `stagebot serve` as a subprocess

TOKEN = "test-api-token-" + uuid.uuid4().hex


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[server]\nport = 0\n[scheduler]\nenabled = false\n'
    )
    # Two accounts to send signals about, made with the console first.
    import io

    script = "add Acme --stage P2 --external-id ext-acme\nadd Beta --stage P1\n"
    assert main(["console", "--config", str(cfg)], stdin=io.StringIO(script), stdout=io.StringIO()) == 0
    err = tmp_path / "serve.stderr"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "STAGEBOT_API_TOKEN": TOKEN}
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(cfg)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        srv = Server(proc, port_from_log(err, proc), None, err)  # type: ignore[arg-type]  # no Slack here
        wait_healthy(srv)
        yield srv
    finally:
        stop(proc)
        log = err.read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]


def post(server: Server, body: Any, token: str | None = TOKEN, raw: str | None = None) -> Reply:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return server.request("POST", "/api/v1/signals", raw if raw is not None else json.dumps(body), headers)


def test_signals_tick_the_checklist_and_are_applied_once(server: Server) -> None:
    first = post(server, {"account": "Acme", "signal": "test_email_sent", "id": "evt-1", "source": "product"})
    assert first.status == 200 and first.json["ticked"] == ["first_test"] and first.json["replayed"] is False
    again = post(server, {"account": "Acme", "signal": "test_email_sent", "id": "evt-1", "source": "product"})
    assert again.status == 200 and again.json["replayed"] is True
    live = post(server, {"external_id": "ext-acme", "signal": "domain_verified", "at": "2026-11-27T10:00:00+08:00"})
    assert live.status == 200 and live.json["moved_to"] == "P3" and live.json["stage"] == "P3"
    usage = post(server, {"account": "Beta", "signal": "daily_send_volume", "value": 0})
    assert usage.status == 200 and usage.json["ticked"] == []


@pytest.mark.parametrize(
    ("body", "token", "raw", "status", "says"),
    [
        ({"account": "Acme", "signal": "test_email_sent"}, None, None, 401, "bearer token"),
        ({"account": "Acme", "signal": "test_email_sent"}, "wrong", None, 401, "bearer token"),
        (None, TOKEN, "{not json", 400, "not JSON"),
        (None, TOKEN, "[1, 2]", 400, "JSON object"),
        ({"signal": "test_email_sent"}, TOKEN, None, 422, "exactly one of"),
        ({"account": "Acme", "external_id": "x", "signal": "test_email_sent"}, TOKEN, None, 422, "exactly one of"),
        ({"account": "Acme"}, TOKEN, None, 422, "signal"),
        ({"account": "Acme", "signal": "test_email_sent", "value": "lots"}, TOKEN, None, 422, "value"),
        ({"account": "Acme", "signal": "test_email_sent", "at": "yesterday"}, TOKEN, None, 422, "at"),
        ({"account": "Acme", "signal": "test_email_sent", "at": "2026-11-27T10:00:00"}, TOKEN, None, 422, "at"),
        ({"account": "Acme", "signal": "test_email_sent", "colour": "red"}, TOKEN, None, 422, "colour"),
        ({"account": "Nobody", "signal": "test_email_sent"}, TOKEN, None, 404, "Nobody"),
        ({"external_id": "ext-404", "signal": "test_email_sent"}, TOKEN, None, 404, "ext-404"),
        ({"account": "Acme", "signal": "made_up"}, TOKEN, None, 422, "Unknown signal"),
    ],
)
def test_bad_signals_are_4xx_with_a_reason_and_change_nothing(
    server: Server, body: Any, token: str | None, raw: str | None, status: int, says: str
) -> None:
    reply = post(server, body, token=token, raw=raw)
    assert reply.status == status, reply.body
    assert says in reply.json.get("error", "") + json.dumps(reply.json.get("problems", []))
    ok = post(server, {"account": "Acme", "signal": "test_email_sent", "id": "after"})
    assert ok.json["ticked"] == ["first_test"]  # nothing of the refused signal was applied before
