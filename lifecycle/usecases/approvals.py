"""Approval decisions: first decision wins; approve moves on, reject sends the account back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, select, update

from lifecycle.db.tables import ACC, APPROVALS
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import (
    AlreadyDecided,
    Conflict,
    NotAuthorized,
    NotFound,
)
from lifecycle.domain.events import (
    ApprovalDecided,
)
from lifecycle.domain.i18n import Text
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import AccountRecord, account_view, valid_id
from lifecycle.usecases.base import apply_command, clean_reason, emit
from lifecycle.usecases.stages import apply_transition


def decide_approval(cmd: c.DecideApproval, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _decide_approval, uow=uow, clock=clock, rules=rules)


def _decide_approval(cmd: c.DecideApproval, s: Connection, now: datetime, rules: Rules) -> Outcome:
    p = rules.pipeline
    found = valid_id(cmd.approval_id)
    ap = s.execute(select(APPROVALS).where(APPROVALS.c.id == cmd.approval_id)).first() if found else None
    if ap is None:
        raise NotFound(Text(f"No approval #{cmd.approval_id}.", f"没有审批 #{cmd.approval_id}。"))
    # Rights first: someone who may not decide this approval learns nothing more about it (not
    # whether or by whom it was decided).
    if not rules.roster.may_approve(cmd.actor, ap.team):
        team = p.team_by_key[ap.team]
        raise NotAuthorized(
            Text(
                f"Only {team.en} approvers can decide approval #{ap.id}.",
                f"只有{team.zh}的审批人可以处理审批 #{ap.id}。",
            )
        )
    if ap.status != "pending":
        raise _already_decided(ap)
    status: Literal["approved", "rejected"] = "approved" if cmd.approve else "rejected"
    note = clean_reason(cmd.note)
    # First decision wins: the conditional update lets exactly one of two racing approvers through.
    res = s.execute(
        update(APPROVALS)
        .where(APPROVALS.c.id == ap.id, APPROVALS.c.status == "pending")
        .values(status=status, decided_by=cmd.actor.ref, decided_at=now, note=note)
    )
    if res.rowcount != 1:
        fresh = s.execute(select(APPROVALS).where(APPROVALS.c.id == ap.id)).one()
        raise _already_decided(fresh)
    acc = s.execute(select(ACC).where(ACC.c.id == ap.account_id)).one()
    if acc.stage != ap.from_stage:
        raise Conflict(
            Text(
                f"{acc.name} has left {ap.from_stage} (now {acc.stage}); approval #{ap.id} no longer applies.",
                f"{acc.name} 已离开 {ap.from_stage}(当前 {acc.stage});审批 #{ap.id} 已失效。",
            )
        )
    source = p.stage(ap.from_stage)
    dest_key = ap.to_stage if cmd.approve else ap.reject_to
    handoffs: tuple[int, ...] = ()
    after: AccountRecord = acc
    if dest_key is not None:
        edge = p.transition(source.key, dest_key)
        why = note or ("approved" if cmd.approve else "rejected")
        after, handoffs = apply_transition(
            s,
            rules,
            acc,
            source,
            p.stage(dest_key),
            edge.kind if edge else ("advance" if cmd.approve else "back"),
            actor=cmd.actor,
            via=cmd.channel,
            reason=f"approval #{ap.id} {status}" + (f": {why}" if why != status else ""),
            now=now,
            approved_by=cmd.actor.ref if cmd.approve else None,
        )
    emit(
        s,
        rules,
        ApprovalDecided(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=cmd.actor.ref,
            audience=(ap.team,),
            approval_id=ap.id,
            decision=status,
            from_stage=ap.from_stage,
            to_stage=dest_key or ap.from_stage,
            requested_by=ap.requested_by,
            note=note,
        ),
        now,
    )
    return Outcome(
        kind=status,
        account=account_view(after),
        from_stage=ap.from_stage,
        to_stage=dest_key or ap.from_stage,
        approval_id=ap.id,
        approval_team=ap.team,
        handoff_ids=handoffs,
        decided_by=cmd.actor.ref,
    )


def _already_decided(ap: Row[Any]) -> AlreadyDecided:
    when = ap.decided_at.strftime("%Y-%m-%d %H:%M UTC") if ap.decided_at else "earlier"
    if ap.status == "cancelled":
        msg = Text(
            f"Approval #{ap.id} was withdrawn: the account moved on ({when}).",
            f"审批 #{ap.id} 已撤销:客户已变更阶段({when})。",
        )
    else:
        verb_en = "approved" if ap.status == "approved" else "rejected"
        verb_zh = "批准" if ap.status == "approved" else "驳回"
        msg = Text(
            f"Approval #{ap.id} was already decided by {ap.decided_by}: {verb_en} at {when}.",
            f"审批 #{ap.id} 已由 {ap.decided_by} 处理:{when} {verb_zh}。",
        )
    return AlreadyDecided(msg, ap.decided_by or "")
