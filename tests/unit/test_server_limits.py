"""The `[server]` resource limits: their defaults, the values refused (with the key named), and
the app's own body check taking the configured limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import ConfigError, ServerSection, load_settings
from bot.server import MAX_BODY, WsgiApp
from tests.wsgi import call_wsgi


def problems(tmp_path: Path, server_toml: str) -> list[str]:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(f"[server]\n{server_toml}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(str(cfg), {})
    return err.value.problems


def test_defaults_hold_many_slow_clients_and_a_megabyte_body(tmp_path: Path) -> None:
    server = load_settings(None, {}).config.server
    assert (server.connection_limit, server.channel_timeout, server.max_body_bytes) == (1000, 30, 1_000_000)
    assert ServerSection().max_body_bytes == MAX_BODY  # the app's check and the server's agree by default
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text("[server]\nconnection_limit = 5000\nchannel_timeout = 75\nmax_body_bytes = 2_000_000\n")
    server = load_settings(str(cfg), {}).config.server
    assert (server.connection_limit, server.channel_timeout, server.max_body_bytes) == (5000, 75, 2_000_000)


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("connection_limit = 5", "[server.connection_limit] Input should be greater than or equal to 10"),
        ("connection_limit = 100_000", "[server.connection_limit] Input should be less than or equal to 10000"),
        ('connection_limit = "1000"', "[server.connection_limit] Input should be a valid integer"),
        ("channel_timeout = 0", "[server.channel_timeout] Input should be greater than or equal to 1"),
        ("channel_timeout = 2.5", "[server.channel_timeout] Input should be a valid integer"),
        ("channel_timeout = true", "[server.channel_timeout] Input should be a valid integer"),
        ("channel_timeout = 86400", "[server.channel_timeout] Input should be less than or equal to 3600"),
        ("max_body_bytes = 1000", "[server.max_body_bytes] Input should be greater than or equal to 65536"),
        ("max_body_bytes = 1e9", "[server.max_body_bytes] Input should be a valid integer"),
        ("max_body_bytes = 1_000_000_000", "[server.max_body_bytes] Input should be less than or equal to 100000000"),
    ],
)
def test_bad_limits_are_refused_naming_the_key(tmp_path: Path, toml: str, says: str) -> None:
    assert says in problems(tmp_path, toml)


def test_all_bad_limits_are_reported_at_once(tmp_path: Path) -> None:
    assert problems(tmp_path, "connection_limit = 1\nchannel_timeout = -1\nmax_body_bytes = 0") == [
        "[server.connection_limit] Input should be greater than or equal to 10",
        "[server.channel_timeout] Input should be greater than or equal to 1",
        "[server.max_body_bytes] Input should be greater than or equal to 65536",
    ]


def test_the_app_checks_the_configured_body_limit_too() -> None:
    """Second line behind waitress's own check: a declared length over the limit is 413 unread."""
    seen: list[bytes] = []

    def echo(raw: bytes, headers: dict[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
        seen.append(raw)
        return 200, {}, b"{}"

    app = WsgiApp(max_body=100_000)
    app.route("POST", "/echo", echo)
    status, _, body = call_wsgi(app, "POST", "/echo", b"x" * 100_001, {})
    assert status == 413 and json.loads(body) == {"error": "request body too large"} and seen == []
    status, _, _ = call_wsgi(app, "POST", "/echo", b"x" * 100_000, {})
    assert status == 200 and seen == [b"x" * 100_000]
