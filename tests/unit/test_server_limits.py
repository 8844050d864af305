"""The `[server]` resource limits: their defaults, the values refused (with the key named), the
app's own body check taking the configured limit, and the open-file limit raised to fit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.config import ConfigError, ServerSection, load_settings
from bot.server import MAX_BODY, WsgiApp
from tests.wsgi import call_wsgi

REPO = Path(__file__).resolve().parents[2]


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


def child(script: str) -> str:
    """Run `script` in a child process, so this one's open-file limit is left alone; its stdout."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.mark.slow  # a child process
def test_the_open_file_limit_is_raised_to_fit_the_connections() -> None:
    """systemd starts services with a soft limit of 1024 open files; 1000 connections need more."""
    out = child(
        """
        import resource
        from bot.listener import SPARE_FILES, fit_open_files
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert hard == resource.RLIM_INFINITY or hard >= 2 * 1000 + SPARE_FILES, hard
        print(fit_open_files(1000), resource.getrlimit(resource.RLIMIT_NOFILE) == (2 * 1000 + SPARE_FILES, hard))
        """
    )
    assert out.split() == ["1000", "True"], out


@pytest.mark.slow  # a child process
def test_a_connection_limit_the_open_file_limit_cannot_hold_is_lowered_with_a_warning() -> None:
    out = child(
        """
        import logging, resource
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=__import__("sys").stdout)
        from bot.listener import fit_open_files
        resource.setrlimit(resource.RLIMIT_NOFILE, (456, 456))
        print(fit_open_files(1000))
        """
    )
    assert out.splitlines() == [
        "the open-file limit (456) leaves room for 100 connections, not [server] connection_limit = 1000; "
        "raise it (systemd: LimitNOFILE=2256) or lower connection_limit",
        "100",
    ], out
