"""Stage moves: add an account, move it (or open the approval its gate needs), churn, win back, archive."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from lifecycle.db.tables import ACC, APPROVALS, HANDOFFS, HIST
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import (
    Conflict,
    InvalidInput,
    TransitionRefused,
)
from lifecycle.domain.events import (
    AccountAdded,
    ApprovalRequested,
    Event,
    HandoffOpened,
    StageChanged,
)
from lifecycle.domain.i18n import Text
from lifecycle.domain.limits import MAX_NAME
from lifecycle.domain.machine import decide
from lifecycle.domain.pipeline import Automation, Stage, TransitionKind
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import AccountRecord, account_view, changed, find_account, name_key
from lifecycle.usecases.automations import AUTOMATION, on_entry, perform
from lifecycle.usecases.base import (
    INSERT_HISTORY,
    SUPERSEDE_HANDOFFS,
    Body,
    apply_command,
    bump,
    clean_reason,
    emit,
    emit_many,
    require_known,
    require_owner_team,
    resolve_owner,
    superseded_note,
    ticked_items,
)

# Statements a move runs, built once with bind parameters (building one costs more than running it).
_WITHDRAW_APPROVAL = (
    update(APPROVALS)
    .where(APPROVALS.c.account_id == bindparam("b_account"), APPROVALS.c.status == "pending")
    .values(status="cancelled", decided_at=bindparam("now"), decided_by=bindparam("by"), note="account moved")
)


_OPEN_HANDOFF = insert(HANDOFFS).returning(HANDOFFS.c.id)


def apply_transition(
    s: Connection,
    rules: Rules,
    acc: AccountRecord,
    source: Stage,
    target: Stage,
    kind: str,
    *,
    actor: Actor,
    via: str,
    reason: str,
    now: datetime,
    approved_by: str | None = None,
) -> tuple[AccountRecord, tuple[int, ...]]:
    """Apply a decided transition: account row, history row, events, handoffs, entry automations.
    Answers with the account as the transaction left it (automations may have changed it more)."""
    p = rules.pipeline
    version = bump(s, acc, now, stage=target.key, stage_entered_at=now)
    s.execute(
        INSERT_HISTORY,
        {
            "account_id": acc.id,
            "from_stage": source.key,
            "to_stage": target.key,
            "kind": kind,
            "at": now,
            "actor": actor.ref,
            "via": via,
            "reason": reason,
            "from_entered_at": acc.stage_entered_at,
            "stay_seconds": (now - acc.stage_entered_at).total_seconds(),
        },
    )
    if any(t.approval is not None for t in p.next_stages(source.key)):
        # Leaving a gated stage by another road withdraws the approval that was waiting there.
        s.execute(_WITHDRAW_APPROVAL, {"b_account": acc.id, "now": now, "by": actor.ref})
    events: list[Event] = [
        StageChanged(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=actor.ref,
            audience=target.owners,
            from_stage=source.key,
            to_stage=target.key,
            transition=kind,
            reason=reason,
            via=via,
            owner=acc.owner,
            approved_by=approved_by,
        )
    ]
    handoffs: list[int] = []
    # Leaving a stage closes the handoffs it opened, whoever owns the next one.
    s.execute(SUPERSEDE_HANDOFFS, {"b_account": acc.id, "b_now": now, "b_note": superseded_note(acc.name, target.key)})
    if kind in ("advance", "winback"):
        for team in target.owners:
            if team in source.owners:
                continue
            # Ownership passes to a team that did not own the account before: it must be taken.
            hid = s.execute(
                _OPEN_HANDOFF,
                {
                    "account_id": acc.id,
                    "stage": target.key,
                    "from_teams": ",".join(source.owners),
                    "to_team": team,
                    "opened_at": now,
                    "opened_by": actor.ref,
                    "status": "open",
                },
            ).scalar_one()
            handoffs.append(hid)
            events.append(
                HandoffOpened(
                    account_id=acc.id,
                    account=acc.name,
                    at=now,
                    actor=actor.ref,
                    audience=(team,),
                    handoff_id=hid,
                    stage=target.key,
                    from_teams=source.owners,
                    to_team=team,
                    owner=acc.owner,
                    amount=acc.amount,
                    segment=acc.segment,
                    contract_end=acc.contract_end.isoformat() if acc.contract_end else None,
                )
            )
    # The change and its handoffs go to the outbox in one statement, in this order.
    emit_many(s, rules, events, now)
    moved: AccountRecord = changed(acc, stage=target.key, stage_entered_at=now, version=version, updated_at=now)
    if p.automations_for(target.key, "entry"):
        moved = on_entry(s, rules, moved, now)
    return moved, tuple(handoffs)


def carry_out(s: Connection, rules: Rules, auto: Automation, acc: AccountRecord, now: datetime) -> AccountRecord:
    """Carry out one automation fired by time or a signal, in the caller's transaction: a "move"
    through the pipeline's transition (never one that needs approval), the others by
    `automations.perform`. The account as it left it."""
    if auto.action != "move":
        return perform(s, rules, auto, acc, now)
    p = rules.pipeline
    edge = p.transition(acc.stage, auto.to) if auto.to is not None and acc.stage == auto.stage else None
    if edge is None or edge.approval is not None:
        return acc  # moved on before its turn, or refused at load (a hand-edited pipeline may still disagree)
    moved, _ = apply_transition(
        s,
        rules,
        acc,
        p.stage(acc.stage),
        p.stage(edge.target),
        edge.kind,
        actor=AUTOMATION,
        via="automation",
        reason=auto.key,
        now=now,
    )
    return moved


def add_account(cmd: c.AddAccount, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _add_account, uow=uow, clock=clock, rules=rules)


def _add_account(cmd: c.AddAccount, s: Connection, now: datetime, rules: Rules) -> Outcome:
    p = rules.pipeline
    name = " ".join(cmd.name.split())
    if not name or name.startswith("#") or len(name) > MAX_NAME:
        raise InvalidInput(
            Text(
                f"An account name must be 1-{MAX_NAME} characters and not start with #.",
                f"客户名称需为 1-{MAX_NAME} 个字符,且不能以 # 开头。",
            )
        )
    stage = p.resolve_stage(cmd.stage) if cmd.stage else p.first_stage
    if stage.terminal:
        raise InvalidInput(
            Text(f"New accounts cannot start in {stage.title('en')}.", f"新客户不能从{stage.title('zh')}开始。")
        )
    require_known(rules, cmd.actor)
    if stage.key != p.first_stage.key:
        require_owner_team(rules, cmd.actor, stage, name, Text("add an account in this stage:", "在该阶段新建"))
    if cmd.amount is not None and cmd.amount < 0:
        raise InvalidInput(Text("The amount cannot be negative.", "金额不能为负数。"))
    owner = resolve_owner(rules, cmd.owner, cmd.channel) if cmd.owner is not None else None
    existing = s.execute(select(ACC.c.id, ACC.c.name, ACC.c.stage).where(ACC.c.name_key == name_key(name))).first()
    if existing is not None:
        raise Conflict(
            Text(
                f"An account named {existing.name} already exists (#{existing.id}, in {existing.stage}).",
                f"已存在名为 {existing.name} 的客户(#{existing.id},阶段 {existing.stage})。",
            )
        )
    if cmd.external_id:
        dup = s.execute(select(ACC.c.name).where(ACC.c.external_id == cmd.external_id)).scalar()
        if dup is not None:
            raise Conflict(
                Text(
                    f"External id {cmd.external_id} already belongs to {dup}.",
                    f"外部编号 {cmd.external_id} 已属于 {dup}。",
                )
            )
    values = dict(
        name=name,
        name_key=name_key(name),
        stage=stage.key,
        stage_entered_at=now,
        owner=owner,
        amount=cmd.amount,
        segment=cmd.segment,
        external_id=cmd.external_id or None,
        contract_end=cmd.contract_end,
        created_at=now,
        updated_at=now,
        version=1,
    )
    try:
        with s.begin_nested():
            account_id = s.execute(insert(ACC).values(**values).returning(ACC.c.id)).scalar_one()
    except IntegrityError:
        raise Conflict(
            Text(f"An account named {name} was just added by someone else.", f"{name} 刚被其他人新建。")
        ) from None
    s.execute(
        insert(HIST).values(
            account_id=account_id,
            from_stage=None,
            to_stage=stage.key,
            kind="create",
            at=now,
            actor=cmd.actor.ref,
            via=cmd.channel,
            reason="",
        )
    )
    emit(
        s,
        rules,
        AccountAdded(
            account_id=account_id,
            account=name,
            at=now,
            actor=cmd.actor.ref,
            audience=stage.owners,
            stage=stage.key,
            owner=owner,
            amount=cmd.amount,
        ),
        now,
    )
    added: AccountRecord = SimpleNamespace(id=account_id, sla_snoozed_until=None, **values)
    if p.automations_for(stage.key, "entry"):
        added = on_entry(s, rules, added, now)
    return Outcome(kind="added", account=account_view(added), to_stage=stage.key)


def move_stage(cmd: c.MoveStage, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _move_stage, uow=uow, clock=clock, rules=rules)


def _move_stage(cmd: c.MoveStage, s: Connection, now: datetime, rules: Rules) -> Outcome:
    p = rules.pipeline
    target = p.resolve_stage(cmd.target)
    acc = find_account(s, cmd.account)
    return _move_to(cmd, s, now, rules, acc, target, cmd.reason, cmd.expected_version)


def _move_to(
    cmd: c.Command,
    s: Connection,
    now: datetime,
    rules: Rules,
    acc: AccountRecord,
    target: Stage,
    reason: str,
    expected_version: int | None = None,
) -> Outcome:
    p = rules.pipeline
    reason = clean_reason(reason)
    if expected_version is not None and acc.version != expected_version:
        raise Conflict(
            Text(
                f"{acc.name} changed since this was shown (now in {acc.stage}). Look again and retry.",
                f"{acc.name} 在显示后已被修改(当前阶段 {acc.stage})。请刷新后重试。",
            )
        )
    require_known(rules, cmd.actor)
    source = p.stage(acc.stage)
    ticked = ticked_items(s, acc.id, source.key) if source.require_checklist else ()
    decision = decide(
        p,
        current=source.key,
        target=target.key,
        ticked=ticked,
        actor=cmd.actor,
        roster=rules.roster,
        account_name=acc.name,
    )
    decision.raise_if_refused()
    if decision.verdict == "approval":
        assert decision.gate is not None
        return _request_approval(cmd, s, now, rules, acc, source, target, reason)
    assert decision.transition is not None
    moved, handoffs = apply_transition(
        s,
        rules,
        acc,
        source,
        target,
        decision.transition.kind,
        actor=cmd.actor,
        via=cmd.channel,
        reason=reason,
        now=now,
    )
    return Outcome(
        kind="moved", account=account_view(moved), from_stage=source.key, to_stage=target.key, handoff_ids=handoffs
    )


def _move_by_kind(kind: TransitionKind, verb: Text) -> Body[Any]:
    def body(cmd: c.Churn | c.WinBack | c.Archive, s: Connection, now: datetime, rules: Rules) -> Outcome:
        acc = find_account(s, cmd.account)
        edge = rules.pipeline.transition_of_kind(acc.stage, kind)
        if edge is None:
            sources = [t.source for t in rules.pipeline.transitions if t.kind == kind]
            raise TransitionRefused(
                Text(
                    f"{acc.name} is in {acc.stage}; you can {verb.en} an account only from: "
                    f"{', '.join(sources) or 'nowhere in this pipeline'}.",
                    f"{acc.name} 处于 {acc.stage};只有这些阶段可以{verb.zh}:{'、'.join(sources) or '无'}。",
                ),
                [t.target for t in rules.pipeline.next_stages(acc.stage)],
            )
        return _move_to(cmd, s, now, rules, acc, rules.pipeline.stage(edge.target), cmd.reason)

    return body


_churn = _move_by_kind("churn", Text("churn", "标记流失"))
_win_back = _move_by_kind("winback", Text("win back", "召回"))
_archive = _move_by_kind("archive", Text("archive", "归档"))


def churn(cmd: c.Churn, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _churn, uow=uow, clock=clock, rules=rules)


def win_back(cmd: c.WinBack, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _win_back, uow=uow, clock=clock, rules=rules)


def archive(cmd: c.Archive, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _archive, uow=uow, clock=clock, rules=rules)


def _request_approval(
    cmd: c.Command,
    s: Connection,
    now: datetime,
    rules: Rules,
    acc: AccountRecord,
    source: Stage,
    target: Stage,
    reason: str,
) -> Outcome:
    edge = rules.pipeline.transition(source.key, target.key)
    assert edge is not None and edge.approval is not None
    gate = edge.approval

    def pending() -> Any:
        return s.execute(
            select(APPROVALS.c.id, APPROVALS.c.requested_by, APPROVALS.c.to_stage).where(
                APPROVALS.c.account_id == acc.id, APPROVALS.c.status == "pending"
            )
        ).first()

    def already_waiting(p: Any) -> Conflict:
        return Conflict(
            Text(
                f"{acc.name} is already waiting for approval #{p.id} (to {p.to_stage}, asked by {p.requested_by}).",
                f"{acc.name} 已在等待审批 #{p.id}(推进到 {p.to_stage},申请人 {p.requested_by})。",
            )
        )

    waiting = pending()
    if waiting is not None:
        raise already_waiting(waiting)
    # Opening an approval changes the account's state: a racing request loses on the account row
    # (after the winner commits) and is told which approval it is waiting for.
    try:
        version = bump(s, acc, now)
    except Conflict:
        waiting = pending()
        if waiting is not None:
            raise already_waiting(waiting) from None
        raise
    approval_id = s.execute(
        insert(APPROVALS)
        .values(
            account_id=acc.id,
            from_stage=source.key,
            to_stage=target.key,
            reject_to=gate.reject_to,
            team=gate.team,
            status="pending",
            requested_by=cmd.actor.ref,
            requested_at=now,
            reason=reason,
        )
        .returning(APPROVALS.c.id)
    ).scalar_one()
    emit(
        s,
        rules,
        ApprovalRequested(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=cmd.actor.ref,
            audience=(gate.team,),
            approval_id=approval_id,
            from_stage=source.key,
            to_stage=target.key,
            reject_to=gate.reject_to,
            team=gate.team,
            reason=reason,
            amount=acc.amount,
            owner=acc.owner,
        ),
        now,
    )
    return Outcome(
        kind="approval_requested",
        account=account_view(acc).model_copy(update={"version": version}),
        from_stage=source.key,
        to_stage=target.key,
        approval_id=approval_id,
        approval_team=gate.team,
    )
