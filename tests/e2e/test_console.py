"""`stagebot console` as a user runs it: a script piped into a subprocess, no TTY."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs `stagebot console` as a subprocess

SCRIPT = """\
add "Acme Corp" --amount 50k --segment enterprise
move acme SQL first call held
move Acme P3
move Acme PQL api debugging done
move Acme P0 test email sent
approve 1
approve 1
claim Acme
move Acme P1 kick-off booked
推进 Acme 测试发送 first test sent
move acme Go-Live
move acme P4
move acme P5 stable for three weeks
history acme
show acme
"""


def run_console(cwd: Path, stdin: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def test_piped_script_takes_an_account_from_mql_to_p5(tmp_path: Path) -> None:
    res = run_console(tmp_path, SCRIPT)
    out = res.stdout
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in out + res.stderr
    # The illegal move is refused with the stages that are allowed instead.
    assert (
        "Cannot move from SQL Opportunity to P3 Go-Live. From SQL you can move to: PQL Product-qualified, P0 Signed."
        in out
    )
    # The approval is requested in the Sales channel with its buttons, pressed, and a second press refused.
    assert "[#sales] Approval #1:" in out and "[Approve → approve 1] [Reject → reject 1]" in out
    assert "Approval #1 approved: Acme Corp is now in P0 Signed" in out
    assert "Approval #1 was already decided by console:local" in out
    # The handoff to CS was announced with a Take ownership button, and taken.
    assert "[#cs] Handoff: Acme Corp entered P0 Signed" in out and "You now own Acme Corp." in out
    # History lists every step, in order, with who and why.
    history = out[out.index("Acme Corp (#1) — history:") :]
    steps = [
        "created in MQL",
        "MQL Lead (线索) → SQL Opportunity (商机) — first call held",
        "SQL Opportunity (商机) → PQL Product-qualified (产品验证) — api debugging done",
        "PQL Product-qualified (产品验证) → P0 Signed (签约待接入) — approval #1 approved",
        "P0 Signed (签约待接入) → P1 Integration (技术对接) — kick-off booked",
        "P1 Integration (技术对接) → P2 Testing (测试发送) — first test sent",
        "P2 Testing (测试发送) → P3 Go-Live (初期生产)",
        "P3 Go-Live (初期生产) → P4 Stable (稳定发送)",
        "P4 Stable (稳定发送) → P5 Mature (成熟客户) — stable for three weeks",
    ]
    positions = [history.index(s) for s in steps]
    assert positions == sorted(positions)
    assert "@local via console" in history
    assert "Stage: P5 Mature (成熟客户)" in out
    assert (tmp_path / "stagebot.db").exists()


def test_state_survives_between_runs_and_bad_input_gets_short_answers(tmp_path: Path) -> None:
    run_console(tmp_path, 'add "Beta Ltd"\nadd "Beta Labs"\n')
    res = run_console(
        tmp_path,
        textwrap.dedent(
            """\
            show beta
            move "Beta Ltd" P9
            move Nobody P2
            move "Beta Ltd" SQL
            list
            move Beta
            """
        ),
    )
    out = res.stdout
    assert res.returncode == 0 and "Traceback" not in out + res.stderr
    assert '"beta" matches several accounts: Beta Labs, Beta Ltd' in out
    assert 'Unknown stage "P9". Stages: MQL, SQL, PQL, P0, P1, P2, P3, P4, P5, CHURNED, ARCHIVED.' in out
    assert 'No account named "Nobody".' in out
    assert "Beta Ltd: MQL Lead (线索) → SQL Opportunity (商机)." in out
    assert "Missing the stage: `move Beta STAGE [REASON...]`" in out  # the account was given


def test_as_a_member_follows_team_permissions(tmp_path: Path) -> None:
    (tmp_path / "stagebot.toml").write_text(
        textwrap.dedent(
            """\
            [teams.marketing]
            members = ["slack:U0MARY"]
            [teams.sales]
            members = ["slack:U0ALICE"]
            approvers = ["slack:U0BOSS"]
            """
        )
    )
    out = run_console(tmp_path, "add Gamma\nmove Gamma SQL\nmove Gamma PQL\n", "--as", "slack:U0MARY").stdout
    assert "Gamma: MQL Lead (线索) → SQL Opportunity (商机)." in out
    assert "Only Sales (the owners of SQL) or an admin can move Gamma." in out
    out = run_console(tmp_path, "move Gamma PQL\nmove Gamma P0\napprove 1\n", "--as", "slack:U0ALICE").stdout
    assert "needs approval" in out and "Only Sales approvers can decide approval #1." in out
    out = run_console(tmp_path, "approve 1 looks good\n", "--as", "slack:U0BOSS").stdout
    assert "Approval #1 approved: Gamma is now in P0 Signed" in out
    res = run_console(tmp_path, "help\n", "--as", "slack:U0NOBODY")
    assert res.returncode == 2 and "not a member of any team" in res.stderr


@pytest.mark.parametrize("lang_args", [("--lang", "zh")])
def test_chinese_replies(tmp_path: Path, lang_args: tuple[str, str]) -> None:
    out = run_console(tmp_path, "新建 示例科技\n推进 示例科技 商机 首次沟通\n推进 示例科技 P3\n", *lang_args).stdout
    assert "已新建 示例科技 (#1),阶段 MQL 线索 (Lead)。" in out
    assert "示例科技:MQL 线索 (Lead) → SQL 商机 (Opportunity)。" in out
    assert "不能从SQL 商机推进到P3 初期生产。SQL 可以推进到:PQL 产品验证、P0 签约待接入。" in out


def test_as_a_person_of_the_people_directory(tmp_path: Path) -> None:
    (tmp_path / "stagebot.toml").write_text(
        textwrap.dedent(
            """\
            [people.alice]
            name = "Alice Wang"
            email = "alice@acme.example"
            slack = "U0ALICE"
            feishu = "ou_alice"
            [people.sam]
            name = "Sam Chen"
            feishu = "ou_sam"
            [teams.sales]
            members = ["alice", "sam"]
            """
        )
    )
    script = "add Delta --stage SQL\nassign Delta alice@acme.example\nassign Delta mallory\nlist --mine\n"
    out = run_console(tmp_path, script, "--as", "feishu:ou_alice").stdout
    assert "Delta is now owned by Alice Wang." in out
    assert '"mallory" is not in the people directory or any team' in out and "alice, sam" in out
    assert "#1 Delta  Alice Wang" in out  # --mine from Feishu finds what she owns as herself
    out = run_console(tmp_path, "assign Delta sam\nlist --mine\n", "--as", "alice").stdout
    assert "Delta is now owned by Sam Chen." in out and "ou_sam" not in out
