"""Every kind of Slack message the bot sends, rendered from any input the core allows, passes the
same Block Kit rule book the fake Slack enforces (tests/fakes/block_kit.py).

Inputs reach the core's maximum lengths (names 200, reasons 1,000, task titles 300, segments 64,
person refs 120 characters) in any script: emoji sequences, CJK, right-to-left, combining marks,
mrkdwn and `<&>`; lists run to hundreds; escalations name 40 approvers. Each test records how large
its payloads got; `pytest -s` prints the table (and STAGEBOT_LIMITS_SUMMARY=path writes it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from itertools import cycle, islice
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from adapters.common.grammar import SPECS
from adapters.slack import blocks as sb
from adapters.slack.app import HOME_NOTICE_BLOCKS
from lifecycle.domain import events as ev
from lifecycle.domain.limits import MAX_NAME, MAX_REASON
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    AccountView,
    ApprovalList,
    ApprovalView,
    ChecklistLine,
    ForecastLine,
    HandoffList,
    HandoffView,
    History,
    HistoryLine,
    Outcome,
    OutcomeKind,
    Report,
    StageFigures,
    TaskList,
    TaskView,
)
from lifecycle.usecases.tasks import MAX_TITLE
from lifecycle.usecases.transfer import MAX_LEN
from tests.adapters.slack.samples import T0, every_event
from tests.fakes import block_kit as bk

P = load_preset("default")
STAGES = [s.key for s in P.stages]
TEAMS = list(P.team_by_key)
EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# ---------------------------------------------------------------- inputs

SPECIALS = [
    "<!channel>",
    "<@U0EVIL>",
    "<https://evil.example|x>",
    "&amp;",
    "&",
    "<",
    ">",
    "*",
    "_",
    "~",
    "`",
    "```",
    "\n",
    "👩🏽‍💻",
    "🇨🇳",
    "𝕏",
    "测试客户",
    "שלום",
    "مرحبا",
    "\u202e",
    "\u200d",
    "e\u0301",
]
_piece = st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(SPECIALS))


def _repeat(pieces: list[str], n: int) -> str:
    s = "".join(pieces) or "x"
    return (s * (n // len(s) + 1))[:n]


def texts(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Any text up to `max_size` characters; often exactly `max_size`, the core's maximum."""
    free = st.lists(_piece, max_size=min(max_size, 60)).map(lambda ps: "".join(ps)[:max_size])
    full = st.lists(_piece, min_size=1, max_size=6).map(lambda ps: _repeat(ps, max_size))
    return st.one_of(free, full).filter(lambda s: len(s) >= min_size)


names = texts(MAX_NAME, 1).map(lambda s: ("x" + s[1:]) if s.startswith("#") else s)
reasons = texts(MAX_REASON)
people = st.one_of(
    st.none(),
    st.sampled_from(["slack:U0ALICE", "slack:W0BOB", "feishu:ou_carol"]),
    texts(MAX_LEN["owner"] - 6, 1).map(lambda s: "slack:" + s),
)
amounts = st.one_of(st.none(), st.decimals(0, Decimal("99999999999999.99"), places=2))
langs = st.sampled_from(["en", "zh"])
counts = st.integers(0, 400)
stages = st.sampled_from(STAGES)


def _account(n: int, name: str, stage: str, owner: str | None, amount: Decimal | None, segment: str) -> AccountView:
    return AccountView(
        id=n,
        name=name,
        stage=stage,
        stage_entered_at=T0 - timedelta(days=n % 90),
        owner=owner,
        amount=amount,
        segment=segment or None,
        contract_end=date(2027, 6, 30),
    )


accounts = st.builds(_account, st.integers(1, 2**63 - 1), names, stages, people, amounts, texts(MAX_LEN["segment"]))


def many(items: list[Any], n: int) -> list[Any]:
    """`n` items cycled from a few drawn ones: hundreds without drawing hundreds."""
    return list(islice(cycle(items), n)) if items else []


# ---------------------------------------------------------------- measuring


@dataclass
class Figures:
    examples: int = 0
    blocks: int = 0
    block_limit: int = bk.MESSAGE_BLOCKS
    fullest: float = 0.0  # the fullest text object, as a share of its own limit (UTF-16 count)
    text_chars: int = 0  # summed text of the blocks (msg_blocks_too_long is said to count this)
    json_bytes: int = 0  # as slack_sdk sends it: json.dumps, non-ASCII as \u escapes


FIGURES: dict[str, Figures] = {}
_LIMIT_OF = {"section": bk.SECTION_TEXT, "header": bk.HEADER_TEXT, "context": bk.TEXT_OBJECT}


def _fullest(blocks: list[dict[str, Any]]) -> float:
    share = 0.0
    for b in blocks:
        kind = b["type"]
        objs: list[tuple[dict[str, Any], int]] = []
        if "text" in b:
            objs.append((b["text"], _LIMIT_OF.get(kind, bk.TEXT_OBJECT)))
        objs += [(f, bk.FIELD_TEXT) for f in b.get("fields", [])]
        if kind == "context":
            objs += [(e, bk.TEXT_OBJECT) for e in b["elements"] if "text" in e]
        buttons = [e for e in b.get("elements", []) if e.get("type") == "button"]
        buttons += [b["accessory"]] if "accessory" in b else []
        objs += [(e["text"], bk.BUTTON_TEXT) for e in buttons]
        for obj, limit in objs:
            share = max(share, bk.utf16_units(obj["text"]) / limit)
    return share


def accepted(kind: str, blocks: list[dict[str, Any]], *, view: dict[str, Any] | None = None) -> None:
    """The rendering passes Slack's rules counted both ways; its size is recorded under `kind`."""
    if view is not None:
        assert bk.view_errors(view) == [], bk.view_errors(view)[:5]
        assert bk.view_errors(view, length=bk.utf16_units) == []
        assert bk.view_size(view) <= bk.VIEW_BYTES
    else:
        assert bk.message_errors(blocks) == [], bk.message_errors(blocks)[:5]
        assert bk.message_errors(blocks, length=bk.utf16_units) == []
    assert blocks, "a message with no blocks"
    chars = bk.block_text_chars(blocks)
    size = len(json.dumps(view if view is not None else blocks).encode())  # as slack_sdk sends it
    if currently_in_test_context():  # steer Hypothesis towards the largest payloads
        target(float(chars), label="summed block text")
        target(float(len(blocks)), label="blocks")
    f = FIGURES.setdefault(kind, Figures(block_limit=bk.VIEW_BLOCKS if view is not None else bk.MESSAGE_BLOCKS))
    f.examples += 1
    f.blocks = max(f.blocks, len(blocks))
    f.fullest = max(f.fullest, _fullest(blocks))
    f.text_chars = max(f.text_chars, chars)
    f.json_bytes = max(f.json_bytes, size)


def message(kind: str, msg: sb.SlackMessage) -> None:
    assert msg.text.strip()
    accepted(kind, msg.blocks)
    # Every message may end up in chat.postMessage: keep a margin below the reported msg_blocks_too_long.
    assert bk.block_text_chars(msg.blocks) <= sb.MESSAGE_TEXT < bk.REPORTED_MSG_BLOCKS_TOO_LONG


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    rows = [
        f"{'kind':<28} {'examples':>8} {'blocks':>9} {'fullest text':>12} {'summed text':>11} {'JSON bytes':>10}",
    ]
    for kind, f in sorted(FIGURES.items()):
        rows.append(
            f"{kind:<28} {f.examples:>8} {f.blocks:>4}/{f.block_limit:<4} {f.fullest:>11.0%} "
            f"{f.text_chars:>11,} {f.json_bytes:>10,}"
        )
    table = "\n".join(rows)
    sys.stdout.write("\nBlock Kit payloads (largest per kind; fullest = longest text / its limit)\n" + table + "\n")
    out = os.environ.get("STAGEBOT_LIMITS_SUMMARY")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(table + "\n")


# ---------------------------------------------------------------- replies to commands


OUTCOME_KINDS = list(get_args(OutcomeKind))  # every kind the core can answer with


@EXAMPLES
@given(
    accounts, st.sampled_from(OUTCOME_KINDS), texts(MAX_TITLE), st.lists(texts(60), max_size=5), st.booleans(), langs
)
def test_outcome_replies(a: AccountView, kind: str, item: str, ticked: list[str], replayed: bool, lang: str) -> None:
    o = Outcome(
        kind=kind,  # type: ignore[arg-type]
        account=a,
        from_stage="P1",
        to_stage="P2",
        approval_id=7,
        approval_team="sales",
        handoff_ids=(3,),
        item=item,
        renewal="expansion",
        ticked=tuple(ticked),
        task_id=5,
        until=T0,
        replayed=replayed,
    )
    message("reply: outcome", sb.reply(o, P, lang))  # type: ignore[arg-type]


@EXAMPLES
@given(texts(4000, 1))
def test_failure_replies(text: str) -> None:
    # A user-safe message may quote what was typed (commands are at most 2,000 characters).
    message("reply: failure", sb.error_message(text))


@EXAMPLES
@given(
    accounts,
    st.lists(st.tuples(st.booleans(), people), max_size=12),
    st.one_of(st.none(), st.builds(lambda r, p: (r, p), reasons, people)),
    st.integers(0, 30),
    st.lists(stages, max_size=len(STAGES)),
    langs,
)
def test_account_card_replies(
    a: AccountView,
    checks: list[tuple[bool, str | None]],
    pending: tuple[str, str | None] | None,
    handoffs: int,
    allowed: list[str],
    lang: str,
) -> None:
    checklist = tuple(
        ChecklistLine(number=i + 1, key=f"k{i}", en="Checklist item " * 10, zh="检查项" * 20, done=d, by=by, at=T0)
        for i, (d, by) in enumerate(checks)
    )
    approval = None
    if pending is not None:
        approval = _approval(1, a.name, pending[0], pending[1] or "slack:U0X")
    opened = tuple(HandoffView(id=i, account_id=a.id, stage="P0", to_team="cs", opened_at=T0) for i in range(handoffs))
    cd = AccountCard(
        account=a,
        checklist=checklist,
        time_in_stage_seconds=10**9,
        sla_days=14,
        overdue=True,
        pending_approval=approval,
        open_handoffs=opened,
        allowed_next=tuple(allowed),
    )
    message("reply: account card", sb.reply(cd, P, lang))  # type: ignore[arg-type]


@EXAMPLES
@given(st.lists(accounts, min_size=1, max_size=4), counts, st.sampled_from([None, "P2"]), st.booleans(), langs)
def test_account_list_replies(drawn: list[AccountView], n: int, stage: str | None, mine: bool, lang: str) -> None:
    al = _account_list(many(drawn, n), stage, mine)
    msg = sb.reply(al, P, lang)  # type: ignore[arg-type]
    message("reply: account list", msg)
    if n > sb.MAX_ITEMS:  # a cut list says how many more and how to narrow it
        assert "/stage list" in msg.blocks[-1]["elements"][0]["text"]


@EXAMPLES
@given(accounts, st.lists(st.tuples(reasons, people, texts(20)), min_size=1, max_size=4), counts, langs)
def test_history_replies(a: AccountView, drawn: list[tuple[str, str | None, str]], n: int, lang: str) -> None:
    lines = tuple(
        HistoryLine(
            at=T0 + timedelta(minutes=i),
            actor=actor or "slack:U0X",
            from_stage=None if i == 0 else "P1",
            to_stage="P2",
            kind="advance",
            reason=reason,
            via=via,
        )
        for i, (reason, actor, via) in enumerate(many(drawn, n))
    )
    message("reply: history", sb.reply(History(account=a, lines=lines, truncated=n > 200), P, lang))  # type: ignore[arg-type]


def _approval(n: int, name: str, reason: str, by: str) -> ApprovalView:
    return ApprovalView(
        id=n,
        account_id=n,
        account=name,
        from_stage="PQL",
        to_stage="P0",
        reject_to="SQL",
        team="sales",
        status="pending",
        requested_by=by,
        requested_at=T0,
        reason=reason,
    )


approvals = st.builds(_approval, st.integers(1, 2**63 - 1), names, reasons, people.map(lambda p: p or "slack:U0X"))


@EXAMPLES
@given(st.lists(approvals, min_size=1, max_size=4), counts, langs)
def test_approval_list_replies(drawn: list[ApprovalView], n: int, lang: str) -> None:
    message("reply: approvals", sb.reply(ApprovalList(approvals=tuple(many(drawn, n))), P, lang))  # type: ignore[arg-type]


def _handoff(a: AccountView, team: str) -> tuple[AccountView, HandoffView]:
    return a, HandoffView(id=a.id, account_id=a.id, stage="P0", to_team=team, opened_at=T0)


handoffs = st.builds(_handoff, accounts, st.sampled_from(TEAMS))


@EXAMPLES
@given(st.lists(handoffs, min_size=1, max_size=4), counts, langs)
def test_handoff_list_replies(drawn: list[tuple[AccountView, HandoffView]], n: int, lang: str) -> None:
    listed = many(drawn, n)
    msg = sb.reply(HandoffList(handoffs=tuple(listed)), P, lang)  # type: ignore[arg-type]
    message("reply: handoffs", msg)
    if n > (sb.MAX_BLOCKS - 2) // 2:
        assert "/stage claim" in msg.blocks[-1]["elements"][0]["text"]


def _task(n: int, account: str, title: str, assignee: str | None) -> TaskView:
    return TaskView(
        id=n,
        account_id=n,
        account=account,
        title_en=title,
        title_zh=title,
        team="cs",
        assignee=assignee,
        status="open",
        opened_at=T0,
    )


tasks = st.builds(_task, st.integers(1, 2**63 - 1), names, texts(MAX_TITLE, 1), people)


@EXAMPLES
@given(st.lists(tasks, min_size=1, max_size=4), counts, st.one_of(st.none(), names), langs)
def test_task_list_replies(drawn: list[TaskView], n: int, account: str | None, lang: str) -> None:
    msg = sb.reply(TaskList(tasks=tuple(many(drawn, n)), account=account), P, lang)  # type: ignore[arg-type]
    message("reply: tasks", msg)
    if n > (sb.MAX_BLOCKS - 2) // 2:
        assert "/stage " in msg.blocks[-1]["elements"][0]["text"]


_figures = st.builds(
    StageFigures,
    stage=stages,
    entries=st.integers(0, 10**9),
    converted=st.integers(0, 10**9),
    conversion=st.one_of(st.none(), st.floats(0, 1)),
    avg_days=st.one_of(st.none(), st.floats(0, 10**6)),
    median_days=st.one_of(st.none(), st.floats(0, 10**6)),
    in_stage_now=st.integers(0, 10**9),
)
_forecast = st.builds(
    ForecastLine,
    stage=stages,
    accounts=st.integers(0, 10**9),
    amount=st.decimals(0, Decimal("99999999999999.99"), places=2),
    probability=st.floats(0, 1),
    weighted=st.decimals(0, Decimal("99999999999999.99"), places=2),
)
reports = st.builds(
    Report,
    since=st.one_of(st.none(), st.just(T0)),
    until=st.one_of(st.none(), st.just(T0)),
    team=st.one_of(st.none(), st.sampled_from(TEAMS)),
    owner=people,
    segment=st.one_of(st.none(), texts(MAX_LEN["segment"], 1)),
    stages=st.lists(_figures, max_size=len(STAGES)).map(tuple),
    bottleneck=st.one_of(st.none(), stages),
    forecast=st.lists(_forecast, max_size=len(STAGES)).map(tuple),
    weighted_total=st.decimals(0, Decimal("99999999999999.99"), places=2),
    sql_p0_amount=st.decimals(0, Decimal("99999999999999.99"), places=2),
    renewals_next_quarter=st.integers(0, 10**9),
    renewals_next_quarter_amount=st.decimals(0, Decimal("99999999999999.99"), places=2),
    generated_at=st.just(T0),
)


@EXAMPLES
@given(reports, langs)
def test_report_table_replies(r: Report, lang: str) -> None:
    message("reply: report table", sb.reply(r, P, lang))  # type: ignore[arg-type]


# ---------------------------------------------------------------- channel notifications and card updates

APPROVERS = st.integers(0, 40).map(lambda n: tuple(f"slack:U0APPROVER{i:02d}" for i in range(n)))


def _event(kind: str, name: str, reason: str, title: str, approvers: tuple[str, ...], owner: str | None) -> ev.Event:
    return every_event(name, reason, title=title, approvers=approvers, owner=owner)[kind]


NOTIFIED = [
    "StageChanged",
    "ApprovalRequested",
    "HandoffOpened",
    "SlaReminder",
    "RenewalDue",
    "HandoffEscalated",
    "ChurnRisk",
    "TaskOpened",
    "TaskDone",
    "AccountAdded",
    "OwnerAssigned",
    "RenewalRecorded",
    "AutomationNotice",
]


@pytest.mark.parametrize("kind", NOTIFIED)
@EXAMPLES
@given(names, reasons, texts(MAX_TITLE, 1), APPROVERS, people, langs)
def test_channel_notifications(
    kind: str, name: str, reason: str, title: str, approvers: tuple[str, ...], owner: str | None, lang: str
) -> None:
    e = _event(kind, name, reason, title, approvers, owner)
    msg = sb.notification(e, P, lang)  # type: ignore[arg-type]
    message(f"notify: {kind}", msg)
    if kind == "SlaReminder":  # the snooze buttons that were refused in production
        (actions,) = [b for b in msg.blocks if b["type"] == "actions"]
        assert len({el["action_id"] for el in actions["elements"]}) == 3


@EXAMPLES
@given(names, reasons, reasons, people, st.sampled_from(["approved", "rejected"]), st.booleans(), langs)
def test_approval_decided_card_updates(
    name: str, reason: str, note: str, owner: str | None, decision: str, with_request: bool, lang: str
) -> None:
    shown = every_event(name, reason, owner=owner)
    decided = shown["ApprovalDecided"].model_copy(update={"decision": decision, "note": note})
    requested = shown["ApprovalRequested"] if with_request else None
    assert isinstance(decided, ev.ApprovalDecided) and isinstance(requested, ev.ApprovalRequested | None)
    msg = sb.decided_card(decided, P, lang, requested=requested)  # type: ignore[arg-type]
    message("update: approval decided", msg)


@EXAMPLES
@given(names, people, st.booleans(), langs)
def test_handoff_taken_card_updates(name: str, owner: str | None, with_prompt: bool, lang: str) -> None:
    shown = every_event(name, owner=owner)
    claimed, opened = shown["HandoffClaimed"], shown["HandoffOpened"] if with_prompt else None
    assert isinstance(claimed, ev.HandoffClaimed) and isinstance(opened, ev.HandoffOpened | None)
    message("update: handoff taken", sb.claimed_card(claimed, P, lang, opened=opened))  # type: ignore[arg-type]


# ---------------------------------------------------------------- App Home


def _account_list(listed: list[AccountView], stage: str | None = None, mine: bool = False) -> AccountList:
    groups: dict[str, list[AccountView]] = {}
    for a in listed:
        groups.setdefault(stage or a.stage, []).append(a)
    ordered = tuple((k, tuple(groups[k])) for k in STAGES if k in groups)
    return AccountList(groups=ordered, total=len(listed), stage_filter=stage, mine=mine)


@pytest.mark.slow  # long hypothesis run: ~5 s
@EXAMPLES
@given(
    st.lists(accounts, min_size=1, max_size=3),
    st.tuples(counts, counts, counts, st.integers(0, 100)),
    st.lists(approvals, min_size=1, max_size=3),
    st.lists(handoffs, min_size=1, max_size=3),
    st.lists(reports, max_size=3),
    langs,
    st.one_of(st.none(), texts(MAX_REASON * 3)),
)
def test_app_home(
    drawn: list[AccountView],
    sizes: tuple[int, int, int, int],
    waiting: list[ApprovalView],
    handed: list[tuple[AccountView, HandoffView]],
    team_reports: list[Report],
    lang: str,
    answer: str | None,
) -> None:
    n_mine, n_stale, n_waiting, n_handoffs = sizes
    view = sb.home_view(
        mine=_account_list(many(drawn, n_mine)),
        waiting=ApprovalList(approvals=tuple(many(waiting, n_waiting))),
        stale=_account_list(many(drawn, n_stale)),
        pipeline=P,
        lang=lang,  # type: ignore[arg-type]
        handoffs=many(handed, n_handoffs),
        reports=team_reports,
        # A press in the Home puts its answer on top, as adapters/slack/app.py does.
        notice=sb.error_message(answer).blocks[:HOME_NOTICE_BLOCKS] if answer is not None else (),
    )
    accepted("App Home view", view["blocks"], view=view)


# ---------------------------------------------------------------- the fit layer itself

_any_text = st.one_of(texts(4000), st.just(""))
_button = st.fixed_dictionaries(
    {
        "type": st.just("button"),
        "text": st.fixed_dictionaries({"type": st.just("plain_text"), "text": _any_text}),
        "action_id": st.sampled_from(["stagebot:x", "stagebot:y", "a" * 300]),
        "value": st.just("{}"),
    }
)
_block = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("section"), "text": st.fixed_dictionaries({"type": st.just("mrkdwn"), "text": _any_text})},
        optional={"block_id": st.sampled_from(["b", "c" * 300]), "accessory": _button},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("section"),
            "fields": st.lists(
                st.fixed_dictionaries({"type": st.just("mrkdwn"), "text": _any_text}), min_size=1, max_size=14
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("header"), "text": st.fixed_dictionaries({"type": st.just("plain_text"), "text": _any_text})}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("context"),
            "elements": st.lists(
                st.fixed_dictionaries({"type": st.just("mrkdwn"), "text": _any_text}), min_size=1, max_size=14
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("actions"), "elements": st.lists(_button, min_size=1, max_size=30)},
        optional={"block_id": st.sampled_from(["b", "c" * 300])},
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_block, max_size=60))
def test_fit_makes_any_block_list_acceptable(blocks: list[dict[str, Any]]) -> None:
    fitted = sb.fit(blocks)
    assert bk.message_errors(fitted) == [], bk.message_errors(fitted)[:5]
    assert bk.message_errors(fitted, length=bk.utf16_units) == []
    assert bk.block_text_chars(fitted) <= sb.MESSAGE_TEXT or len(fitted) == 1
    kept = [b["type"] for b in fitted]  # blocks are dropped from the end only, never reordered
    assert kept == [b["type"] for b in blocks[: len(kept)]] and len(kept) == min(len(blocks), len(kept), 50)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("topic", [None, *(s.name for s in SPECS)])
def test_help_replies(topic: str | None, lang: str) -> None:
    message("reply: help", sb.help_message(lang, topic))  # type: ignore[arg-type]
