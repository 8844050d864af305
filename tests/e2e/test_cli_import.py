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
