"""The CLI a sales-ops admin uses: check-config, db upgrade, pipeline show, and honest 'not yet's."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from bot.cli import main


def run(
    args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None, stdin: str = ""
) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    for name in ("STAGEBOT_CONFIG", "STAGEBOT_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    out = io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


def test_check_config_defaults_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(["check-config"], tmp_path, monkeypatch)
    assert code == 0
    assert "config: built-in defaults" in out and "pipeline: default" in out and out.endswith("OK\n")
    assert "database file stagebot.db does not exist yet" in out  # and check-config did not create it


def test_check_config_lists_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        textwrap.dedent(
            """\
            [database]
            url = "mysql://root@localhost/x"
            [slack]
            enabled = true
            colour = "blue"
            [scheduler]
            timezone = "Mars/Olympus"
            [teams.sales]
            members = ["alice"]
            [teams.finance]
            [pipeline]
            preset = "missing.toml"
            """
        )
    )
    code, _ = run(
        ["check-config", "--config", str(cfg)], tmp_path, monkeypatch, {"SLACK_SIGNING_SECRET": "s3cr3t-value"}
    )
    err = capsys.readouterr().err
    assert code == 1
    for fragment in (
        "[slack.colour] unknown key",
        "[scheduler.timezone]",
        "[teams.sales.members]",
        "[database] url: mysql is not supported",
        "cannot read pipeline file",
    ):
        assert fragment in err, fragment
    assert "s3cr3t-value" not in err


def test_check_config_cross_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stagebot.toml").write_text('[slack]\nenabled = true\n[teams.finance]\nmembers = ["slack:U1"]\n')
    code, _ = run(["check-config"], tmp_path, monkeypatch, {"SLACK_SIGNING_SECRET": "x"})
    err = capsys.readouterr().err
    assert code == 1
    assert "[teams.finance] is not a team of the pipeline" in err
    assert "SLACK_BOT_TOKEN is not set" in err and "SLACK_SIGNING_SECRET is not set" not in err


def test_config_option_after_the_subcommand_and_db_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "conf.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n')
    code, out = run(["db", "upgrade", "--config", str(cfg)], tmp_path, monkeypatch)
    assert code == 0 and "is at revision 0007" in out
    code, out = run(["--config", str(cfg), "check-config"], tmp_path, monkeypatch)
    assert code == 0 and "schema up to date" in out


def test_pipeline_show_table_and_mermaid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(["pipeline", "show"], tmp_path, monkeypatch)
    assert code == 0
    assert "P0 (approval: sales, reject -> SQL)" in out
    assert "测试发送" in out and "flowchart TD" in out
    assert "PQL -->|approval: sales| P0" in out and "CHURNED -->|winback| PQL" in out
    code, out = run(["pipeline", "show", "--format", "mermaid"], tmp_path, monkeypatch)
    assert out.startswith("```mermaid")
    (tmp_path / "stagebot.toml").write_text('[pipeline]\npreset = "journey"\n')
    code, out = run(["pipeline", "show", "--format", "table"], tmp_path, monkeypatch)
    assert "VISITOR" in out and "LOYAL" in out


def test_report_as_text_csv_and_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["check-config"], tmp_path, monkeypatch)  # cwd and environment as in the other tests
    assert main(["console"], stdin=io.StringIO('add "Rep" --stage SQL --amount 10k\n'), stdout=io.StringIO()) == 0
    code, out = run(["report"], tmp_path, monkeypatch)
    assert code == 0 and "Report · all time" in out and "Bottleneck: SQL" in out
    code, out = run(["report", "--format", "csv"], tmp_path, monkeypatch)
    assert code == 0 and out.splitlines()[0].startswith("stage,entries,converted")
    assert "SQL,1,0,0.0000," in out
    code, _ = run(["report", "--format", "csv", "--out", str(tmp_path / "r.csv")], tmp_path, monkeypatch)
    assert code == 0 and (tmp_path / "r.csv").read_text().startswith("stage,")
    code, _ = run(["report", "--format", "png"], tmp_path, monkeypatch)
    assert code == 2 and "--format png needs --out" in capsys.readouterr().err
    code, _ = run(
        ["report", "--format", "png", "--lang", "zh", "--out", str(tmp_path / "r.png")], tmp_path, monkeypatch
    )
    assert code == 0 and (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out = run(["report", "--since", "2000-01-01", "--until", "2000-02-01"], tmp_path, monkeypatch)
    assert code == 0 and "2000-01-01 – 2000-02-01" in out and "Bottleneck" not in out  # nothing then
    code, out = run(["report", "--team", "sales", "--segment", "enterprise"], tmp_path, monkeypatch)
    assert code == 0 and "team sales, segment enterprise" in out
    code, _ = run(["report", "--since", "last tuesday"], tmp_path, monkeypatch)
    assert code == 2 and '"last tuesday" is not a date' in capsys.readouterr().err


def test_check_config_lists_notifications_that_failed_for_good(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.bootstrap import build
    from bot.config import load_settings
    from lifecycle.delivery.outbox import Delivery, DeliveryError
    from lifecycle.domain import commands as c
    from lifecycle.domain.access import Actor

    class Refusing:
        target = "console"

        def deliver(self, d: Delivery) -> list[object]:
            raise DeliveryError("C0GONE: channel_not_found", permanent=True)

    (tmp_path / "stagebot.toml").write_text(f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n')
    monkeypatch.chdir(tmp_path)
    app = build(load_settings(None, {}), notifiers={"console": Refusing()}, extra_admins=("console:local",))
    app.core.execute(c.AddAccount(actor=Actor("console", "local"), key="k1", name="Acme"))
    assert app.dispatcher.drain().dead == 1
    app.close()
    code, out = run(["check-config"], tmp_path, monkeypatch)
    assert code == 1
    assert "[console] 1 notification(s) could not be delivered: C0GONE: channel_not_found" in out
    assert "stagebot outbox retry" in out
    # After the fix, the admin sends it again; the problem is gone and the row is pending.
    code, out = run(["outbox", "retry", "--target", "console"], tmp_path, monkeypatch)
    assert code == 0 and "1 notification(s) queued again" in out
    code, out = run(["check-config"], tmp_path, monkeypatch)
    assert code == 0, out

    class Accepting:
        target = "console"

        def deliver(self, d: Delivery) -> list[object]:
            return []

    app = build(load_settings(None, {}), notifiers={"console": Accepting()})
    assert app.dispatcher.drain().delivered == 1
    app.close()


def test_socket_mode_needs_no_signing_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stagebot.toml").write_text('[slack]\nenabled = true\n[teams.sales]\nslack_channel = "C0S"\n')
    code, out = run(["check-config"], tmp_path, monkeypatch, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert code == 0, out


def test_check_config_lists_people_and_who_cannot_use_the_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    people = """\
        [people.alice]
        slack = "U0ALICE"
        feishu = "ou_alice"
        [people.zoe]
        email = "zoe@acme.example"
        [teams.sales]
        members = ["alice", "zoe"]
        """
    (tmp_path / "stagebot.toml").write_text(textwrap.dedent(people))
    code, out = run(["check-config"], tmp_path, monkeypatch)
    assert code == 0
    assert "people: 2: alice (slack+feishu), zoe (no chat id)" in out
    assert "warning: [people.zoe] has no slack or feishu id" in out
    (tmp_path / "stagebot.toml").write_text(textwrap.dedent(people) + '[people.al]\nslack = "U0ALICE"\n')
    code, _ = run(["check-config"], tmp_path, monkeypatch)
    assert code == 1
    assert "[people] slack id U0ALICE belongs to more than one person: alice, al" in capsys.readouterr().err


def test_relative_database_path_in_a_config_file_is_next_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf, here, elsewhere = tmp_path / "conf", tmp_path / "here", tmp_path / "elsewhere"
    for d in (conf, here, elsewhere):
        d.mkdir()
    cfg = conf / "stagebot.toml"
    cfg.write_text('[database]\nurl = "sqlite:///data.db"\n')
    code, _ = run(["console", "--config", str(cfg)], here, monkeypatch, stdin='add "Acme Rel" --stage SQL\n')
    assert code == 0
    assert (conf / "data.db").exists() and not (here / "data.db").exists()
    code, out = run(["export", "-", "--config", str(cfg)], elsewhere, monkeypatch)
    assert code == 0 and "Acme Rel" in out
    assert list(elsewhere.iterdir()) == []
    # ./ counts as relative; STAGEBOT_CONFIG names the file the same way
    cfg.write_text('[database]\nurl = "sqlite:///./data.db"\n')
    code, out = run(["export", "-"], elsewhere, monkeypatch, {"STAGEBOT_CONFIG": str(cfg)})
    assert code == 0 and "Acme Rel" in out


def test_database_url_relative_to_the_cwd_without_a_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import load_settings

    conf = tmp_path / "conf"
    conf.mkdir()
    cfg = conf / "s.toml"
    cfg.write_text('[database]\nurl = "sqlite:///data.db"\n')
    assert load_settings(str(cfg), {}).database_url == f"sqlite:///{conf.resolve() / 'data.db'}"
    # the environment variable is not in the file: as written, relative to the current directory
    env = {"STAGEBOT_DATABASE_URL": "sqlite:///env.db"}
    assert load_settings(str(cfg), env).database_url == "sqlite:///env.db"
    for url in ("sqlite://", "sqlite:///:memory:", f"sqlite:///{tmp_path / 'abs.db'}"):
        cfg.write_text(f'[database]\nurl = "{url}"\n')
        assert load_settings(str(cfg), {}).database_url == url
    # built-in default, no file at all
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, {"STAGEBOT_CONFIG": ""}).config.database.url == "sqlite:///stagebot.db"


def test_check_config_changes_nothing_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(["check-config"], tmp_path, monkeypatch)
    assert code == 0, out
    assert list(tmp_path.iterdir()) == []
    assert "database file stagebot.db does not exist yet: `stagebot db upgrade` or `console` creates it" in out
    cfg = tmp_path / "conf.toml"
    cfg.write_text('[database]\nurl = "sqlite:///sub/x.db"\n')
    code, out = run(["check-config", "--config", str(cfg)], tmp_path, monkeypatch)
    assert code == 0, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.toml"]
    assert f"database file {tmp_path.resolve() / 'sub' / 'x.db'} does not exist yet" in out


def test_check_config_refuses_an_enabled_platform_with_a_team_without_its_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    (tmp_path / "stagebot.toml").write_text(
        '[slack]\nenabled = true\n[teams.sales]\nslack_channel = "C0S"\n[teams.cs]\nmembers = ["slack:U1"]\n'
    )
    code, out = run(["check-config"], tmp_path, monkeypatch, slack)
    assert code == 1
    assert "problem: [teams.cs] has no slack_channel" in out and "set slack_channel" in out
    assert "1 problem(s)" in out  # sales has its channel
    feishu = {n: "x" for n in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY")}
    (tmp_path / "stagebot.toml").write_text('[feishu]\nenabled = true\n[teams.sales]\nslack_channel = "C0S"\n')
    code, out = run(["check-config"], tmp_path, monkeypatch, feishu)
    assert code == 1 and "problem: [teams.sales] has no feishu_chat" in out and "set feishu_chat" in out
    # A team that owns no stage (here: only listed by the pipeline) gets a warning, not a problem.
    pipeline = textwrap.dedent(
        """\
        key = "custom"
        zh = "自定义"
        en = "Custom"
        initial = "NEW"
        teams = [{ key = "ops", zh = "运营", en = "Ops" }, { key = "audit", zh = "审计", en = "Audit" }]
        [[stages]]
        key = "NEW"
        zh = "新建"
        en = "New"
        owners = ["ops"]
        [[stages]]
        key = "DONE"
        zh = "完成"
        en = "Done"
        terminal = true
        [[transitions]]
        from = "NEW"
        to = "DONE"
        """
    )
    (tmp_path / "custom.toml").write_text(pipeline)
    (tmp_path / "stagebot.toml").write_text(
        '[pipeline]\npreset = "custom.toml"\n[slack]\nenabled = true\n[teams.ops]\nslack_channel = "C0OPS"\n'
        '[teams.audit]\nmembers = ["slack:U2"]\n'
    )
    code, out = run(["check-config"], tmp_path, monkeypatch, slack)
    assert code == 0, out
    assert "warning: [teams.audit] has no slack_channel (it owns no stage of the pipeline)" in out
