"""Plain-text rendering of outcomes, read models and notifications, in en or zh.

The console prints these; Slack and Feishu use them as the text fallback of their rich messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from adapters.common.view import Line, Segment, Span, joined, plain, strong
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
    HistoryLine,
    Outcome,
    People,
    Report,
    TaskList,
    TaskView,
    Who,
)

MAX_LINES = 60  # lists longer than this are cut with a note, on every platform


def duration(seconds: float, lang: Lang = "en") -> str:
    s = int(max(0, seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if lang == "zh":
        if d:
            return f"{d}天{h}小时" if h else f"{d}天"
        return f"{h}小时{m}分" if h else f"{m}分钟"
    if d:
        return f"{d}d {h}h" if h else f"{d}d"
    return f"{h}h {m}m" if h else f"{m}m"


def waited(hours: int, lang: Lang = "en") -> str:
    """A wait as people say it: whole days from two days on (`20 days`), hours below (`30 hours`)."""
    if hours >= 48:
        return f"{hours // 24} 天" if lang == "zh" else f"{hours // 24} days"
    return f"{hours} 小时" if lang == "zh" else f"{hours} hour{'' if hours == 1 else 's'}"


def amount(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}".removesuffix(".00")


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


def utc(at: datetime | None) -> str:
    """A moment as `YYYY-MM-DD HH:MM UTC` (an aware one converted first)."""
    if at is None:
        return "-"
    return when(at.astimezone(UTC) if at.tzinfo else at) + " UTC"


def _known(ref: str | None, people: People | None) -> Who | None:
    """The person `ref` is, by the ref as stored or by any other platform ref of theirs (a button
    pressed in Feishu by someone whose identity is their Slack ref)."""
    if not ref or not people:
        return None
    return people.get(ref) or next((w for w in people.values() if ref in w.refs), None)


def person(ref: str | None, people: People | None = None) -> str:
    """A person as plain text: their name when the people directory knows them, else `@user`."""
    if not ref:
        return "-"
    known = _known(ref, people)
    if known is not None:
        return known.name
    platform, _, user = ref.partition(":")
    return f"@{user}" if platform in ("slack", "feishu", "console", "person") else ref


def stage_title(p: Pipeline, key: str | None, lang: Lang = "en") -> str:
    if key is None:
        return "-"
    st = p.stage_by_key.get(key)
    if st is None:
        return key
    other = st.zh if lang == "en" else st.en
    return f"{st.title(lang)} ({other})"


def team_label(p: Pipeline, key: str, lang: Lang = "en") -> str:
    team = p.team_by_key.get(key)
    return team.label(lang) if team else key


def outcome(o: Outcome, p: Pipeline, lang: Lang = "en") -> str:
    return "\n".join(plain(line) for line in outcome_lines(o, p, lang))


def outcome_lines(o: Outcome, p: Pipeline, lang: Lang = "en") -> tuple[Line, ...]:
    """What a command did, in a sentence or two, with the account marked."""
    a = o.account
    zh = lang == "zh"

    def t(k: str | None) -> str:
        return stage_title(p, k, lang)

    n = strong(a.name)
    line: Line
    if o.kind == "added":
        line = (
            ("已新建 ", n, f" (#{a.id}),阶段 {t(a.stage)}。") if zh else ("Added ", n, f" (#{a.id}) in {t(a.stage)}.")
        )
    elif o.kind == "moved":
        line = (n, f":{t(o.from_stage)} → {t(o.to_stage)}。") if zh else (n, f": {t(o.from_stage)} → {t(o.to_stage)}.")
    elif o.kind == "approval_requested":
        team = team_label(p, o.approval_team, lang) if o.approval_team else "-"
        line = (
            (n, f" 推进到 {t(o.to_stage)} 需要审批:已发给{team}审批人(审批 #{o.approval_id})。")
            if zh
            else (n, f" → {t(o.to_stage)} needs approval: sent to the {team} approvers (approval #{o.approval_id}).")
        )
    elif o.kind in ("approved", "rejected"):
        verb = ("批准" if o.kind == "approved" else "驳回") if zh else o.kind
        line = (
            (f"审批 #{o.approval_id} 已{verb}:", n, f" 现在处于 {t(a.stage)}。")
            if zh
            else (f"Approval #{o.approval_id} {verb}: ", n, f" is now in {t(a.stage)}.")
        )
    elif o.kind in ("ticked", "already_ticked"):
        st = p.stage(a.stage)
        item = next((i for i in st.checklist if i.key == o.item), None)
        label = item.label(lang) if item else o.item
        done = "已勾选" if o.kind == "ticked" else "之前已勾选"
        ticked = "ticked" if o.kind == "ticked" else "already ticked"
        line = (n, f":{done}“{label}”。") if zh else (n, f": {ticked} “{label}”.")
    elif o.kind == "assigned":
        owner = who(a.owner, o.people) if a.owner else "-"
        line = (n, " 的负责人为 ", owner, "。") if zh else (n, " is now owned by ", owner, ".")
    elif o.kind == "renewed":
        kind = ("增购" if o.renewal == "expansion" else "续费") if zh else (o.renewal or "renewal")
        line = (
            (n, f":已记录{kind} {amount(a.amount)},合同至 {a.contract_end}。")
            if zh
            else (n, f": {kind} of {amount(a.amount)} recorded, contract until {a.contract_end}.")
        )
    elif o.kind == "signal":
        done = ", ".join(o.ticked)
        if zh:
            line = (n, f":已记录信号,勾选了 {done}。" if done else ":已记录信号。")
        else:
            line = (n, f": signal recorded; ticked {done}." if done else ": signal recorded.")
    elif o.kind == "task_opened":
        line = (n, f":已新建任务 #{o.task_id}:{o.item}") if zh else (n, f": task #{o.task_id} opened: {o.item}")
    elif o.kind == "task_done":
        line = (f"任务 #{o.task_id}(", n, ")已完成。") if zh else (f"Task #{o.task_id} (", n, ") is done.")
    elif o.kind == "snoozed":
        line = (
            (n, f" 的 SLA 提醒已暂停至 {when(o.until)} (UTC)。")
            if zh
            else ("No SLA reminders for ", n, f" until {when(o.until)} UTC.")
        )
    elif o.kind == "claimed":
        line = ("你已接手 ", n, "。") if zh else ("You now own ", n, ".")
    else:  # pragma: no cover - OutcomeKind is a closed Literal
        line = (o.kind,)
    lines: list[Line] = [line]
    if o.handoff_ids and o.kind in ("moved", "approved"):
        lines.append(("已通知接收团队接手。" if zh else "The receiving team has been asked to take ownership.",))
    if o.replayed:
        lines.append(
            ("(重复请求:之前已处理,未再次执行。)" if zh else "(Repeat of a request already applied; nothing changed.)",)
        )
    return tuple(lines)


def card(cd: AccountCard, p: Pipeline, lang: Lang = "en") -> str:
    a, zh = cd.account, lang == "zh"
    st = p.stage(a.stage)
    sla = ""
    if cd.sla_days:
        sla = f" / SLA {cd.sla_days}{'天' if zh else 'd'}" + (
            " ⚠ 超期" if zh and cd.overdue else " ⚠ overdue" if cd.overdue else ""
        )
    in_stage = duration(cd.time_in_stage_seconds, lang)
    lines = [
        f"{a.name} (#{a.id})",
        f"  {'阶段' if zh else 'Stage'}: {stage_title(p, a.stage, lang)}  {in_stage}{sla}",
        f"  {'负责团队' if zh else 'Owner team'}: {p.owner_labels(st, lang)}"
        f"   {'负责人' if zh else 'Owner'}: {person(a.owner, cd.people)}",
        f"  {'金额' if zh else 'Amount'}: {amount(a.amount)}"
        + (f"   {'细分' if zh else 'Segment'}: {a.segment}" if a.segment else "")
        + (f"   {'合同到期' if zh else 'Contract end'}: {a.contract_end}" if a.contract_end else ""),
    ]
    if cd.checklist:
        lines.append(
            f"  {'检查项' if zh else 'Checklist'}:"
            + (
                " (离开前必须完成)"
                if zh and st.require_checklist
                else " (required to leave)"
                if st.require_checklist
                else ""
            )
        )
        for item in cd.checklist:
            mark = "[x]" if item.done else "[ ]"
            by = f"  — {person(item.by, cd.people)} {when(item.at)}" if item.done else ""
            lines.append(f"    {mark} {item.number}. {item.zh if zh else item.en}{by}")
    if cd.pending_approval:
        ap = cd.pending_approval
        lines.append(
            f"  {'等待审批' if zh else 'Waiting for approval'} #{ap.id} → {ap.to_stage}"
            f" ({person(ap.requested_by, cd.people)}, {when(ap.requested_at)})"
        )
    for h in cd.open_handoffs:
        team = team_label(p, h.to_team, lang)
        lines.append(
            f"  {'待接手' if zh else 'Handoff open for'} {team} {'since' if not zh else '自'} {when(h.opened_at)}"
        )
    if cd.allowed_next:
        lines.append(
            f"  {'可推进到' if zh else 'Next'}: " + ", ".join(stage_title(p, k, lang) for k in cd.allowed_next)
        )
    return "\n".join(lines)


def history(h: History, p: Pipeline, lang: Lang = "en") -> str:
    zh = lang == "zh"
    lines = [f"{h.account.name} (#{h.account.id}) — {'历史' if zh else 'history'}:"]
    for ln in h.lines:
        if ln.from_stage is None:
            move = f"{'新建于' if zh else 'created in'} {stage_title(p, ln.to_stage, lang)}"
        else:
            move = f"{stage_title(p, ln.from_stage, lang)} → {stage_title(p, ln.to_stage, lang)}"
        why = f" — {ln.reason}" if ln.reason else ""
        lines.append(f"  {when(ln.at)}  {person(ln.actor, h.people)} via {ln.via}: {move}{why}")
    if h.truncated:
        shown = len(h.lines)
        note = (
            f"  …(更早的变更未显示,以下为最近 {shown} 条)"
            if zh
            else f"  … (earlier changes not shown; the last {shown} follow)"
        )
        lines.insert(1, note)
    return "\n".join(lines)


def account_list(al: AccountList, p: Pipeline, lang: Lang = "en") -> str:
    zh = lang == "zh"
    if al.total == 0:
        return "没有符合条件的客户。" if zh else "No accounts match."
    lines: list[str] = []
    shown = 0
    for stage, accounts in al.groups:
        lines.append(f"{stage_title(p, stage, lang)} — {len(accounts)}")
        for a in accounts:
            if shown >= MAX_LINES:
                break
            lines.append(f"  #{a.id} {a.name}  {person(a.owner, al.people)}  {amount(a.amount)}")
            shown += 1
    listed = sum(len(a) for _, a in al.groups)
    if shown < al.total:
        more = al.total - shown
        lines.append(
            f"…还有 {more} 个未显示;用 `list 阶段` 缩小范围。"
            if zh
            else f"… {more} more not shown; narrow with `list STAGE`."
        )
    elif listed < al.total:
        lines.append(f"… {al.total - listed} more")
    return "\n".join(lines)


def approval_list(al: ApprovalList, p: Pipeline, lang: Lang = "en") -> str:
    zh = lang == "zh"
    if not al.approvals:
        return "没有待处理的审批。" if zh else "No approvals are waiting."
    return "\n".join([approvals_head(lang), *(approval_row(ap, lang, al.people) for ap in al.approvals[:MAX_LINES])])


def approval_row(ap: ApprovalView, lang: Lang = "en", people: People | None = None) -> str:
    """One waiting approval in a text list, with the commands that decide it."""
    zh = lang == "zh"
    return (
        f"  #{ap.id} {ap.account}: {ap.from_stage} → {ap.to_stage}"
        f"  {person(ap.requested_by, people)} {when(ap.requested_at)}"
        f"  ({'approve' if not zh else '批准'} {ap.id} / {'reject' if not zh else '驳回'} {ap.id})"
    )


def approvals_head(lang: Lang = "en") -> str:
    return "待处理审批:" if lang == "zh" else "Waiting approvals:"


def handoffs_head(lang: Lang = "en") -> str:
    return "等待接手的交接:" if lang == "zh" else "Handoffs waiting to be taken:"


def tasks_head(account: str | None, lang: Lang = "en") -> str:
    if lang == "zh":
        return f"{account} 的待办任务:" if account else "待办任务:"
    return f"Open tasks of {account}:" if account else "Open tasks:"


def task_list(tl: TaskList, p: Pipeline, lang: Lang = "en") -> str:
    zh = lang == "zh"
    if not tl.tasks:
        return "没有待办任务。" if zh else "No open tasks."
    return "\n".join([tasks_head(tl.account, lang), *(task_row(t, lang, tl.people) for t in tl.tasks[:MAX_LINES])])


def task_row(t: TaskView, lang: Lang = "en", people: People | None = None) -> str:
    """One open task in a text list, with the command that finishes it."""
    who_does = f" → {person(t.assignee, people)}" if t.assignee else ""
    return f"  #{t.id} {t.account}: {t.title_zh if lang == 'zh' else t.title_en}{who_does}  (done {t.id})"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _days(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def report(r: Report, p: Pipeline, lang: Lang = "en") -> str:
    """The report as a fixed-width table (Slack and Feishu show it in a monospace block)."""
    zh = lang == "zh"
    period = (
        f"{r.since.date() if r.since else '…'} – {r.until.date() if r.until else '…'}"
        if r.since or r.until
        else ("全部时间" if zh else "all time")
    )
    filters = ", ".join(
        x
        for x in (
            r.team and f"team {r.team}",
            r.owner and person(r.owner, r.people),
            r.segment and f"segment {r.segment}",
        )
        if x
    )
    head = f"报表 · {period}" if zh else f"Report · {period}"
    lines = [head + (f" · {filters}" if filters else "") + f" · {when(r.generated_at)} UTC"]
    cols = (
        ("阶段", "进入", "转化", "平均天", "中位天", "当前")
        if zh
        else ("Stage", "Entries", "Conv.", "Avg d", "Med d", "Now")
    )
    width = max([len(stage_title(p, f.stage, lang)) for f in r.stages] + [len(cols[0])])
    lines.append(f"{cols[0]:<{width}}  {cols[1]:>7}  {cols[2]:>5}  {cols[3]:>6}  {cols[4]:>6}  {cols[5]:>5}")
    for f in r.stages:
        lines.append(
            f"{stage_title(p, f.stage, lang):<{width}}  {f.entries:>7}  {_pct(f.conversion):>5}  "
            f"{_days(f.avg_days):>6}  {_days(f.median_days):>6}  {f.in_stage_now:>5}"
        )
    if r.bottleneck:
        med = next((f.median_days for f in r.stages if f.stage == r.bottleneck), None)
        lines.append(
            f"瓶颈:{stage_title(p, r.bottleneck, lang)}(中位停留 {_days(med)} 天)"
            if zh
            else f"Bottleneck: {stage_title(p, r.bottleneck, lang)} (median {_days(med)} days in stage)"
        )
    lines.append("收入预测(按阶段赢单概率加权):" if zh else "Forecast (amounts weighted by stage win probability):")
    for fl in r.forecast:
        lines.append(
            f"  {stage_title(p, fl.stage, lang):<{width}}  {fl.accounts:>5}  {amount(fl.amount):>14} × "
            f"{fl.probability:.0%} = {amount(fl.weighted)}"
        )
    lines.append(
        f"  加权合计 {amount(r.weighted_total)};SQL + P0 金额 {amount(r.sql_p0_amount)}"
        if zh
        else f"  Weighted total {amount(r.weighted_total)}; SQL + P0 amounts {amount(r.sql_p0_amount)}"
    )
    lines.append(
        f"下季度到期续约:{r.renewals_next_quarter} 个({amount(r.renewals_next_quarter_amount)})"
        if zh
        else f"Renewals due next quarter: {r.renewals_next_quarter} ({amount(r.renewals_next_quarter_amount)})"
    )
    return "\n".join(lines)


def report_title(r: Report, lang: Lang = "en") -> str:
    if lang == "zh":
        return f"报表 · {r.team} 团队" if r.team else "报表"
    return f"Report · team {r.team}" if r.team else "Report"


def report_csv(r: Report, p: Pipeline) -> str:
    """The per-stage figures as CSV (for spreadsheets)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["stage", "entries", "converted", "conversion", "avg_days", "median_days", "in_stage_now", "amount", "weighted"]
    )
    money = {fl.stage: fl for fl in r.forecast}
    for f in r.stages:
        fl = money.get(f.stage)
        w.writerow(
            [
                f.stage,
                f.entries,
                f.converted,
                "" if f.conversion is None else f"{f.conversion:.4f}",
                "" if f.avg_days is None else f"{f.avg_days:.3f}",
                "" if f.median_days is None else f"{f.median_days:.3f}",
                f.in_stage_now,
                "" if fl is None else fl.amount,
                "" if fl is None else fl.weighted,
            ]
        )
    return buf.getvalue()


def handoff_list(hl: HandoffList, p: Pipeline, lang: Lang = "en") -> str:
    zh = lang == "zh"
    if not hl.handoffs:
        return "没有等待接手的交接。" if zh else "No handoffs are waiting for your teams."
    lines = [handoffs_head(lang)]
    for a, h in hl.handoffs[:MAX_LINES]:
        team = team_label(p, h.to_team, lang)
        take = f'claim "{a.name}"'
        lines.append(f"  #{a.id} {a.name} → {team}, {stage_title(p, h.stage, lang)}, {when(h.opened_at)}  ({take})")
    return "\n".join(lines)


def who(ref: str | None, people: People | None = None) -> Span:
    """A person in a line: their name (or `@user`) as text, and every platform ref of theirs, so each
    renderer mentions them its own way where they have an account on its platform."""
    known = _known(ref, people)
    refs = known.refs if known is not None else ((ref,) if ref else ())
    return Span(person(ref, people), "person", ref, refs)


def _owner(ref: str | None, zh: bool, people: People | None = None) -> Segment:
    return who(ref, people) if ref else ("无负责人" if zh else "no owner")


def notification(e: ev.Event, p: Pipeline, lang: Lang = "en") -> str:
    """One line (or a few) for a team channel."""
    return plain(notification_line(e, p, lang))


def notification_line(e: ev.Event, p: Pipeline, lang: Lang = "en") -> Line:
    """The sentence a team channel gets for an event, with the account and the people marked."""
    zh = lang == "zh"

    def t(k: str | None) -> str:
        return stage_title(p, k, lang)

    acc, by = strong(e.account), who(e.actor, e.people)
    if isinstance(e, ev.StageChanged):
        why = f" — {e.reason}" if e.reason else ""
        if zh:
            return (acc, f":{t(e.from_stage)} → {t(e.to_stage)}(操作人 ", by, f"){why}")
        return (acc, f" moved {t(e.from_stage)} → {t(e.to_stage)} by ", by, why)
    if isinstance(e, ev.AccountAdded):
        if zh:
            return ("新客户 ", acc, f",阶段 {t(e.stage)}(创建人 ", by, ")")
        return ("New account ", acc, f" in {t(e.stage)} by ", by)
    if isinstance(e, ev.ApprovalRequested):
        why = f" — {e.reason}" if e.reason else ""
        if zh:
            return (
                f"审批 #{e.approval_id}:",
                by,
                " 申请将 ",
                acc,
                f" 从 {t(e.from_stage)} 推进到 {t(e.to_stage)}(金额 {amount(e.amount)}){why}",
            )
        return (
            f"Approval #{e.approval_id}: ",
            by,
            " asks to move ",
            acc,
            f" {t(e.from_stage)} → {t(e.to_stage)} (amount {amount(e.amount)}){why}",
        )
    if isinstance(e, ev.ApprovalDecided):
        verb = ("批准" if e.decision == "approved" else "驳回") if zh else e.decision
        if zh:
            return (f"审批 #{e.approval_id}(", acc, ")已由 ", by, f" {verb},{when(e.at)}")
        return (f"Approval #{e.approval_id} (", acc, f") {verb} by ", by, f" at {when(e.at)} UTC")
    if isinstance(e, ev.HandoffOpened):
        team = team_label(p, e.to_team, lang)
        contract = f", {'合同到期' if zh else 'contract end'} {e.contract_end}" if e.contract_end else ""
        facts: Line = (
            f"{'金额' if zh else 'amount'} {amount(e.amount)}, {'负责人' if zh else 'owner'} ",
            who(e.owner, e.people) if e.owner else "-",
            contract,
        )
        if zh:
            return ("交接:", acc, f" 进入 {t(e.stage)},请{team}接手(", *facts, ")")
        return ("Handoff: ", acc, f" entered {t(e.stage)}; {team}, please take ownership (", *facts, ")")
    if isinstance(e, ev.HandoffClaimed):
        return (acc, " 已由 ", by, " 接手") if zh else (acc, " taken over by ", by)
    if isinstance(e, ev.OwnerAssigned):
        owner = who(e.owner, e.people) if e.owner else "-"
        return (acc, " 的负责人改为 ", owner) if zh else (acc, " is now owned by ", owner)
    if isinstance(e, ev.ChecklistTicked):
        if zh:
            return (acc, f":{e.stage} 检查项 {e.done}/{e.total} 已完成(", by, ")")
        return (acc, f": {e.stage} checklist {e.done}/{e.total} done (", by, ")")
    if isinstance(e, ev.RenewalRecorded):
        kind = ("增购" if e.renewal == "expansion" else "续费") if zh else e.renewal
        if zh:
            return (acc, f":{kind} {amount(e.amount)},合同至 {e.contract_end}")
        return (acc, f": {kind} of {amount(e.amount)}, contract until {e.contract_end}")
    if isinstance(e, ev.SlaReminder):
        late = e.days_in_stage - e.sla_days
        up = joined([(who(r, e.people),) for r in e.escalate_to], ", ")
        if zh:
            line: Line = (
                "⏰ ",
                acc,
                f" 已在 {t(e.stage)} 停留 {e.days_in_stage} 天,超出 SLA({e.sla_days} 天){late} 天(负责人 ",
                _owner(e.owner, zh, e.people),
                f",第 {e.n} 次提醒)",
            )
            return line + ((",请 ", *up, " 关注") if up else ())
        line = (
            "⏰ ",
            acc,
            f" has been in {t(e.stage)} for {e.days_in_stage} days, {late} past its {e.sla_days}-day SLA (owner ",
            _owner(e.owner, zh, e.people),
            f"; reminder {e.n})",
        )
        return line + (("; escalated to ", *up) if up else ())
    if isinstance(e, ev.HandoffEscalated):
        team = team_label(p, e.to_team, lang)
        up = joined([(who(r, e.people),) for r in e.escalate_to], ", ")
        if zh:
            return ("⚠ 交接无人接手:", acc, f"({t(e.stage)})等待{team}接手已 {waited(e.hours_open, lang)}") + (
                (",请 ", *up, " 安排") if up else ()
            )
        return ("⚠ Handoff not taken: ", acc, f" ({t(e.stage)}) has been waiting {waited(e.hours_open)} for {team}") + (
            ("; escalated to ", *up) if up else ()
        )
    if isinstance(e, ev.RenewalDue):
        owner = _owner(e.owner, zh, e.people)
        if e.contract_end is None:
            if zh:
                return ("📅 ", acc, f"({t(e.stage)})尚未记录合同到期日,请用 renew 记录(负责人 ", owner, ")")
            return (
                "📅 ",
                acc,
                f" ({t(e.stage)}) has no contract end recorded; record it with `renew` (owner ",
                owner,
                ")",
            )
        if zh:
            return ("📅 续约提醒:", acc, f" 的合同将于 {e.contract_end} 到期,还剩 {e.days_left} 天(负责人 ", owner, ")")
        return ("📅 Renewal: ", acc, f"'s contract ends {e.contract_end}, in {e.days_left} days (owner ", owner, ")")
    if isinstance(e, ev.TaskOpened):
        title = e.title_zh if zh else e.title_en
        link = f" {e.link}" if e.link else ""
        if zh:
            return (f"📝 新任务 #{e.task_id}(", acc, f"):{title}{link}") + (
                ("(负责人 ", who(e.assignee, e.people), ")") if e.assignee else ()
            )
        return (f"📝 Task #{e.task_id} for ", acc, f": {title}{link}") + (
            (" (for ", who(e.assignee, e.people), ")") if e.assignee else ()
        )
    if isinstance(e, ev.AutomationNotice):
        link = f" {e.link}" if e.link else ""
        return ("🤖 ", acc, f":{e.text_zh}{link}") if zh else ("🤖 ", acc, f": {e.text_en}{link}")
    if isinstance(e, ev.TaskDone):
        title = e.title_zh if zh else e.title_en
        if zh:
            return (f"✅ 任务 #{e.task_id}(", acc, ")已由 ", by, f" 完成:{title}")
        return (f"✅ Task #{e.task_id} for ", acc, " done by ", by, f": {title}")
    if isinstance(e, ev.ChurnRisk):
        owner = _owner(e.owner, zh, e.people)
        if zh:
            return (
                "🚨 流失风险:",
                acc,
                f"({t(e.stage)})的 {e.signal} 已连续 {e.quiet_days} 天为 0(负责人 ",
                owner,
                ")",
            )
        return (
            "🚨 Churn risk: ",
            acc,
            f" ({t(e.stage)}) has reported zero {e.signal} for {e.quiet_days} days (owner ",
            owner,
            ")",
        )
    raise AssertionError(f"no rendering for {type(e).__name__}")  # pragma: no cover


LABELS = {
    "stage": Text("Stage", "阶段"),
    "owner_team": Text("Owner team", "负责团队"),
    "owner": Text("Owner", "负责人"),
    "in_stage": Text("Time in stage", "停留时间"),
    "amount": Text("Amount", "金额"),
    "segment": Text("Segment", "细分"),
    "contract_end": Text("Contract end", "合同到期"),
    "checklist": Text("Checklist", "检查项"),
    "required": Text(" (required to leave)", "(离开前必须完成)"),
    "next": Text("Next", "可推进到"),
    "from": Text("From", "当前阶段"),
    "to": Text("To", "申请推进到"),
    "requested_by": Text("Requested by", "申请人"),
    "reason": Text("Reason", "理由"),
    "note": Text("Note", "备注"),
}


def short_stage(p: Pipeline, key: str | None, lang: Lang = "en") -> str:
    """A stage's title in one language (where space is short: titles, buttons)."""
    st = p.stage_by_key.get(key or "")
    return st.title(lang) if st else (key or "-")


def event_title(e: ev.Event, p: Pipeline, lang: Lang = "en") -> Line:
    """The title of an event's card."""
    zh, acc = lang == "zh", strong(e.account)
    if isinstance(e, ev.StageChanged):
        frm, to = short_stage(p, e.from_stage, lang), short_stage(p, e.to_stage, lang)
        return (acc, f":{frm} → {to}") if zh else (acc, f": {frm} → {to}")
    if isinstance(e, ev.ApprovalRequested | ev.ApprovalDecided):
        return approval_title(e.account, e.to_stage, p, lang)
    if isinstance(e, ev.HandoffOpened | ev.HandoffClaimed):
        return handoff_title(e.account, lang)
    return (acc,)


def approval_note(e: ev.ApprovalRequested, p: Pipeline, lang: Lang = "en") -> Line:
    """Under an approval request: its number, who may decide, when, and where a rejection sends the account."""
    zh = lang == "zh"
    team = team_label(p, e.team, lang)
    back = stage_title(p, e.reject_to or e.from_stage, lang)
    parts = [
        f"{'审批' if zh else 'Approval'} #{e.approval_id}",
        f"{team}{'审批人' if zh else ' approvers'}",
        utc(e.at),
        f"驳回后退回 {back}" if zh else f"if rejected → {back}",
    ]
    return (" · ".join(parts),)


def decided_line(
    decision: str,
    actor: str,
    lang: Lang = "en",
    *,
    at: datetime | None = None,
    note: str = "",
    people: People | None = None,
) -> Line:
    """Who approved or rejected, and when if known (and their note)."""
    zh, when_ = lang == "zh", (f" 于 {utc(at)}" if lang == "zh" else f" at {utc(at)}") if at else ""
    if decision == "approved":
        line: Line = (
            ("✅ 已由 ", who(actor, people), f"{when_} 批准") if zh else ("✅ Approved by ", who(actor, people), when_)
        )
    else:
        line = (
            ("❌ 已由 ", who(actor, people), f"{when_} 驳回") if zh else ("❌ Rejected by ", who(actor, people), when_)
        )
    return line + ((f" — {note}",) if note else ())


def claimed_line(actor: str, lang: Lang = "en", *, at: datetime | None = None, people: People | None = None) -> Line:
    """Who took a handoff, and when if known."""
    if lang == "zh":
        return ("✅ 已由 ", who(actor, people), f" 于 {utc(at)} 接手" if at else " 接手")
    return ("✅ Taken by ", who(actor, people), f" at {utc(at)}" if at else "")


def approval_title(account: str, to_stage: str | None, p: Pipeline, lang: Lang = "en") -> Line:
    return ("审批:" if lang == "zh" else "Approval: ", strong(account), f" → {short_stage(p, to_stage, lang)}")


def handoff_title(account: str, lang: Lang = "en") -> Line:
    return ("交接:" if lang == "zh" else "Handoff: ", strong(account))


def history_line(ln: HistoryLine, p: Pipeline, lang: Lang = "en", people: People | None = None) -> Line:
    """One change in an account's history: when, who, via what, from and to which stage, and why."""
    to = strong(stage_title(p, ln.to_stage, lang))
    if ln.from_stage is None:
        move: Line = ("新建于 " if lang == "zh" else "created in ", to)
    else:
        move = (f"{stage_title(p, ln.from_stage, lang)} → ", to)
    via = f" via {ln.via}" if ln.via else ""
    why = f" — {ln.reason}" if ln.reason else ""
    return (Span(when(ln.at), "code"), " ", who(ln.actor, people), f"{via}: ", *move, why)


def history_notes(h: History, lang: Lang = "en") -> tuple[str, str | None]:
    """The line for changes a reply leaves out (`{n}`, `{shown}`) and, if the core cut the history, the note."""
    zh = lang == "zh"
    more = (
        "…更早的 {n} 条未显示;`history` 只显示最近 {shown} 条。"
        if zh
        else "… {n} earlier changes not shown; `history` shows the last {shown}."
    )
    if not h.truncated:
        return more, None
    n = len(h.lines)
    return more, (
        f"(更早的变更未载入;以上为最近 {n} 条。)"
        if zh
        else f"(Earlier changes were not loaded; these are the last {n}.)"
    )


# ---------------------------------------------------------------- list replies (adapters/common/views.py)


def command(s: str) -> Span:
    """A command a reader may type; each renderer puts its platform's prefix before it (`/stage ` on Slack)."""
    return Span(s, "command")


def list_title(kind: str, lang: Lang = "en", *, stage: str | None = None) -> str:
    """The header of a list reply: `accounts`, `mine`, `stage` (with `stage`), `approvals`, `handoffs`, `tasks`."""
    zh = lang == "zh"
    titles = {
        "accounts": "客户" if zh else "Accounts",
        "mine": "我的客户" if zh else "My accounts",
        "stage": stage or "",
        "approvals": "待处理审批" if zh else "Waiting approvals",
        "handoffs": "等待接手" if zh else "Handoffs waiting",
        "tasks": "待办任务" if zh else "Open tasks",
    }
    return titles[kind]


def list_more(kind: str, lang: Lang = "en") -> str:
    """The line under a list cut short: `{n}` not shown, `{command}` (prefixed by the renderer) shows more."""
    zh = lang == "zh"
    lines = {
        "accounts": ("…还有 {n} 个未显示;用 `{command}` 缩小范围。", "… {n} more not shown; narrow with `{command}`."),
        "approvals": (
            "…还有 {n} 个未显示;处理上面的之后再用 `{command}` 查看。",
            "… {n} more not shown; decide these, then `{command}` lists the rest.",
        ),
        "handoffs": (
            "…还有 {n} 个未显示;用 `{command}` 按名称接手。",
            "… {n} more not shown; take one by name with `{command}`.",
        ),
        "account_tasks": (
            "…还有 {n} 个未显示;用 `{command}` 完成一些后再查看。",
            "… {n} more not shown; finish some with `{command}` to see the rest.",
        ),
        "tasks": (
            "…还有 {n} 个未显示;用 `{command}` 只看一个客户的。",
            "… {n} more not shown; `{command}` shows one account's.",
        ),
    }
    return lines[kind][0 if zh else 1]


def list_command(kind: str, lang: Lang = "en") -> str:
    """The command a cut list's line names (without the platform's prefix), for the kinds that need no argument."""
    zh = lang == "zh"
    return {
        "approvals": "approvals",
        "handoffs": "claim 客户" if zh else "claim ACCOUNT",
        "account_tasks": "done 任务编号" if zh else "done TASK_ID",
        "tasks": "tasks 客户" if zh else "tasks ACCOUNT",
    }[kind]


def approvals_how(lang: Lang = "en") -> Line:
    """The note under an approval list: the commands that decide one."""
    if lang == "zh":
        return ("用 ", command("approve ID"), " 或 ", command("reject ID 理由"), " 处理。")
    return ("Decide with ", command("approve ID"), " or ", command("reject ID REASON"), ".")


def account_row(a: AccountView, lang: Lang = "en", *, since: bool = False, people: People | None = None) -> Line:
    """One account in a list: number, name, owner, amount (and since when it is in its stage)."""
    row: list[Segment] = [f"• #{a.id} ", strong(a.name), " · ", who(a.owner, people), f" · {amount(a.amount)}"]
    if since:
        row.append(f" · {'自 ' if lang == 'zh' else 'since '}{when(a.stage_entered_at)}")
    return tuple(row)


def approval_item(ap: ApprovalView, p: Pipeline, lang: Lang = "en", people: People | None = None) -> tuple[Line, Line]:
    """One waiting approval in a list: what moves where, then who asked, when and why."""
    first: Line = (
        strong(f"#{ap.id}"),
        " ",
        strong(ap.account),
        f": {stage_title(p, ap.from_stage, lang)} → ",
        strong(stage_title(p, ap.to_stage, lang)),
    )
    why = f" · {'理由' if lang == 'zh' else 'reason'}: {ap.reason}" if ap.reason else ""
    return first, (who(ap.requested_by, people), f" · {utc(ap.requested_at)}{why}")


def task_item(t: TaskView, lang: Lang = "en", people: People | None = None) -> Line:
    """One open task in a list: number, account, title and who does it."""
    by: Line = (" → ", who(t.assignee, people)) if t.assignee else ()
    return (f"#{t.id} ", strong(t.account), f": {t.title_zh if lang == 'zh' else t.title_en}", *by)


# ---------------------------------------------------------------- help and refusals


def help_title(lang: Lang = "en") -> str:
    return "stagebot 帮助" if lang == "zh" else "stagebot help"


def help_usage(lang: Lang = "en") -> Line:
    """The line above the command list where commands are typed after a prefix (Slack's `/stage`)."""
    return ("用法:", command("命令")) if lang == "zh" else ("Usage: ", command("COMMAND"))


def help_chat_intro(lang: Lang = "en") -> Line:
    """The line above the command list where commands are typed to the bot in a chat (Feishu)."""
    if lang == "zh":
        return ("在私聊中直接发命令给我,或在群里 @stagebot 后输入,例如 ", command("推进 Acme P2 已发送首次测试"), "。")
    return (
        "Type a command to me in a direct chat, or after @stagebot in a group, e.g. ",
        command("move Acme P2 first test sent"),
        ".",
    )


def error_title(lang: Lang = "en") -> str:
    return "未执行" if lang == "zh" else "Not done"


# ---------------------------------------------------------------- the App Home


def home_part(kind: str, lang: Lang = "en") -> tuple[str, str, str, str]:
    """A Home part's title, its sentence when empty, its line for `{n}` more and the `{command}` it names."""
    zh = lang == "zh"
    parts = {
        "mine": (
            ("我的客户(按阶段)", "你名下还没有客户。", "…还有 {n} 个;用 `{command}` 查看", "list --mine"),
            ("My accounts by stage", "You own no accounts yet.", "… and {n} more — `{command}`", "list --mine"),
        ),
        "waiting": (
            ("待我处理", "没有等你处理的审批或交接。", "…还有 {n} 项;用 `{command}` 查看", "approvals"),
            (
                "Waiting on you",
                "No approvals or handoffs are waiting on you.",
                "… and {n} more — `{command}`",
                "approvals",
            ),
        ),
        "stale": (
            ("超期未推进(超过 SLA)", "没有超期的客户。", "…还有 {n} 个;用 `{command}` 查看", "list --mine"),
            ("Stale (past SLA)", "Nothing is past its SLA.", "… and {n} more — `{command}`", "list --mine"),
        ),
        "reports": (
            ("团队报表", "", "…还有 {n} 个团队;用 `{command}` 查看", "report --team 团队"),
            ("Team figures", "", "… and {n} more teams — `{command}`", "report --team TEAM"),
        ),
    }
    return parts[kind][0 if zh else 1]


def report_chart_hint(lang: Lang = "en") -> Line:
    """Under a team's figures in the Home: the command that answers with the chart too."""
    return (command("report"), " 会附上图表" if lang == "zh" else " adds the chart")


def home_handoff(a: AccountView, h: HandoffView, p: Pipeline, lang: Lang = "en") -> Line:
    """A handoff waiting on the viewer's team, in the Home."""
    team = team_label(p, h.to_team, lang)
    waits = f"待{team}接手" if lang == "zh" else f"open for {team}"
    return ("🤝 ", strong(a.name), f" — {stage_title(p, h.stage, lang)} · {waits} · {utc(h.opened_at)}")
