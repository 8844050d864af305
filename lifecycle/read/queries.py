"""Read side: the account card, lists, history and pending approvals, straight from SQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, false, func, or_, select

from lifecycle.db.tables import ACC, APPROVALS, HANDOFFS, HIST, TASKS, TICKS
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.clock import Clock
from lifecycle.domain.machine import allowed_next
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    ApprovalList,
    ApprovalView,
    ChecklistLine,
    HandoffList,
    HandoffView,
    History,
    HistoryLine,
    ReadModel,
    TaskList,
    TaskView,
)
from lifecycle.read.accounts import account_view, find_account
from lifecycle.read.reports import report


def _approval_view(row: Row[Any], account: str) -> ApprovalView:
    return ApprovalView(
        id=row.id,
        account_id=row.account_id,
        account=account,
        from_stage=row.from_stage,
        to_stage=row.to_stage,
        reject_to=row.reject_to,
        team=row.team,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        reason=row.reason,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


def _handoff_view(row: Row[Any]) -> HandoffView:
    return HandoffView(
        id=row.id,
        account_id=row.account_id,
        stage=row.stage,
        to_team=row.to_team,
        opened_at=row.opened_at,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
    )


def account_card(q: c.ShowAccount, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> AccountCard:
    with uow:
        s = uow.conn
        acc = find_account(s, q.account)
        return _card(s, acc, clock.now(), rules)


def _card(s: Connection, acc: Row[Any], now: datetime, rules: Rules) -> AccountCard:
    stage = rules.pipeline.stage(acc.stage)
    ticks = {
        r.item: r
        for r in s.execute(
            select(TICKS.c.item, TICKS.c.ticked_by, TICKS.c.ticked_at).where(
                TICKS.c.account_id == acc.id, TICKS.c.stage == stage.key
            )
        )
    }
    lines = tuple(
        ChecklistLine(
            number=n,
            key=item.key,
            en=item.en,
            zh=item.zh,
            done=item.key in ticks,
            by=ticks[item.key].ticked_by if item.key in ticks else None,
            at=ticks[item.key].ticked_at if item.key in ticks else None,
        )
        for n, item in enumerate(stage.checklist, 1)
    )
    pending = s.execute(
        select(APPROVALS).where(APPROVALS.c.account_id == acc.id, APPROVALS.c.status == "pending")
    ).first()
    handoffs = tuple(
        _handoff_view(h)
        for h in s.execute(
            select(HANDOFFS).where(
                HANDOFFS.c.account_id == acc.id, HANDOFFS.c.status == "open", HANDOFFS.c.stage == acc.stage
            )
        )
    )
    seconds = max(0.0, (now - acc.stage_entered_at).total_seconds())
    return AccountCard(
        account=account_view(acc),
        checklist=lines,
        time_in_stage_seconds=seconds,
        sla_days=stage.sla_days,
        overdue=stage.sla_days is not None and seconds > stage.sla_days * 86400,
        pending_approval=_approval_view(pending, acc.name) if pending is not None else None,
        open_handoffs=handoffs,
        allowed_next=tuple(allowed_next(rules.pipeline, stage.key)),
    )


def history(q: c.ShowHistory, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> History:
    with uow:
        s = uow.conn
        acc = find_account(s, q.account)
        # The newest changes matter most: fetch them, then show them oldest first.
        newest = s.execute(
            select(HIST).where(HIST.c.account_id == acc.id).order_by(HIST.c.id.desc()).limit(q.limit + 1)
        ).all()
        rows = list(reversed(newest[: q.limit]))
        lines = tuple(
            HistoryLine(
                at=r.at,
                actor=r.actor,
                from_stage=r.from_stage,
                to_stage=r.to_stage,
                kind=r.kind,
                reason=r.reason,
                via=r.via,
            )
            for r in rows
        )
        return History(account=account_view(acc), lines=lines, truncated=len(newest) > q.limit)


def list_accounts(q: c.ListAccounts, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> AccountList:
    p = rules.pipeline
    stage = p.resolve_stage(q.stage) if q.stage else None
    with uow:
        s = uow.conn
        where = []
        if stage is not None:
            where.append(ACC.c.stage == stage.key)
        if q.mine:
            where.append(ACC.c.owner.in_(rules.roster.refs_of(q.actor.ref)))  # old rows too
        if q.overdue:
            now = clock.now()
            late = [
                and_(ACC.c.stage == st.key, ACC.c.stage_entered_at < now - timedelta(days=st.sla_days))
                for st in p.stages
                if st.sla_days
            ]
            where.append(or_(*late) if late else false())
        total = s.execute(select(func.count()).select_from(ACC).where(*where)).scalar_one()
        rows = s.execute(select(ACC).where(*where).order_by(ACC.c.stage_entered_at).limit(q.limit)).all()
    order = {st.key: n for n, st in enumerate(p.stages)}
    grouped: dict[str, list[Any]] = {}
    for r in sorted(rows, key=lambda r: (order.get(r.stage, 99), r.name_key)):
        grouped.setdefault(r.stage, []).append(account_view(r))
    return AccountList(
        groups=tuple((k, tuple(v)) for k, v in grouped.items()),
        total=int(total),
        truncated=int(total) > len(rows),
        stage_filter=stage.key if stage else None,
        mine=q.mine,
    )


def list_approvals(q: c.ListApprovals, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> ApprovalList:
    with uow:
        s = uow.conn
        stmt = select(APPROVALS, ACC.c.name.label("account_name")).join(ACC, ACC.c.id == APPROVALS.c.account_id)
        if q.pending_only:
            stmt = stmt.where(APPROVALS.c.status == "pending")
        if q.mine_to_decide and not rules.roster.is_admin(q.actor):
            teams = [t.key for t in rules.pipeline.teams if rules.roster.may_approve(q.actor, t.key)]
            stmt = stmt.where(APPROVALS.c.team.in_(teams))
        rows = s.execute(stmt.order_by(APPROVALS.c.id).limit(200)).all()
        return ApprovalList(approvals=tuple(_approval_view(r, r.account_name) for r in rows))


def list_handoffs(q: c.ListHandoffs, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> HandoffList:
    roster = rules.roster
    teams = [t.key for t in rules.pipeline.teams] if roster.is_admin(q.actor) else sorted(roster.teams_of(q.actor))
    if not teams:
        return HandoffList(handoffs=())
    with uow:
        rows = uow.conn.execute(
            select(HANDOFFS, ACC.c.name.label("account_name"))
            .join(ACC, ACC.c.id == HANDOFFS.c.account_id)
            .where(HANDOFFS.c.status == "open", ACC.c.stage == HANDOFFS.c.stage, HANDOFFS.c.to_team.in_(teams))
            .order_by(HANDOFFS.c.opened_at)
            .limit(q.limit)
        ).all()
        accounts = {
            r.id: account_view(r)
            for r in uow.conn.execute(select(ACC).where(ACC.c.id.in_({r.account_id for r in rows})))
        }
    return HandoffList(handoffs=tuple((accounts[r.account_id], _handoff_view(r)) for r in rows))


def list_tasks(q: c.ListTasks, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> TaskList:
    with uow:
        s = uow.conn
        stmt = (
            select(TASKS, ACC.c.name.label("account_name"))
            .join(ACC, ACC.c.id == TASKS.c.account_id)
            .where(TASKS.c.status == "open")
            .order_by(TASKS.c.id)
            .limit(q.limit)
        )
        name = None
        if q.account:
            acc = find_account(s, q.account)
            stmt, name = stmt.where(TASKS.c.account_id == acc.id), acc.name
        if q.mine or not q.account:
            teams = list(rules.roster.teams_of(q.actor))
            if not rules.roster.is_admin(q.actor) or q.mine:
                mine = rules.roster.refs_of(q.actor.ref)
                stmt = stmt.where(or_(TASKS.c.assignee.in_(mine), TASKS.c.team.in_(teams)))
        rows = s.execute(stmt).all()
    return TaskList(
        tasks=tuple(
            TaskView(
                id=r.id,
                account_id=r.account_id,
                account=r.account_name,
                title_en=r.title_en,
                title_zh=r.title_zh,
                team=r.team,
                assignee=r.assignee,
                status=r.status,
                opened_at=r.opened_at,
            )
            for r in rows
        ),
        account=name,
    )


QUERIES: dict[type[c.Query], Callable[..., ReadModel]] = {
    c.ShowAccount: account_card,
    c.ShowHistory: history,
    c.ListAccounts: list_accounts,
    c.ListApprovals: list_approvals,
    c.ListHandoffs: list_handoffs,
    c.ListTasks: list_tasks,
    c.ShowReport: report,
}
