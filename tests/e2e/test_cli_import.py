"""`stagebot import` and `stagebot export` end to end: a bad file is refused with every bad row named
and the database untouched; a good one is applied and summarised; an export writes the accounts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from lifecycle.db.engine import make_engine
from lifecycle.db.models import Account, StageChange, table

HEADER = "name,stage,owner,amount,segment,external_id,contract_end\n"
GOOD = HEADER + "Acme Corp,MQL,slack:U0ALICE,50000.00,enterprise,SF-1,2026-09-01\nGlobex,P2,,,,,\n"


def run(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    for name in ("STAGEBOT_CONFIG", "STAGEBOT_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    code = main(args, stdin=io.StringIO(""), stdout=out)
    return code, out.getvalue()


def counts(cwd: Path) -> tuple[int, int]:
    engine = make_engine(f"sqlite:///{cwd / 'stagebot.db'}")
    try:
        with engine.connect() as conn:
            accounts = conn.execute(select(func.count()).select_from(table(Account))).scalar_one()
            history = conn.execute(select(func.count()).select_from(table(StageChange))).scalar_one()
    finally:
        engine.dispose()
    return accounts, history


def test_bad_file_changes_nothing_and_lists_every_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.csv").write_text(GOOD)
    assert run(["import", "good.csv"], tmp_path, monkeypatch)[0] == 0
    before = counts(tmp_path)
    capsys.readouterr()
    bad = HEADER + (
        "New Co,MQL,,,,SF-2,\n"
        "Hooli,MQL,,lots,,SF-3,\n"
        "Umbrella,Nowhere,,,,SF-4,\n"
        "Stark,MQL,,,,SF-3,\n"
        ",MQL,,,,SF-5,\n"
        "Wayne,MQL,,,,SF-6,soon\n"
        "Tyrell,MQL,alice,,,SF-7,\n"
    )
    (tmp_path / "bad.csv").write_text(bad)
    code, out = run(["import", "bad.csv"], tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    for line in (
        'row 3, amount: "lots" is not an amount',
        "row 4, stage: ",
        "row 5, external_id: ",
        "row 6, name: the name is missing",
        "row 7, contract_end: ",
        "row 8, owner: ",
        "6 problem(s); nothing was imported",
    ):
        assert line in err, line
    assert counts(tmp_path) == before


def test_good_file_is_imported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An Excel "CSV UTF-8" file starts with a byte-order mark; the header must still be read.
    (tmp_path / "good.csv").write_text("\ufeff" + GOOD, encoding="utf-8")
    code, out = run(["import", "good.csv"], tmp_path, monkeypatch)
    assert (code, out) == (0, "imported good.csv: 2 added, 0 updated, 0 unchanged\n")
    assert "[" not in capsys.readouterr().err  # no progress bar when stderr is not a terminal
    code, out = run(["import", "good.csv"], tmp_path, monkeypatch)
    assert (code, out) == (0, "imported good.csv: 0 added, 0 updated, 2 unchanged\n")
    assert counts(tmp_path) == (2, 2)


def test_export_writes_the_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.csv").write_text(GOOD)
    assert run(["import", "in.csv"], tmp_path, monkeypatch)[0] == 0
    code, _ = run(["export", "out.csv"], tmp_path, monkeypatch)
    assert code == 0 and "exported 2 accounts to out.csv" in capsys.readouterr().err
    assert (tmp_path / "out.csv").read_text() == GOOD
    code, out = run(["export", "-"], tmp_path, monkeypatch)
    assert code == 0 and out == GOOD


def test_missing_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(["import", "nope.csv"], tmp_path, monkeypatch)
    assert code == 2 and "no such file: nope.csv" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good.csv").write_text(GOOD)
    tty = Terminal()
    monkeypatch.setattr("sys.stderr", tty)
    assert run(["import", "good.csv"], tmp_path, monkeypatch)[0] == 0
    assert tty.getvalue().endswith(f"\r[{'#' * 30}] 2/2\n")


# ---------------------------------------------------------------- CRM files, dry runs, force, formats

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "crm"
# The fixtures' owners (names and emails) resolve through a real [people] directory in the config.
PEOPLE_TOML = """\
[people.alice]
name = "Alice Chen"
email = "alice@example.com"
slack = "U0ALICE"

[people.bob]
name = "Bob Li"
email = "bob@example.com"
slack = "U0BOB"

[people.carol]
name = "张伟"
email = "carol@example.com"
feishu = "ou_carol"

[teams.sales]
members = ["alice", "bob"]

[teams.cs]
members = ["carol"]
"""


def people(cwd: Path) -> None:
    """Owners by name or email, resolved by the people directory of ./stagebot.toml."""
    (cwd / "stagebot.toml").write_text(PEOPLE_TOML, encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "read_as", "added"),
    [
        ("hubspot_companies.csv", "UTF-8, comma-separated", 7),
        ("hubspot_deals.csv", "UTF-8, comma-separated", 6),
        ("salesforce_opportunities.csv", "UTF-8, comma-separated", 6),
        ("chinese_gb18030.csv", "GB18030, comma-separated", 4),
        ("unicode_text.txt", "UTF-16 LE, tab-separated", 3),
    ],
)
def test_crm_exports_import(
    name: str,
    read_as: str,
    added: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    people(tmp_path)
    (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    code, out = run(["import", name], tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert (code, out) == (0, f"imported {name}: {added} added, 0 updated, 0 unchanged\n"), err
    assert f"read {name} as {read_as}" in err


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        (
            "hubspot_companies_bad.csv",
            ["row 2, Lifecycle Stage: ", "row 4, Company owner: ", "row 8, Lifecycle Stage: "],
        ),
        (
            "hubspot_deals_bad.csv",
            ['row 6, Amount: "TBD" is not an amount', 'row 7, Deal Stage: "Closed Lost" (HubSpot deal stage)'],
        ),
        ("salesforce_opportunities_bad.csv", ["row 3, Amount: ", "row 4, Contract End Date: ambiguous: 4/1/2027"]),
        (
            "chinese_gb18030_bad.csv",
            ['row 3, 阶段: "洽谈中" is not a stage', 'row 5, 外部编号: "CN-001" is also on row 2'],
        ),
    ],
)
def test_bad_crm_files_change_nothing(
    name: str, lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    people(tmp_path)
    (tmp_path / "good.csv").write_text(GOOD)
    assert run(["import", "good.csv"], tmp_path, monkeypatch)[0] == 0
    before = (tmp_path / "stagebot.db").read_bytes()
    capsys.readouterr()
    (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    code, out = run(["import", name], tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert (code, out) == (1, "")
    for line in [*lines, "; nothing was imported"]:
        assert line in err, line
    assert (tmp_path / "stagebot.db").read_bytes() == before


def test_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.csv").write_text(GOOD)
    assert run(["import", "good.csv"], tmp_path, monkeypatch)[0] == 0
    before = (tmp_path / "stagebot.db").read_bytes()
    changed = HEADER + "Acme Corp,SQL,slack:U0ALICE,70000,enterprise,SF-1,2026-09-01\nGlobex,P2,,,,,\nHooli,,,,,,\n"
    (tmp_path / "changed.csv").write_text(changed)
    capsys.readouterr()
    code, out = run(["import", "changed.csv", "--dry-run"], tmp_path, monkeypatch)
    assert code == 0
    assert out == (
        "dry run of changed.csv, nothing was changed: would add 1, update 1, leave 1 unchanged\n"
        "row 2 Acme Corp: stage MQL → SQL, amount 50,000.00 → 70,000.00\n"
        "row 4 Hooli: new in MQL\n"
    )
    assert (tmp_path / "stagebot.db").read_bytes() == before
    # Problems are listed too (exit 1), and still nothing changes.
    (tmp_path / "bad.csv").write_text(HEADER + "Acme Corp,P3,,,,SF-1,\nGlobex,P1,,,,,\nWayne,MQL,,lots,,,\n")
    code, out = run(["import", "bad.csv", "--dry-run"], tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert code == 1
    assert out.splitlines()[0] == "dry run of bad.csv, nothing was changed: would add 0, update 1, leave 0 unchanged"
    assert "row 2, stage: an import cannot move MQL → P3" not in err  # MQL → P3 is a forward path
    assert "row 3, stage: an import cannot move P2 → P1: from P2 an account moves to P3, CHURNED" in err
    assert 'row 4, amount: "lots" is not an amount' in err
    assert "2 problem(s); the import would change nothing" in err
    assert (tmp_path / "stagebot.db").read_bytes() == before


def test_a_gated_change_needs_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.csv").write_text("name,stage\nAcme,SQL\n")
    (tmp_path / "b.csv").write_text("name,stage\nAcme,PQL\n")
    (tmp_path / "c.csv").write_text("name,stage\nAcme,Closed Won\n")
    assert run(["import", "a.csv"], tmp_path, monkeypatch)[0] == 0
    assert run(["import", "b.csv"], tmp_path, monkeypatch) == (
        0,
        "row 2 Acme: stage SQL → PQL\n" + "imported b.csv: 0 added, 1 updated, 0 unchanged\n",
    )
    capsys.readouterr()
    code, _ = run(["import", "c.csv"], tmp_path, monkeypatch)
    assert code == 1
    assert "row 2, stage: PQL → P0 passes the approval gate PQL → P0 (Sales approves)" in capsys.readouterr().err
    code, out = run(["import", "c.csv", "--force"], tmp_path, monkeypatch)
    assert (code, out) == (
        0,
        "row 2 Acme: stage PQL → P0 (forced)\nimported c.csv: 0 added, 1 updated, 0 unchanged, 1 forced\n",
    )
    assert counts(tmp_path) == (1, 3)


def test_date_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "us.csv").write_text("name,contract end\nAcme,3/5/2026\n")
    code, _ = run(["import", "us.csv"], tmp_path, monkeypatch)
    assert code == 1
    assert (
        "row 2, contract end: ambiguous: 3/5/2026 could be 3 May or March 5; pass --date-format DMY or MDY"
        in capsys.readouterr().err
    )
    assert run(["import", "us.csv", "--date-format", "dmy"], tmp_path, monkeypatch)[0] == 0
    assert run(["export", "-"], tmp_path, monkeypatch)[1].splitlines()[1] == "Acme,MQL,,,,,2026-05-03"


def test_an_unreadable_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.csv").write_bytes(b"name\nAcme\x80\n")
    code, _ = run(["import", "x.csv"], tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert (
        code == 2
        and 'cannot read x.csv: it is not UTF-8, UTF-16 or GB18030 text (byte 9); save it as "CSV UTF-8"' in err
    )
    with pytest.raises(SystemExit) as exc:
        run(["import", "x.csv", "--date-format", "YMD"], tmp_path, monkeypatch)
    assert exc.value.code == 2


def test_export_for_excel_and_crms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in.csv").write_text("name,stage,amount\n北京星云,P0,300000\n")
    assert run(["import", "in.csv"], tmp_path, monkeypatch)[0] == 0
    assert run(["export", "x.csv", "--excel"], tmp_path, monkeypatch)[0] == 0
    assert (tmp_path / "x.csv").read_bytes() == (
        "\ufeffname,stage,owner,amount,segment,external_id,contract_end\r\n北京星云,P0,,300000.00,,,\r\n"
    ).encode()
    code, out = run(["export", "-", "--format", "hubspot"], tmp_path, monkeypatch)
    assert code == 0 and out.splitlines() == [
        "Company name,Lifecycle Stage,Company owner,Amount,Segment,Record ID,Renewal Date",
        "北京星云,Customer,,300000.00,,,",
    ]
    code, out = run(["export", "-", "--format", "salesforce"], tmp_path, monkeypatch)
    assert code == 0
    assert out.splitlines()[1] == "北京星云,Closed Won,,300000.00,,,"
