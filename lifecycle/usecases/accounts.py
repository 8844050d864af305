"""Changes that keep the stage: checklist ticks, owner, renewals, taking over a handoff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from lifecycle.db.tables import ACC, HANDOFFS, RENEWALS, TICKS
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import (
    Conflict,
    InvalidInput,
    NotAuthorized,
    NotFound,
    TransitionRefused,
)
from lifecycle.domain.events import (
    ChecklistTicked,
    HandoffClaimed,
    OwnerAssigned,
    RenewalRecorded,
)
from lifecycle.domain.i18n import Text
from lifecycle.domain.pipeline import ChecklistItem, Stage
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import AccountRecord, account_view, find_account, valid_id
from lifecycle.usecases.base import (
    apply_command,
    bump,
    clean_reason,
    emit,
    insert_ignoring_duplicates,
    require_owner_team,
    resolve_owner,
    ticked_items,
)


def tick_checklist(cmd: c.TickChecklist, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _tick_checklist, uow=uow, clock=clock, rules=rules)


def resolve_item(stage: Stage, ref: str) -> ChecklistItem:
    """A checklist item by 1-based number, key, or a unique part of its en/zh label."""
    items = stage.checklist
    ref = ref.strip()
    if not items:
        raise NotFound(Text(f"{stage.key} has no checklist.", f"{stage.key} 没有检查项。"))
    listing_en = "; ".join(f"{n}. {i.en}" for n, i in enumerate(items, 1))
    listing_zh = ";".join(f"{n}. {i.zh}" for n, i in enumerate(items, 1))
    if ref.isascii() and ref.isdigit() and len(ref) < 6:
        n = int(ref)
        if 1 <= n <= len(items):
            return items[n - 1]
    else:
        folded = ref.casefold()
        exact = [i for i in items if folded in (i.key.casefold(), i.en.casefold(), i.zh.casefold())]
        partial = exact or [i for i in items if folded in i.en.casefold() or folded in i.zh.casefold()]
        if len(partial) == 1:
            return partial[0]
    raise NotFound(
        Text(
            f'No single checklist item "{ref}" in {stage.key}. Items: {listing_en}.',
            f"{stage.key} 中没有唯一匹配“{ref}”的检查项。检查项:{listing_zh}。",
        )
    )


def _tick_checklist(cmd: c.TickChecklist, s: Connection, now: datetime, rules: Rules) -> Outcome:
    acc = find_account(s, cmd.account)
    stage = rules.pipeline.stage(acc.stage)
    item = resolve_item(stage, cmd.item)
    require_owner_team(rules, cmd.actor, stage, acc.name, Text("tick the checklist of", "勾选检查项:"))
    done = ticked_items(s, acc.id, stage.key)
    if item.key in done:
        return Outcome(kind="already_ticked", account=account_view(acc), item=item.key)
    # Two people ticking the same item at once: the second insert waits for the first and then
    # does nothing, and its sender is told the item is already ticked.
    if not record_tick(s, rules, acc, stage, item, actor=cmd.actor.ref, via=cmd.channel, now=now, done=done):
        return Outcome(kind="already_ticked", account=account_view(acc), item=item.key)
    return Outcome(kind="ticked", account=account_view(acc), item=item.key)


def record_tick(
    s: Connection,
    rules: Rules,
    acc: AccountRecord,
    stage: Stage,
    item: ChecklistItem,
    *,
    actor: str,
    via: str,
    now: datetime,
    done: set[str],
) -> bool:
    """Tick one item and announce it; False when it was ticked already (`done` is updated)."""
    tick = {
        "account_id": acc.id,
        "stage": stage.key,
        "item": item.key,
        "ticked_by": actor,
        "ticked_at": now,
        "via": via,
    }
    if not insert_ignoring_duplicates(s, TICKS, tick, ["account_id", "stage", "item"]):
        return False
    done.add(item.key)
    emit(
        s,
        rules,
        ChecklistTicked(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=actor,
            audience=stage.owners,
            stage=stage.key,
            item=item.key,
            done=len(done),
            total=len(stage.checklist),
        ),
        now,
    )
    return True


def assign_owner(cmd: c.AssignOwner, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _assign_owner, uow=uow, clock=clock, rules=rules)


def _assign_owner(cmd: c.AssignOwner, s: Connection, now: datetime, rules: Rules) -> Outcome:
    acc = find_account(s, cmd.account)
    stage = rules.pipeline.stage(acc.stage)
    require_owner_team(rules, cmd.actor, stage, acc.name, Text("assign an owner to", "分配负责人给"))
    owner = resolve_owner(rules, cmd.owner, cmd.channel)
    version = bump(s, acc, now, owner=owner)
    emit(
        s,
        rules,
        OwnerAssigned(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=cmd.actor.ref,
            audience=stage.owners,
            owner=owner,
            previous=acc.owner,
            stage=stage.key,
        ),
        now,
    )
    view = account_view(acc).model_copy(update={"owner": owner, "version": version})
    return Outcome(kind="assigned", account=view)


def record_renewal(cmd: c.RecordRenewal, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _record_renewal, uow=uow, clock=clock, rules=rules)


def _record_renewal(cmd: c.RecordRenewal, s: Connection, now: datetime, rules: Rules) -> Outcome:
    acc = find_account(s, cmd.account)
    p = rules.pipeline
    stage = p.stage(acc.stage)
    if not stage.renewable:
        where = ", ".join(st.key for st in p.stages if st.renewable) or "no stage"
        raise TransitionRefused(
            Text(
                f"Renewals and expansions are recorded on mature accounts ({where}); "
                f"{acc.name} is in {stage.title('en')}.",
                f"续费/增购只能记录在成熟客户({where})上;{acc.name} 处于{stage.title('zh')}。",
            ),
            [],
        )
    require_owner_team(rules, cmd.actor, stage, acc.name, Text("record a renewal for", "记录续费:"))
    if cmd.amount <= 0:
        raise InvalidInput(Text("The renewal amount must be positive.", "续费金额必须大于零。"))
    if cmd.until <= now.date():
        raise InvalidInput(
            Text(
                f"The new contract end {cmd.until} is not in the future.",
                f"新的合同到期日 {cmd.until} 不在未来。",
            )
        )
    kind = "expansion" if acc.amount is not None and cmd.amount > acc.amount else "renewal"
    s.execute(
        insert(RENEWALS).values(
            account_id=acc.id,
            kind=kind,
            amount=cmd.amount,
            contract_end=cmd.until,
            recorded_by=cmd.actor.ref,
            recorded_at=now,
            note=clean_reason(cmd.note),
        )
    )
    version = bump(s, acc, now, amount=cmd.amount, contract_end=cmd.until)
    emit(
        s,
        rules,
        RenewalRecorded(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=cmd.actor.ref,
            audience=stage.owners,
            renewal=kind,
            amount=cmd.amount,
            contract_end=cmd.until.isoformat(),
            stage=stage.key,
        ),
        now,
    )
    view = account_view(acc).model_copy(update={"amount": cmd.amount, "contract_end": cmd.until, "version": version})
    return Outcome(kind="renewed", account=view, renewal=kind)


def claim_handoff(cmd: c.ClaimHandoff, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _claim_handoff, uow=uow, clock=clock, rules=rules)


def _claim_handoff(cmd: c.ClaimHandoff, s: Connection, now: datetime, rules: Rules) -> Outcome:
    roster = rules.roster
    if cmd.handoff_id is not None:
        rows: Sequence[Row[Any]] = (
            s.execute(select(HANDOFFS).where(HANDOFFS.c.id == cmd.handoff_id)).all() if valid_id(cmd.handoff_id) else []
        )
        if not rows:
            raise NotFound(Text(f"No handoff #{cmd.handoff_id}.", f"没有交接 #{cmd.handoff_id}。"))
        acc = s.execute(select(ACC).where(ACC.c.id == rows[0].account_id)).one()
    else:
        acc = find_account(s, cmd.account or "")
        rows = s.execute(select(HANDOFFS).where(HANDOFFS.c.account_id == acc.id).order_by(HANDOFFS.c.id.desc())).all()
    # Only a handoff of the stage the account is in is waiting (see stages.apply_transition).
    open_rows = [r for r in rows if r.status == "open" and r.stage == acc.stage]
    if not open_rows:
        last = next((r for r in rows if r.status == "claimed"), None)
        if last is not None:
            raise Conflict(
                Text(
                    f"{acc.name} was already taken by {last.claimed_by}.",
                    f"{acc.name} 已由 {last.claimed_by} 接手。",
                )
            )
        closed = next((r.note for r in rows if r.status == "superseded" and r.note), None)
        if closed is not None:
            raise NotFound(
                Text(
                    f"{acc.name} has no open handoff (the last one closed when {closed}).",
                    f"{acc.name} 没有待接手的交接(上一个已关闭:{closed})。",
                )
            )
        raise NotFound(Text(f"{acc.name} has no open handoff.", f"{acc.name} 没有待接手的交接。"))
    mine = [r for r in open_rows if roster.in_any_team(cmd.actor, (r.to_team,))]
    if not mine:
        teams = ", ".join(sorted({r.to_team for r in open_rows}))
        raise NotAuthorized(
            Text(
                f"This handoff is for the {teams} team; you are not in it.",
                f"这个交接属于 {teams} 团队,你不在该团队中。",
            )
        )
    h = mine[0]
    res = s.execute(
        update(HANDOFFS)
        .where(HANDOFFS.c.id == h.id, HANDOFFS.c.status == "open")
        .values(status="claimed", claimed_by=cmd.actor.ref, claimed_at=now)
    )
    if res.rowcount != 1:
        who = s.execute(select(HANDOFFS.c.claimed_by).where(HANDOFFS.c.id == h.id)).scalar()
        raise Conflict(Text(f"{acc.name} was just taken by {who}.", f"{acc.name} 刚被 {who} 接手。"))
    version = bump(s, acc, now, owner=cmd.actor.ref)
    emit(
        s,
        rules,
        HandoffClaimed(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=cmd.actor.ref,
            audience=(h.to_team,),
            handoff_id=h.id,
            stage=h.stage,
            to_team=h.to_team,
        ),
        now,
    )
    view = account_view(acc).model_copy(update={"owner": cmd.actor.ref, "version": version})
    return Outcome(kind="claimed", account=view, handoff_ids=(h.id,))
