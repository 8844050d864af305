"""The view model of each notification and approval/handoff card, built once for every platform.

Words come from adapters/common/text.py, buttons from adapters/common/actions.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from adapters.common import text as tx
from adapters.common.actions import Button, buttons_for
from adapters.common.grammar import help_text
from adapters.common.view import Card, Field, Line, Row, Tone, plain, strong
from lifecycle.domain import events as ev
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    AccountView,
    ApprovalList,
    ApprovalView,
    HandoffList,
    HandoffView,
    History,
    Outcome,
    People,
    Report,
    TaskList,
)

_TONE: dict[str, Tone] = {"ApprovalRequested": "ask", "HandoffOpened": "handoff"}


def revision(*parts: object) -> str:
    """A short digest that changes whenever what a card shows changes (a new block_id per revision)."""
    return hashlib.blake2s(repr(parts).encode(), digest_size=4).hexdigest()


def _event_key(e: ev.Event, ident: int) -> str:
    try:
        dump = e.model_dump_json()
    except ValueError:  # a lone surrogate in user text cannot be JSON (Feishu sends it as U+FFFD)
        dump = repr(e.model_dump())
    return f"{e.kind}:{ident}:{revision(dump)}"


def _label(key: str, lang: Lang) -> str:
    return tx.LABELS[key](lang)


def _approval_fields(
    p: Pipeline,
    lang: Lang,
    *,
    from_stage: str,
    to_stage: str,
    requested_by: str,
    req: ev.ApprovalRequested | None,
    people: People,
) -> tuple[Field, ...]:
    pairs: list[tuple[str, Line]] = [
        ("from", (tx.stage_title(p, from_stage, lang),)),
        ("to", (tx.stage_title(p, to_stage, lang),)),
    ]
    if req is not None:
        pairs.append(("amount", (tx.amount(req.amount),)))
    pairs.append(("requested_by", (tx.who(requested_by, people),)))
    if req is not None and req.owner:
        pairs.append(("owner", (tx.who(req.owner, people),)))
    if req is not None and req.reason:
        pairs.append(("reason", (req.reason,)))
    return tuple(Field(_label(k, lang), v) for k, v in pairs)


def card_for_event(e: ev.Event, p: Pipeline, lang: Lang = "en") -> Card:
    """A notification for an owner team's channel; approvals and handoffs carry their buttons."""
    title, text, buttons = tx.event_title(e, p, lang), tx.notification(e, p, lang), tuple(buttons_for(e))
    tone = _TONE.get(e.kind, "info")
    if isinstance(e, ev.ApprovalRequested):
        fields = _approval_fields(
            p, lang, from_stage=e.from_stage, to_stage=e.to_stage, requested_by=e.actor, req=e, people=e.people
        )
        key = _event_key(e, e.approval_id)
        return Card(title, text, fields, notes=(tx.approval_note(e, p, lang),), buttons=buttons, tone=tone, key=key)
    ident = e.handoff_id if isinstance(e, ev.HandoffOpened) else e.account_id
    key = _event_key(e, ident)
    line = tx.notification_line(e, p, lang)
    return Card(title, text, lines=(line,), buttons=buttons, tone=tone, compact=True, key=key)


def decided_card(
    e: ev.ApprovalDecided, p: Pipeline, lang: Lang = "en", *, requested: ev.ApprovalRequested | None = None
) -> Card:
    """The approval card after the decision: no buttons, who decided and when.

    With the original `requested` event the amount, owner and reason fields stay on the card.
    """
    people = {**(requested.people if requested else {}), **e.people}
    fields = _approval_fields(
        p, lang, from_stage=e.from_stage, to_stage=e.to_stage, requested_by=e.requested_by, req=requested, people=people
    )
    tone: Tone = "good" if e.decision == "approved" else "bad"
    return Card(
        tx.event_title(e, p, lang),
        tx.notification(e, p, lang),
        fields,
        notes=(tx.decided_line(e.decision, e.actor, lang, at=e.at, note=e.note or "", people=e.people),),
        tone=tone,
    )


def claimed_card(
    e: ev.HandoffClaimed, p: Pipeline, lang: Lang = "en", *, opened: ev.HandoffOpened | None = None
) -> Card:
    """The handoff prompt after someone took it: no button, the prompt's sentence, who took it and when."""
    first = tx.notification_line(opened if opened is not None else e, p, lang)
    return Card(
        tx.event_title(e, p, lang),
        tx.notification(e, p, lang),
        lines=(first,),
        notes=(tx.claimed_line(e.actor, lang, at=e.at, people=e.people),),
        tone="good",
        compact=True,
    )


def card_for_outcome(o: Outcome, p: Pipeline, lang: Lang = "en") -> Card:
    """What a command did: a sentence or two under the account and its stage."""
    a = o.account
    title: Line = (strong(a.name), (":" if lang == "zh" else ": ") + tx.short_stage(p, a.stage, lang))
    tone: Tone = "ask" if o.kind == "approval_requested" else "good"
    return Card(title, tx.outcome(o, p, lang), lines=tx.outcome_lines(o, p, lang), tone=tone, compact=True)


def card_for_account(cd: AccountCard, p: Pipeline, lang: Lang = "en") -> Card:
    """An account's card: its facts as fields, its checklist, and what waits on it."""
    a, zh = cd.account, lang == "zh"
    st = p.stage_by_key.get(a.stage)
    in_stage = tx.duration(cd.time_in_stage_seconds, lang)
    if cd.sla_days:
        in_stage += f" / SLA {cd.sla_days}{'天' if zh else 'd'}"
        if cd.overdue:
            in_stage += " ⚠ 超期" if zh else " ⚠ overdue"
    pairs: list[tuple[str, Line]] = [
        ("stage", (tx.stage_title(p, a.stage, lang),)),
        ("owner_team", (p.owner_labels(st, lang) if st else "-",)),
        ("owner", (tx.who(a.owner, cd.people),)),
        ("in_stage", (in_stage,)),
        ("amount", (tx.amount(a.amount),)),
    ]
    if a.segment:
        pairs.append(("segment", (a.segment,)))
    if a.contract_end:
        pairs.append(("contract_end", (a.contract_end.isoformat(),)))
    lines: list[Line] = []
    if cd.checklist:
        lines.append(
            (strong(_label("checklist", lang)), _label("required", lang) if st and st.require_checklist else "")
        )
        for item in cd.checklist:
            by: Line = (" — ", tx.who(item.by, cd.people), f" {tx.when(item.at)}") if item.done and item.by else ()
            lines.append((f"{'✅' if item.done else '⬜'} {item.number}. ", item.zh if zh else item.en, *by))
    notes: list[Line] = []
    if cd.allowed_next:
        notes.append((f"{_label('next', lang)}: " + ", ".join(tx.stage_title(p, k, lang) for k in cd.allowed_next),))
    if cd.pending_approval:
        ap = cd.pending_approval
        waiting = "等待审批" if zh else "Waiting for approval"
        to = tx.stage_title(p, ap.to_stage, lang)
        notes.append(
            (f"⏳ {waiting} #{ap.id} → {to} · ", tx.who(ap.requested_by, cd.people), f" · {tx.utc(ap.requested_at)}")
        )
    for h in cd.open_handoffs:
        team, since = tx.team_label(p, h.to_team, lang), tx.utc(h.opened_at)
        notes.append((f"🤝 待{team}接手,自 {since}" if zh else f"🤝 Handoff open for {team} since {since}",))
    return Card(
        (strong(a.name), f" (#{a.id})"),
        tx.card(cd, p, lang),
        tuple(Field(_label(k, lang), v) for k, v in pairs),
        lines=tuple(lines),
        notes=tuple(notes),
        tone="bad" if cd.overdue else "info",
    )


def card_for_history(h: History, p: Pipeline, lang: Lang = "en") -> Card:
    """An account's stage changes, oldest first; a cut keeps the newest."""
    zh = lang == "zh"
    ordered = sorted(h.lines, key=lambda ln: ln.at)  # stable for equal times
    recent = ordered[-tx.MAX_LINES :]
    lines = tuple(tx.history_line(ln, p, lang, h.people) for ln in recent)
    if not lines:
        lines = (("还没有阶段变更。" if zh else "No stage changes yet.",),)
    more, cut_by_core = tx.history_notes(h, lang)
    return Card(
        (strong(h.account.name), f" (#{h.account.id}) — {'历史' if zh else 'history'}"),
        tx.history(h, p, lang),
        lines=lines,
        notes=((cut_by_core,),) if cut_by_core else (),
        more=more,
        hidden=len(ordered) - len(recent),
        newest_last=True,
    )


def decision_card(o: Outcome, p: Pipeline, lang: Lang = "en", *, by: str) -> Card:
    """The card shown right after a button press (by `by`) decided an approval or took a handoff."""
    a = o.account
    if o.kind == "claimed":
        title, note = tx.handoff_title(a.name, lang), tx.claimed_line(by, lang, people=o.people)
    else:
        title = tx.approval_title(a.name, o.to_stage, p, lang)
        note = tx.decided_line(o.kind, by, lang, people=o.people)
    shown = o.model_copy(update={"replayed": False})
    return Card(
        title,
        tx.outcome(shown, p, lang),
        lines=tx.outcome_lines(shown, p, lang),
        notes=(note,),
        tone="bad" if o.kind == "rejected" else "good",
    )


def card_for_report(r: Report, p: Pipeline, lang: Lang = "en") -> Card:
    """The funnel, forecast and renewals figures as a table."""
    text = tx.report(r, p, lang)
    lines = tuple((ln,) for ln in text.splitlines())
    return Card((tx.report_title(r, lang),), text, lines=lines, tone="figures", compact=True, table=True)


def _empty(title: str, text: str) -> Card:
    return Card((title,), text, lines=((text,),), compact=True)


def account_rows(al: AccountList, p: Pipeline, lang: Lang = "en", *, since: bool = False) -> tuple[Row, ...]:
    """Accounts under their stage's heading, at most text.MAX_LINES; a stage past the cap keeps its heading."""
    rows: list[Row] = []
    left = tx.MAX_LINES
    for stage, accounts in al.groups:
        group: Line = (strong(tx.stage_title(p, stage, lang)), f" — {len(accounts)}")
        taken = accounts[: max(left, 0)]
        left -= len(taken)
        rows += [Row((tx.account_row(a, lang, since=since, people=al.people),), group) for a in taken]
        if not taken:
            rows.append(Row((), group))
    return tuple(rows)


def _list(
    title: str,
    text: str,
    total: int,
    rows: tuple[Row, ...],
    kind: str,
    lang: Lang,
    *,
    notes: tuple[Line, ...] = (),
    command: str | None = None,
) -> Card:
    """A list reply: its title with the count, the rows, and the line a cut list ends with (`kind`'s words)."""
    return Card(
        (f"{title} — {total}",),
        text,
        rows=rows,
        notes=notes,
        more=tx.list_more(kind, lang),
        command=command or tx.list_command(kind, lang),
        hidden=total - sum(1 for r in rows if r.lines),
    )


def card_for_accounts(al: AccountList, p: Pipeline, lang: Lang = "en") -> Card:
    """Accounts by stage; a cut list names the command that narrows it: a stage first, then one's own."""
    text = tx.account_list(al, p, lang)
    if al.stage_filter:
        title = tx.list_title("stage", lang, stage=tx.stage_title(p, al.stage_filter, lang))
    else:
        title = tx.list_title("mine" if al.mine else "accounts", lang)
    if al.total == 0:
        return _empty(title, text)
    stage = al.stage_filter or next((k for k, accs in al.groups if accs), p.first_stage.key)
    command = f"list {stage}{' --mine' if al.stage_filter or al.mine else ''}"
    return _list(title, text, al.total, account_rows(al, p, lang), "accounts", lang, command=command)


def card_for_approvals(al: ApprovalList, p: Pipeline, lang: Lang = "en") -> Card:
    """Approvals waiting, two lines each, with the commands that decide them."""
    text, title = tx.approval_list(al, p, lang), tx.list_title("approvals", lang)
    if not al.approvals:
        return _empty(title, text)
    rows = tuple(Row(tx.approval_item(ap, p, lang, al.people)) for ap in al.approvals[: tx.MAX_LINES])
    return _list(title, text, len(al.approvals), rows, "approvals", lang, notes=(tx.approvals_how(lang),))


def card_for_handoffs(hl: HandoffList, p: Pipeline, lang: Lang = "en") -> Card:
    """Open handoffs, each with its Take ownership button (the same value as the channel prompt's)."""
    text, title = tx.handoff_list(hl, p, lang), tx.list_title("handoffs", lang)
    if not hl.handoffs:
        return _empty(title, text)
    rows = []
    for a, h in hl.handoffs[: tx.MAX_LINES]:
        line: Line = (strong(a.name), f" → {tx.team_label(p, h.to_team, lang)}, {tx.short_stage(p, h.stage, lang)}")
        take = Button(Text("Take ownership", "接手"), {"v": 1, "op": "claim", "handoff": h.id}, "primary")
        rows.append(Row((line,), buttons=(take,), key=f"handoffs:{h.id}", tag=a.name))
    return _list(title, text, len(hl.handoffs), tuple(rows), "handoffs", lang)


def card_for_tasks(tl: TaskList, p: Pipeline, lang: Lang = "en") -> Card:
    """Open tasks, each with its Done button; a cut list of one account's says finishing some shows the rest."""
    text, title = tx.task_list(tl, p, lang), tx.list_title("tasks", lang)
    if not tl.tasks:
        return _empty(title, text)
    done = Text("Done", "完成")
    rows = tuple(
        Row(
            (tx.task_item(t, lang, tl.people),),
            buttons=(Button(done, {"v": 1, "op": "done", "task": t.id}, "primary"),),
            key=f"tasks:{t.id}",
            tag=f"#{t.id}",
        )
        for t in tl.tasks[: tx.MAX_LINES]
    )
    return _list(title, text, len(tl.tasks), rows, "account_tasks" if tl.account else "tasks", lang)


def card_for_help(topic: str | None = None, lang: Lang = "en", *, intro: Line | None = None) -> Card:
    """The command list, or one command's usage, under `intro` (by default: type `COMMAND` after the prefix).

    Raises grammar.UsageError for an unknown topic, like help_text.
    """
    body = help_text(topic, lang)
    lead = tx.help_usage(lang) if intro is None else intro
    lines = tuple((ln,) for ln in body.splitlines())
    return Card(
        (tx.help_title(lang),), f"{plain(lead)}\n{body}", lines=lines, lead=lead, tone="quiet", compact=True, table=True
    )


def card_for_error(message: str, lang: Lang = "en") -> Card:
    """A refusal or failure, already in the reader's language."""
    return Card((tx.error_title(lang),), message, lines=((message,),), tone="warn", compact=True)


def _approval_request(ap: ApprovalView) -> ev.ApprovalRequested:
    # The Home buttons come from the same buttons_for() as the channel card, so their values match.
    return ev.ApprovalRequested(
        account_id=ap.account_id,
        account=ap.account,
        at=ap.requested_at,
        actor=ap.requested_by,
        approval_id=ap.id,
        from_stage=ap.from_stage,
        to_stage=ap.to_stage,
        reject_to=ap.reject_to,
        team=ap.team,
        reason=ap.reason,
    )


def _handoff_opened(a: AccountView, h: HandoffView) -> ev.HandoffOpened:
    return ev.HandoffOpened(
        account_id=a.id,
        account=a.name,
        at=h.opened_at,
        actor=a.owner or "-",
        handoff_id=h.id,
        stage=h.stage,
        from_teams=(),
        to_team=h.to_team,
        owner=a.owner,
        amount=a.amount,
    )


def home_part(kind: str, rows: tuple[Row, ...], total: int, lang: Lang) -> Card:
    """A part of the Home: its title, its rows, the sentence for none and the line for more (`{n}`, `{command}`)."""
    title, empty, more, command = tx.home_part(kind, lang)
    return Card(
        (title,),
        empty,
        rows=rows,
        more=more,
        command=command,
        hidden=total - sum(1 for r in rows if r.lines),
    )


def home_cards(
    mine: AccountList,
    approvals: Sequence[ApprovalView],
    handoffs: Sequence[tuple[AccountView, HandoffView]],
    stale: AccountList,
    p: Pipeline,
    lang: Lang = "en",
    people: People | None = None,
) -> tuple[Card, Card, Card]:
    """The Home's parts: the viewer's accounts by stage, what waits on the viewer (approvals with
    Approve / Reject, handoffs with Take ownership, the same values as the channel cards), and what is
    past its SLA."""
    waiting: list[Row] = []
    for ap in approvals:
        key = f"home:approval:{ap.id}:{revision(ap.model_dump_json())}"
        waiting.append(
            Row(tx.approval_item(ap, p, lang, people), buttons=tuple(buttons_for(_approval_request(ap))), key=key)
        )
    for a, h in handoffs:
        key = f"home:handoff:{h.id}:{revision(a.model_dump_json(), h.model_dump_json())}"
        line = tx.home_handoff(a, h, p, lang)
        waiting.append(Row((line,), buttons=tuple(buttons_for(_handoff_opened(a, h))), key=key, beside=True))
    return (
        home_part("mine", account_rows(mine, p, lang), mine.total, lang),
        home_part("waiting", tuple(waiting), len(waiting), lang),
        home_part("stale", account_rows(stale, p, lang, since=True), stale.total, lang),
    )


_CARDS: dict[type, Callable[[Any, Pipeline, Lang], Card]] = {
    Outcome: card_for_outcome,
    AccountCard: card_for_account,
    History: card_for_history,
    AccountList: card_for_accounts,
    ApprovalList: card_for_approvals,
    HandoffList: card_for_handoffs,
    TaskList: card_for_tasks,
    Report: card_for_report,
}


def card_for(answer: object, p: Pipeline, lang: Lang = "en") -> Card:
    """The card answering a command with an outcome or a read model; TypeError for anything else."""
    build = _CARDS.get(type(answer))
    if build is None:
        raise TypeError(f"no card for {type(answer).__name__}")
    return build(answer, p, lang)
