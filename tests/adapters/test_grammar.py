"""The shared grammar: every command, aliases, helpful errors, and no crash on any text."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.common.dispatch import Failure, answer, is_account_of
from adapters.common.grammar import SPECS, Help, UsageError, help_text, parse, parse_amount, parse_user
from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.views import History, Outcome
from tests.conftest import ADMIN, EVE

ME = Actor("slack", "U0ALICE")
PIPE = load_preset("default")


def is_stage(word: str) -> bool:
    try:
        PIPE.resolve_stage(word)
    except LifecycleError:
        return False
    return True


def p(text: str):
    return parse(text, actor=ME, key="k1", via="slack", is_stage=is_stage)


def test_move_with_reason_and_chinese_alias() -> None:
    cmd = p("move Acme P2 first test sent")
    assert cmd == c.MoveStage(account="Acme", target="P2", reason="first test sent", actor=ME, key="k1", via="slack")
    zh = p("推进 Acme 测试发送 已发送测试邮件")
    assert isinstance(zh, c.MoveStage) and zh.target == "测试发送" and zh.reason == "已发送测试邮件"


def test_unquoted_multi_word_account_is_split_at_the_stage() -> None:
    cmd = p("move Acme Corp Asia P2 kick-off")
    assert isinstance(cmd, c.MoveStage)
    assert (cmd.account, cmd.target, cmd.reason) == ("Acme Corp Asia", "P2", "kick-off")
    quoted = p('move "Acme Corp" Testing')
    assert isinstance(quoted, c.MoveStage) and quoted.account == "Acme Corp" and quoted.target == "Testing"
    chinese_quotes = p("move “Acme Corp” P1")
    assert isinstance(chinese_quotes, c.MoveStage) and chinese_quotes.account == "Acme Corp"


def test_add_with_every_option() -> None:
    cmd = p(
        'add "Acme Corp" --amount 50k --stage SQL --owner <@U0BOB|bob> --segment smb '
        "--external-id hs-1 --contract-end 2027-06-30"
    )
    assert cmd == c.AddAccount(
        name="Acme Corp",
        stage="SQL",
        amount=Decimal("50000.00"),
        owner="slack:U0BOB",
        segment="smb",
        external_id="hs-1",
        contract_end=date(2027, 6, 30),
        actor=ME,
        key="k1",
        via="slack",
    )
    assert p("新建 示例科技 --amount=5万").amount == Decimal("50000.00")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("show Acme", c.ShowAccount(actor=ME, account="Acme")),
        ("查看 #12", c.ShowAccount(actor=ME, account="#12")),
        ("history Acme Corp", c.ShowHistory(actor=ME, account="Acme Corp")),
        ("list", c.ListAccounts(actor=ME)),
        ("列表 P2 --mine", c.ListAccounts(actor=ME, stage="P2", mine=True)),
        ("approvals", c.ListApprovals(actor=ME)),
        ("check Acme 2", c.TickChecklist(account="Acme", item="2", actor=ME, key="k1", via="slack")),
        ("check Acme Corp 2", c.TickChecklist(account="Acme Corp", item="2", actor=ME, key="k1", via="slack")),
        ("完成 Acme test email", c.TickChecklist(account="Acme", item="test email", actor=ME, key="k1", via="slack")),
        ("assign Acme @carol", c.AssignOwner(account="Acme", owner="slack:carol", actor=ME, key="k1", via="slack")),
        (
            "renew Acme --amount 120,000 --until 2027/06/30",
            c.RecordRenewal(
                account="Acme", amount=Decimal("120000.00"), until=date(2027, 6, 30), actor=ME, key="k1", via="slack"
            ),
        ),
        ("approve 7", c.DecideApproval(approval_id=7, approve=True, actor=ME, key="k1", via="slack")),
        (
            "驳回 #7 trial bounced",
            c.DecideApproval(approval_id=7, approve=False, note="trial bounced", actor=ME, key="k1", via="slack"),
        ),
        ("claim Acme", c.ClaimHandoff(account="Acme", actor=ME, key="k1", via="slack")),
        ("churn Acme no renewal", c.Churn(account="Acme", reason="no renewal", actor=ME, key="k1", via="slack")),
        ("召回 Acme", c.WinBack(account="Acme", actor=ME, key="k1", via="slack")),
        ("archive Acme", c.Archive(account="Acme", actor=ME, key="k1", via="slack")),
        ("report", c.ShowReport(actor=ME)),
        (
            "报表 --since 2026-01-01 --team sales --owner @U0BOB",
            c.ShowReport(actor=ME, since=datetime(2026, 1, 1, tzinfo=UTC), team="sales", owner="slack:U0BOB"),
        ),
        ("", Help()),
        ("help move", Help("move")),
        ("/stage help", Help()),
    ],
)
def test_commands(text: str, expected: object) -> None:
    assert p(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("mvoe Acme P2", "Did you mean `move`"),
        ("frobnicate", "Unknown command"),
        ("move", "Missing the account and the stage. Usage: move ACCOUNT STAGE"),
        ("move Acme", "Missing the stage: `move Acme STAGE [REASON...]`"),  # said "the account and the stage"
        ("add", "Missing the account name"),
        ("add Acme --amount", "--amount needs a value"),
        ("add Acme --amount lots", "is not an amount"),
        ("add Acme --colour red", "Unknown option --colour"),
        ("add Acme --contract-end tomorrow", "is not a date"),
        ('move "Acme P2', "quote is not closed"),
        ("renew Acme --amount 5", "Give both --amount and --until"),
        ("approve seven", "is not an approval number"),
        ("assign Acme", "Missing the person: `assign Acme KEY|EMAIL|@user`"),  # said "the account and the person"
        ("x" * 3000, "commands are at most"),
    ],
)
def test_errors_are_specific(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        p(text)
    assert fragment in err.value.text("en")
    assert err.value.text("zh")  # every message has a Chinese version too


def test_text_with_the_word_payload_is_ordinary_text() -> None:
    cmd = p("move Acme P2 payload=test the payload endpoint")
    assert isinstance(cmd, c.MoveStage) and cmd.reason == "payload=test the payload endpoint"


def test_amounts_and_users() -> None:
    assert parse_amount("1.2m") == Decimal("1200000.00")
    assert parse_amount("¥3,000") == Decimal("3000.00")
    for bad in ("-5", "nan", "1e99", ""):
        with pytest.raises(UsageError):
            parse_amount(bad)
    assert parse_user("feishu:ou_x", "slack") == "feishu:ou_x"
    assert parse_user("@bob", "feishu") == "feishu:bob"


# Issues 17 and 18: chat amounts go through lifecycle.domain.money (each of these was wrong before).
@pytest.mark.parametrize(
    ("line", "name", "amount"),
    [
        ("add X --amount 5 万", "X", "50000"),  # was an account "X 万" with amount 5
        ("add X --amount 1.2 m", "X", "1200000"),
        ("add X --amount=5 万", "X", "50000"),
        ("add X --amount 5000 USD --stage P2", "X", "5000"),
        ("add X --amount 50,00", "X", "50.00"),  # was 5,000
        ("add X --amount 5千", "X", "5000"),  # was refused
        ("add X --amount 1.234.567,89", "X", "1234567.89"),
        ("add X Y --amount 5 w", "X Y", "50000"),
    ],
)
def test_add_amount_forms(line: str, name: str, amount: str) -> None:
    cmd = p(line)
    assert isinstance(cmd, c.AddAccount) and (cmd.name, cmd.amount) == (name, Decimal(amount))


def test_a_unit_word_after_the_amount_is_not_part_of_the_name() -> None:
    cmd = p("add X --amount 5 万元")
    assert isinstance(cmd, c.AddAccount) and (cmd.name, cmd.amount) == ("X", Decimal("50000"))
    renew = p("renew Acme --amount 1.2 m --until 2027-06-30")
    assert isinstance(renew, c.RecordRenewal) and (renew.account, renew.amount) == ("Acme", Decimal("1200000"))
    other = p("add X --stage P2 Corp")  # only --amount takes a unit word
    assert isinstance(other, c.AddAccount) and other.name == "X Corp"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("add X --amount -5", "Amounts cannot be negative"),  # was "out of range"
        ("add X --amount 12.345", "at most 2 decimal places"),  # was 12.34, silently
        ("add X --amount 12.3456", "more than 2 decimal places"),
        ("add X --amount 1.234", '"1.234" is ambiguous: write 1234 or 1.23'),
        ("add X --amount 1e20", "is not an amount"),
        ("add X --amount 100000000000000", "too large"),
    ],
)
def test_add_amount_refusals(line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        p(line)
    assert fragment in err.value.text("en")
    assert err.value.text("zh") != err.value.text("en")


def test_help_lists_every_command_with_its_alias() -> None:
    text = help_text()
    for spec in SPECS:
        assert spec.name in text and spec.zh in text
    assert "move ACCOUNT STAGE" in help_text("推进")
    with pytest.raises(UsageError):
        help_text("nope")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_a_user_error(text: str) -> None:
    try:
        p(text)
    except LifecycleError as exc:
        assert exc.text("en") and exc.text("zh")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([s.name for s in SPECS] + ["--amount", "--stage", "'", '"', "P2", "#1", "5k"]), max_size=8)
)
def test_command_shaped_noise_never_crashes(words: list[str]) -> None:
    with contextlib.suppress(LifecycleError):
        p(" ".join(words))


# Issue 17: apostrophes are letters, not quotes (each of these was "A quote is not closed" before).
@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("add O'Reilly", "O'Reilly"),
        ("add O’Reilly", "O’Reilly"),  # macOS / Slack smart punctuation, kept as typed
        ("add O‘Reilly Media", "O‘Reilly Media"),
        ("add Customers' Choice", "Customers' Choice"),
        ("add 'Acme Corp'", "Acme Corp"),  # a span from a word's start to a word's end is a quote
        ("add ‘Acme Corp’ --segment smb", "Acme Corp"),
        ("add 'O'Reilly Media'", "O'Reilly Media"),
        ("add 'tis Corp", "'tis Corp"),  # opens a word but nothing closes it: an apostrophe
        ("add “O'Reilly Media”", "O'Reilly Media"),
        ("add 「示例 科技」", "示例 科技"),
    ],
)
def test_apostrophes_in_names_are_literal(line: str, name: str) -> None:
    cmd = p(line)
    assert isinstance(cmd, c.AddAccount) and cmd.name == name


def test_apostrophes_in_reasons_are_literal() -> None:
    cmd = p("move Acme SQL customer's first call held")
    assert isinstance(cmd, c.MoveStage) and cmd.reason == "customer's first call held"
    smart = p("move O’Reilly P2 it’s a go")
    assert isinstance(smart, c.MoveStage) and (smart.account, smart.reason) == ("O’Reilly", "it’s a go")
    note = p("approve 7 customer's call went well")
    assert isinstance(note, c.DecideApproval) and note.note == "customer's call went well"


@pytest.mark.parametrize("line", ['move "Acme P2', "move “Acme P2", "add 「示例 科技", 'add Acme"'])
def test_an_unclosed_double_quote_is_still_an_error(line: str) -> None:
    with pytest.raises(UsageError) as err:
        p(line)
    assert "quote is not closed" in err.value.text("en") and "引号未闭合" in err.value.text("zh")


# Issue 17: an unquoted multi-word name works for every verb that takes an account and then text.
KNOWN = {"pied piper", "acme corp asia", "route 66", "o'reilly media"}


def pk(text: str):
    """`p` with a directory of exact account names, as adapters.common.dispatch passes one."""
    return parse(text, actor=ME, key="k1", via="slack", is_stage=is_stage, is_account=lambda n: n.casefold() in KNOWN)


W = {"actor": ME, "key": "k1", "via": "slack"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn Pied Piper lost to competitor", c.Churn(account="Pied Piper", reason="lost to competitor", **W)),
        ("流失 pied piper 预算取消", c.Churn(account="pied piper", reason="预算取消", **W)),
        ("winback Pied Piper new budget", c.WinBack(account="Pied Piper", reason="new budget", **W)),
        ("archive Pied Piper gone for good", c.Archive(account="Pied Piper", reason="gone for good", **W)),
        ("churn Pied Piper", c.Churn(account="Pied Piper", **W)),
        ("churn O'Reilly Media it’s over", c.Churn(account="O'Reilly Media", reason="it’s over", **W)),
        ("todo Pied Piper send the guide", c.AddTask(account="Pied Piper", title="send the guide", **W)),
        ("check Pied Piper test email", c.TickChecklist(account="Pied Piper", item="test email", **W)),
        ("check Route 66 2", c.TickChecklist(account="Route 66", item="2", **W)),
        ("snooze Route 66", c.SnoozeSla(account="Route 66", days=1, **W)),
        ("snooze Pied Piper 2w", c.SnoozeSla(account="Pied Piper", days=14, **W)),
        ("assign Pied Piper @bob", c.AssignOwner(account="Pied Piper", owner="slack:bob", **W)),
        (
            "move Acme Corp Asia SQL kick-off",
            c.MoveStage(account="Acme Corp Asia", target="SQL", reason="kick-off", **W),
        ),
        ("move Pied Piper P2 sent", c.MoveStage(account="Pied Piper", target="P2", reason="sent", **W)),
        ("show Pied Piper", c.ShowAccount(actor=ME, account="Pied Piper")),
        ("history Pied Piper", c.ShowHistory(actor=ME, account="Pied Piper")),
        ("claim Pied Piper", c.ClaimHandoff(account="Pied Piper", **W)),
        ("tasks Pied Piper", c.ListTasks(actor=ME, account="Pied Piper")),
        (
            "renew Pied Piper --amount 5k --until 2027-01-01",
            c.RecordRenewal(account="Pied Piper", amount=Decimal("5000.00"), until=date(2027, 1, 1), **W),
        ),
        # A name nobody has: the first word, as before (the core then resolves it as a name or prefix).
        ("churn Pied lost to competitor", c.Churn(account="Pied", reason="lost to competitor", **W)),
        ("todo Globex call back", c.AddTask(account="Globex", title="call back", **W)),
    ],
)
def test_unquoted_multi_word_names_for_every_verb(text: str, expected: object) -> None:
    assert pk(text) == expected


# Issue 17: a missing argument is named as missing; the account that was given is not (each was wrong before).
@pytest.mark.parametrize(
    ("text", "en", "zh"),
    [
        ("move Pied", "Missing the stage: `move Pied STAGE [REASON...]`", "缺少目标阶段:`move Pied STAGE"),
        ("move Pied Piper", 'Missing the stage: `move "Pied Piper" STAGE', "缺少目标阶段"),
        ("todo Pied", "Missing the task: `todo Pied TEXT...`", "缺少任务内容:`todo Pied TEXT...`"),
        ("todo Pied Piper", 'Missing the task: `todo "Pied Piper" TEXT...`', "缺少任务内容"),
        ("check Alpha", "Missing the checklist item: `check Alpha ITEM`", "缺少检查项:`check Alpha ITEM`"),
        ("check Pied Piper", 'Missing the checklist item: `check "Pied Piper" ITEM`', "缺少检查项"),
        ("assign Pied Piper", 'Missing the person: `assign "Pied Piper" KEY|EMAIL|@user`', "缺少负责人"),
        ("snooze Pied -1", '"-1": snooze for 1 to 90 days.', "暂停提醒的天数须在 1 到 90 之间"),
        ("snooze Pied 0", '"0": snooze for 1 to 90 days.', "1 到 90"),
        ("snooze Pied Piper 13w", '"13w": snooze for 1 to 90 days.', "1 到 90"),
        ("snooze Pied 99999999999999999999", "snooze for 1 to 90 days", "1 到 90"),
        ("todo", "Missing the account and the task.", "缺少客户名称和任务内容"),
    ],
)
def test_missing_arguments_are_named(text: str, en: str, zh: str) -> None:
    with pytest.raises(UsageError) as err:
        pk(text)
    assert en in err.value.text("en")
    assert zh in err.value.text("zh")


def test_multi_word_names_through_a_real_core(core: Lifecycle) -> None:
    """adapters.common.dispatch gives the grammar the exact account names (was: reason "Piper lost to ...")."""

    def run(line: str, actor: Actor = ADMIN) -> object:
        return answer(core, line, actor=actor, key=uuid.uuid4().hex, via="console")

    assert isinstance(run('add "Pied Piper" --stage P5'), Outcome)
    assert isinstance(run("add O’Reilly Media --stage P5"), Outcome)
    assert isinstance(run("churn pied  piper lost to competitor"), Outcome)
    assert isinstance(run("churn O’Reilly Media it’s over"), Outcome)
    for name, reason in (("Pied Piper", "lost to competitor"), ("O’Reilly Media", "it’s over")):
        history = run(f"history {name}")
        assert isinstance(history, History) and history.lines[-1].reason == reason
    todo = run("todo Pied Piper")
    assert isinstance(todo, Failure) and 'Missing the task: `todo "Pied Piper" TEXT...`' in todo.message
    # Someone who may not read accounts learns no names from how their line was split.
    assert is_account_of(core, EVE) is None
    assert is_account_of(core, ADMIN) is not None
