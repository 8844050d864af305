"""lark_oapi costs seconds and 100+ MB to import: only a deployment with Feishu enabled may load it.

Each case runs in a fresh interpreter, since this test process has long imported lark_oapi itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs stagebot in subprocesses

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """\
    import io, sys
    from bot.cli import main
    from bot.config import load_settings
    from bot.serve import start

    code = main(["console", "--config", sys.argv[1]], stdin=io.StringIO("help\\n"), stdout=io.StringIO())
    assert code == 0, code
    running = start(load_settings(sys.argv[1]), workers=2)
    running.stop()
    print("lark_oapi" in sys.modules)
    """
)


def config(tmp_path: Path, *, slack: bool, feishu: bool) -> Path:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [database]
            url = "sqlite:///{tmp_path / "stagebot.db"}"
            [slack]
            enabled = {str(slack).lower()}
            api_url = "http://127.0.0.1:9/api/"
            [feishu]
            enabled = {str(feishu).lower()}
            domain = "http://127.0.0.1:9"
            [scheduler]
            enabled = false
            """
        )
    )
    return cfg


@pytest.mark.parametrize(
    ("slack", "feishu", "loaded"),
    [(False, False, False), (True, False, False), (False, True, True)],
    ids=["console only", "slack only", "feishu enabled"],
)
def test_lark_oapi_is_imported_only_when_feishu_is_enabled(
    tmp_path: Path, slack: bool, feishu: bool, loaded: bool
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "s",
        "FEISHU_APP_ID": "cli_lazy",
        "FEISHU_APP_SECRET": "s",
        "FEISHU_VERIFICATION_TOKEN": "v",
        "FEISHU_ENCRYPT_KEY": "k",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(config(tmp_path, slack=slack, feishu=feishu))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(loaded)
