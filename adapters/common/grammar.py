"""The one command grammar every platform shares (Slack `/stage ...`, Feishu text, console lines).

`parse(text, actor=..., key=...)` turns a line into a lifecycle command or query, or a `Help`
request, and raises `UsageError` (a user-safe, bilingual message) for anything it cannot use.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypedDict

from lifecycle.domain import commands as c
from lifecycle.domain import money
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import InvalidInput
from lifecycle.domain.i18n import Text
from lifecycle.usecases.tasks import MAX_SNOOZE_DAYS

MAX_TEXT = 2000
# Unquoted, an account name is looked up as up to this many leading words (`churn Pied Piper lost`).
MAX_NAME_WORDS = 12
# Control characters (NUL above all: PostgreSQL cannot store it) read as spaces, as a person meant them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class UsageError(InvalidInput):
    """The text could not be understood; the message says what was expected."""


@dataclass(frozen=True)
class Help:
    topic: str | None = None


Parsed = c.Command | c.Query | Help


@dataclass(frozen=True)
class Spec:
    name: str
    zh: str
    usage: str
    en_help: str
    zh_help: str
    example: str
    options: dict[str, str] = field(default_factory=dict)  # --name -> kind: value | flag
    aliases: tuple[str, ...] = ()


SPECS: tuple[Spec, ...] = (
    Spec("help", "帮助", "help [COMMAND]", "show usage", "查看用法", "help move"),
    Spec(
        "add",
        "新建",
        "add NAME [--amount N] [--stage S] [--owner @user] [--segment S] [--external-id ID] [--contract-end DATE]",
        "new account (starts in the pipeline's first stage)",
        "新建客户(默认从第一个阶段开始)",
        'add "Acme Corp" --amount 50k --segment enterprise',
        {
            "--amount": "value",
            "--stage": "value",
            "--owner": "value",
            "--segment": "value",
            "--external-id": "value",
            "--contract-end": "value",
        },
        ("new",),
    ),
    Spec(
        "show",
        "查看",
        "show ACCOUNT",
        "stage, owner, time in stage, checklist, amount",
        "查看阶段、负责人、停留时间、检查项、金额",
        "show Acme",
        aliases=("card",),
    ),
    Spec(
        "list",
        "列表",
        "list [STAGE] [--mine]",
        "accounts grouped by stage",
        "按阶段列出客户",
        "list P2 --mine",
        {"--mine": "flag"},
        ("ls",),
    ),
    Spec(
        "move",
        "推进",
        "move ACCOUNT STAGE [REASON...]",
        "move an account to another stage",
        "推进客户到另一个阶段",
        "move Acme P2 first test sent",
        aliases=("mv",),
    ),
    Spec(
        "check",
        "完成",
        "check ACCOUNT ITEM",
        "tick a checklist item (its number or text)",
        "勾选检查项(序号或文字)",
        "check Acme 1",
        aliases=("tick",),
    ),
    Spec("history", "历史", "history ACCOUNT", "every stage change of an account", "查看阶段变更历史", "history Acme"),
    Spec(
        "assign",
        "分配",
        "assign ACCOUNT KEY|EMAIL|@user",
        "set the owner person (a people key, an email or a mention)",
        "设置负责人(人员键名、邮箱或 @提及)",
        "assign Acme alice",
    ),
    Spec(
        "renew",
        "续费",
        "renew ACCOUNT --amount N --until DATE",
        "record a renewal or expansion on a mature account",
        "记录成熟客户的续费或增购",
        "renew Acme --amount 120k --until 2027-06-30",
        {"--amount": "value", "--until": "value", "--note": "value"},
    ),
    Spec(
        "approve",
        "批准",
        "approve APPROVAL_ID [NOTE...]",
        "approve a waiting conversion (same as the Approve button)",
        "批准等待中的审批(等同于“批准”按钮)",
        "approve 7",
    ),
    Spec(
        "reject",
        "驳回",
        "reject APPROVAL_ID [REASON...]",
        "reject a waiting conversion (same as the Reject button)",
        "驳回等待中的审批(等同于“驳回”按钮)",
        "reject 7 trial bounced",
    ),
    Spec("approvals", "审批", "approvals", "approvals waiting for a decision", "查看待处理的审批", "approvals"),
    Spec(
        "handoffs", "交接", "handoffs", "handoffs waiting for your team to take", "查看等待本团队接手的交接", "handoffs"
    ),
    Spec(
        "claim",
        "接手",
        "claim ACCOUNT",
        "take ownership of a handed-off account",
        "接手交接过来的客户",
        "claim Acme",
        aliases=("take",),
    ),
    Spec(
        "churn", "流失", "churn ACCOUNT [REASON...]", "mark an account churned", "标记客户流失", "churn Acme no renewal"
    ),
    Spec(
        "winback",
        "召回",
        "winback ACCOUNT [REASON...]",
        "win a churned account back",
        "召回流失客户",
        "winback Acme new budget",
    ),
    Spec("archive", "归档", "archive ACCOUNT [REASON...]", "archive a churned account", "归档流失客户", "archive Acme"),
    Spec(
        "tasks",
        "任务",
        "tasks [ACCOUNT] [--mine]",
        "open tasks: yours and your teams', or one account's",
        "查看待办任务(自己和团队的,或某个客户的)",
        "tasks --mine",
        options={"--mine": "flag"},
    ),
    Spec(
        "todo",
        "待办",
        "todo ACCOUNT TEXT...",
        "open a task on an account",
        "为客户新建任务",
        "todo Acme send the guide",
    ),
    Spec("done", "完成任务", "done TASK_ID", "mark a task done (same as its Done button)", "完成任务", "done 12"),
    Spec(
        "snooze",
        "暂停提醒",
        "snooze ACCOUNT [1d|1w|DAYS]",
        "no SLA reminders for an account for a while (default 1 day)",
        "暂停客户的 SLA 提醒(默认 1 天)",
        "snooze Acme 1w",
    ),
    Spec(
        "report",
        "报表",
        "report [--since DATE] [--until DATE] [--team TEAM] [--owner @user] [--segment S]",
        "funnel, conversion, time in stage, bottleneck, forecast",
        "漏斗、转化率、阶段停留时间、瓶颈、收入预测",
        "report --since 2026-01-01 --team sales",
        options={"--since": "value", "--until": "value", "--team": "value", "--owner": "value", "--segment": "value"},
    ),
)

_BY_NAME: dict[str, Spec] = {}
for _spec in SPECS:
    for _n in (_spec.name, _spec.zh, *_spec.aliases):
        _BY_NAME[_n.casefold()] = _spec

# Quoting (INTERFACES.md, "Quoting"): double quotes, straight or typographic (" “ ” 「 」), group
# words anywhere; a single quote (' ‘ ’) groups words only as a span that opens at the start of a word
# and closes at the end of one (`'Acme Corp'`). Anywhere else it is the apostrophe it looks like
# (`O'Reilly`, `O’Reilly`, `customer's`, `it’s`), kept as typed; so a lone one is never an error.
_DOUBLE_QUOTES = frozenset('"“”「」')
_SINGLE_QUOTES = frozenset("'‘’")
_QUOTE_ERROR = Text(
    'A quote is not closed. Quote names with spaces like "Acme Corp".',
    '引号未闭合。含空格的名称请用引号括起来,例如 "Acme Corp"。',
)
_SLACK_MENTION = re.compile(r"^<@([A-Z0-9]+)(?:\|[^>]*)?>$")


def spec_for(name: str) -> Spec | None:
    return _BY_NAME.get(name.casefold())


def _usage_error(spec: Spec, problem_en: str, problem_zh: str) -> UsageError:
    return UsageError(
        Text(
            f"{problem_en} Usage: {spec.usage} (e.g. `{spec.example}`)",
            f"{problem_zh} 用法:{spec.usage}(例如 `{spec.example}`)",
        )
    )


def _single_quote_end(text: str, start: int) -> int:
    """The index of the single quote closing the span opened at `start`, or -1: the first one that
    ends a word (followed by whitespace or the end of the text)."""
    for j in range(start + 1, len(text)):
        if text[j] in _SINGLE_QUOTES and (j + 1 == len(text) or text[j + 1].isspace()):
            return j
    return -1


def tokenize(text: str) -> list[str]:
    """Words of `text`: split at whitespace, grouped by quotes (rules above `_DOUBLE_QUOTES`).
    A backslash keeps the next quote, backslash or space literal; anywhere else it is itself."""
    tokens: list[str] = []
    word: list[str] = []
    in_word = False  # a quoted empty string ("") is still a word
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and (text[i + 1] in _DOUBLE_QUOTES | _SINGLE_QUOTES or text[i + 1] in "\\ "):
            word.append(text[i + 1])
            in_word = True
            i += 2
        elif ch.isspace():
            if in_word:
                tokens.append("".join(word))
                word, in_word = [], False
            i += 1
        elif ch in _DOUBLE_QUOTES:
            j = i + 1
            while j < n and text[j] not in _DOUBLE_QUOTES:
                if text[j] == "\\" and j + 1 < n and text[j + 1] in _DOUBLE_QUOTES | {"\\"}:
                    j += 1
                word.append(text[j])
                j += 1
            if j >= n:
                raise UsageError(_QUOTE_ERROR)
            in_word = True
            i = j + 1
        elif ch in _SINGLE_QUOTES and not in_word and (end := _single_quote_end(text, i)) != -1:
            word.extend(text[i + 1 : end])
            in_word = True
            i = end + 1
        else:
            word.append(ch)
            in_word = True
            i += 1
    if in_word:
        tokens.append("".join(word))
    return tokens


def parse_amount(raw: str) -> Decimal:
    """The amount `raw` says (rules in lifecycle.domain.money, shared with CSV import); UsageError if none."""
    try:
        return money.parse_amount(raw)
    except InvalidInput as exc:
        raise UsageError(exc.message) from None


def is_number(raw: str) -> bool:
    """ASCII digits only: "²" and "٣" are digits to str.isdigit() but not to int()."""
    return raw.isascii() and raw.isdigit()


def parse_date(raw: str) -> date:
    s = raw.strip().replace("/", "-").replace(".", "-")
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise UsageError(
            Text(f'"{raw}" is not a date. Write it as YYYY-MM-DD.', f"“{raw}”不是有效日期,请写作 YYYY-MM-DD。")
        ) from None


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def parse_user(raw: str, platform: str) -> str:
    """`@alice`, `<@U0ALICE|alice>` or `slack:U0ALICE` -> `platform:user_id`. The core reads a word
    that is no user id of the platform as a people key, an email or a name (Roster.find)."""
    s = raw.strip()
    m = _SLACK_MENTION.match(s)
    if m:
        return f"slack:{m.group(1)}"
    s = s.lstrip("@")
    if not s or any(ch.isspace() for ch in s):
        raise UsageError(Text(f'"{raw}" is not a person. Write @name.', f"“{raw}”不是有效的人员,请写作 @姓名。"))
    return s if ":" in s else f"{platform}:{s}"


def _shown(words: list[str]) -> str:
    """Words as a person could type them back: quoted when there are several."""
    text = " ".join(words)
    return f'"{text}"' if len(words) > 1 else text


def _missing(spec: Spec, given: list[str], what_en: str, what_zh: str) -> UsageError:
    """What is missing, in the usage line filled in with what was given (`move Pied STAGE ...`)."""
    rest = spec.usage.split(" ")[2:]  # after the verb and ACCOUNT
    line = " ".join([spec.name, _shown(given), *rest])
    return UsageError(
        Text(
            f"Missing {what_en}: `{line}` (e.g. `{spec.example}`)",
            f"缺少{what_zh}:`{line}`(例如 `{spec.example}`)",
        )
    )


def _known_account(pos: list[str], is_account: Callable[[str], bool] | None, *, more: int = 0) -> int:
    """How many leading words of `pos` make the longest known account name, leaving at least
    `more` words after it; 0 when none does (or nothing can tell). One word is not asked about:
    it is the account either way."""
    if is_account is None:
        return 0
    for n in range(min(len(pos) - more, MAX_NAME_WORDS), 1, -1):
        if is_account(" ".join(pos[:n])):
            return n
    return 0


def _is_account(pos: list[str], is_account: Callable[[str], bool] | None) -> bool:
    """Whether all of `pos` (several words) is a known account name."""
    return is_account is not None and 1 < len(pos) <= MAX_NAME_WORDS and is_account(" ".join(pos))


def _split(spec: Spec, tokens: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    positional: list[str] = []
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--") and len(tok) > 2:
            name, eq, value = tok.partition("=")
            kind = spec.options.get(name)
            if kind is None:
                known = ", ".join(spec.options) or "none"
                raise _usage_error(spec, f"Unknown option {name} (options: {known}).", f"未知选项 {name}。")
            if kind == "flag":
                options[name] = True
            elif eq:
                options[name] = value
            elif i + 1 < len(tokens):
                i += 1
                options[name] = tokens[i]
            else:
                raise _usage_error(spec, f"{name} needs a value.", f"{name} 需要一个值。")
            if name == "--amount" and i + 1 < len(tokens) and money.is_unit_word(tokens[i + 1]):
                i += 1  # `--amount 5 万`, `--amount 1.2 m`: the unit is the amount's, not the account name's
                options[name] = f"{options[name]} {tokens[i]}"
        else:
            positional.append(tok)
        i += 1
    return positional, options


def _opt(options: dict[str, str | bool], name: str) -> str | None:
    v = options.get(name)
    return v if isinstance(v, str) else None


class _Who(TypedDict):
    """What every command carries: who asked, its idempotency key, and the platform."""

    actor: Actor
    key: str
    via: str


def parse(
    text: str,
    *,
    actor: Actor,
    key: str,
    via: str = "",
    is_stage: Callable[[str], bool] | None = None,
    is_account: Callable[[str], bool] | None = None,
) -> Parsed:
    """Parse one command line. `is_stage` lets `move Acme Corp P2` work without quotes, and
    `is_account` (exact account names) lets every verb take an unquoted multi-word name before its
    text: `churn Pied Piper lost to competitor`."""
    if len(text) > MAX_TEXT:
        raise UsageError(
            Text(
                f"That is {len(text)} characters; commands are at most {MAX_TEXT}.",
                f"内容共 {len(text)} 个字符,命令最多 {MAX_TEXT} 个字符。",
            )
        )
    tokens = tokenize(_CONTROL.sub(" ", text))
    if tokens and tokens[0].lower() in ("/stage", "stage"):
        tokens = tokens[1:]
    if not tokens:
        return Help()
    word, rest = tokens[0], tokens[1:]
    spec = spec_for(word)
    if spec is None:
        names = [s.name for s in SPECS] + [s.zh for s in SPECS]
        close = difflib.get_close_matches(word.casefold(), names, n=2, cutoff=0.6)
        hint_en = f" Did you mean `{close[0]}`?" if close else ""
        hint_zh = f"你是不是想用 `{close[0]}`?" if close else ""
        raise UsageError(
            Text(
                f'Unknown command "{word}".{hint_en} Type `help` for the list.',
                f"未知命令“{word}”。{hint_zh}输入 `help` 查看命令列表。",
            )
        )
    pos, opts = _split(spec, rest)
    common: _Who = {"actor": actor, "key": key, "via": via}
    name = spec.name

    def need(n: int, what_en: str, what_zh: str) -> None:
        if len(pos) < n:
            raise _usage_error(spec, f"Missing {what_en}.", f"缺少{what_zh}。")

    if name == "help":
        return Help(pos[0] if pos else None)
    if name == "report":
        since, until, owner = _opt(opts, "--since"), _opt(opts, "--until"), _opt(opts, "--owner")
        return c.ShowReport(
            actor=actor,
            since=_day_start(parse_date(since)) if since else None,
            until=_day_start(parse_date(until)) if until else None,
            team=_opt(opts, "--team"),
            owner=parse_user(owner, actor.platform) if owner else None,
            segment=_opt(opts, "--segment"),
        )
    if name == "approvals":
        return c.ListApprovals(actor=actor)
    if name == "handoffs":
        return c.ListHandoffs(actor=actor)
    if name == "list":
        return c.ListAccounts(actor=actor, stage=" ".join(pos) or None, mine=bool(opts.get("--mine")))
    if name in ("show", "history", "claim"):
        need(1, "the account", "客户名称")
        account = " ".join(pos)
        if name == "show":
            return c.ShowAccount(actor=actor, account=account)
        if name == "history":
            return c.ShowHistory(actor=actor, account=account)
        return c.ClaimHandoff(account=account, **common)
    if name == "add":
        need(1, "the account name", "客户名称")
        amount = _opt(opts, "--amount")
        end = _opt(opts, "--contract-end")
        owner = _opt(opts, "--owner")
        return c.AddAccount(
            name=" ".join(pos),
            stage=_opt(opts, "--stage"),
            amount=parse_amount(amount) if amount is not None else None,
            owner=parse_user(owner, actor.platform) if owner is not None else None,
            segment=_opt(opts, "--segment"),
            external_id=_opt(opts, "--external-id"),
            contract_end=parse_date(end) if end is not None else None,
            **common,
        )
    if name == "move":
        need(1, "the account and the stage", "客户名称和目标阶段")
        if len(pos) == 1:
            raise _missing(spec, pos, "the stage", "目标阶段")
        split = 0
        if is_stage is not None and is_account is not None:  # a known name before a stage: `move Acme SQL Corp P2`
            longest = min(len(pos) - 1, MAX_NAME_WORDS)
            split = next((n for n in range(longest, 1, -1) if is_stage(pos[n]) and is_account(" ".join(pos[:n]))), 0)
        if not split and is_stage is not None and not is_stage(pos[1]):
            split = next((i for i in range(2, len(pos)) if is_stage(pos[i])), 0)
            if not split and _known_account(pos, is_account) == len(pos):
                raise _missing(spec, pos, "the stage", "目标阶段")
        split = split or 1
        return c.MoveStage(
            account=" ".join(pos[:split]), target=pos[split], reason=" ".join(pos[split + 1 :]), **common
        )
    if name == "check":
        need(1, "the account and the checklist item", "客户名称和检查项")
        known = _known_account(pos, is_account)
        if len(pos) == 1 or known == len(pos):
            raise _missing(spec, pos, "the checklist item", "检查项")
        if known:
            return c.TickChecklist(account=" ".join(pos[:known]), item=" ".join(pos[known:]), **common)
        if is_number(pos[-1]):
            return c.TickChecklist(account=" ".join(pos[:-1]), item=pos[-1], **common)
        return c.TickChecklist(account=pos[0], item=" ".join(pos[1:]), **common)
    if name == "assign":
        need(1, "the account and the person", "客户名称和负责人")
        if len(pos) == 1 or _is_account(pos, is_account):
            raise _missing(spec, pos, "the person", "负责人")
        return c.AssignOwner(account=" ".join(pos[:-1]), owner=parse_user(pos[-1], actor.platform), **common)
    if name == "renew":
        need(1, "the account", "客户名称")
        amount, until = _opt(opts, "--amount"), _opt(opts, "--until")
        if amount is None or until is None:
            raise _usage_error(spec, "Give both --amount and --until.", "需要同时提供 --amount 和 --until。")
        return c.RecordRenewal(
            account=" ".join(pos),
            amount=parse_amount(amount),
            until=parse_date(until),
            note=_opt(opts, "--note") or "",
            **common,
        )
    if name in ("approve", "reject"):
        need(1, "the approval number", "审批编号")
        raw = pos[0].lstrip("#")
        if not is_number(raw):
            raise _usage_error(spec, f'"{pos[0]}" is not an approval number.', f"“{pos[0]}”不是审批编号。")
        return c.DecideApproval(approval_id=int(raw), approve=name == "approve", note=" ".join(pos[1:]), **common)
    if name == "tasks":
        return c.ListTasks(actor=actor, account=" ".join(pos) or None, mine=bool(opts.get("--mine")))
    if name == "todo":
        need(1, "the account and the task", "客户名称和任务内容")
        split = _known_account(pos, is_account) or 1
        if split == len(pos):
            raise _missing(spec, pos, "the task", "任务内容")
        return c.AddTask(account=" ".join(pos[:split]), title=" ".join(pos[split:]), **common)
    if name == "done":
        need(1, "the task number", "任务编号")
        raw = pos[0].lstrip("#")
        if not is_number(raw):
            raise _usage_error(spec, f'"{pos[0]}" is not a task number.', f"“{pos[0]}”不是任务编号。")
        return c.CompleteTask(task_id=int(raw), **common)
    if name == "snooze":
        need(1, "the account", "客户名称")
        days = 1
        m = re.fullmatch(r"([-+]?[0-9]+)([dw天周]?)", pos[-1].lower()) if len(pos) > 1 else None
        if m and not _is_account(pos, is_account):  # `snooze Route 66` when that is a name
            pos = pos[:-1]
            number = m.group(1)
            days = int(number) if len(number) <= 6 else MAX_SNOOZE_DAYS + 1
            days *= 7 if m.group(2) in ("w", "周") else 1
            if not 1 <= days <= MAX_SNOOZE_DAYS:
                raise _usage_error(
                    spec,
                    f'"{m.group(0)}": snooze for 1 to {MAX_SNOOZE_DAYS} days.',
                    f"“{m.group(0)}”:暂停提醒的天数须在 1 到 {MAX_SNOOZE_DAYS} 之间。",
                )
        return c.SnoozeSla(account=" ".join(pos), days=days, **common)
    if name in ("churn", "winback", "archive"):
        need(1, "the account", "客户名称")
        cls = {"churn": c.Churn, "winback": c.WinBack, "archive": c.Archive}[name]
        split = _known_account(pos, is_account) or 1
        return cls(account=" ".join(pos[:split]), reason=" ".join(pos[split:]), **common)
    raise AssertionError(f"grammar spec {name} has no parser")  # every SPECS entry is handled above


def help_text(topic: str | None = None, lang: str = "en") -> str:
    """The command list, or one command's usage, with Chinese aliases."""
    if topic:
        spec = spec_for(topic)
        if spec is None:
            raise UsageError(Text(f'No command "{topic}". Type `help`.', f"没有命令“{topic}”。输入 `help`。"))
        desc = spec.zh_help if lang == "zh" else spec.en_help
        return f"{spec.usage}\n  {desc}\n  alias: {spec.zh}\n  e.g. {spec.example}"
    width = max(len(s.name) for s in SPECS)
    lines = ["Commands (中文别名):" if lang != "zh" else "命令(English):"]
    for s in SPECS:
        desc = s.zh_help if lang == "zh" else s.en_help
        lines.append(f"  {s.name.ljust(width)}  {s.zh}  {desc}")
    lines.append("Stages by key (P2), Chinese (测试发送) or English (Testing) label; accounts by name, prefix or #ID.")
    lines.append("`help COMMAND` shows its usage.")
    return "\n".join(lines)
