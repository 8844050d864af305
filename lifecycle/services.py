"""Use cases: one plain function per command, each over a unit of work, a clock and the rules.

Every function runs in one transaction: it applies the change, appends history, writes domain
events to the outbox and records the idempotency key, all or nothing. A repeated key returns the
first outcome (marked `replayed`) and changes nothing. The hot path (a stage move) is a handful of
single-row statements, written with SQLAlchemy Core on the typed models' tables for speed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lifecycle import commands as c
from lifecycle.access import Actor, Roster
from lifecycle.clock import Clock
from lifecycle.db.models import (
    Account,
    Approval,
    ChecklistTick,
    Handoff,
    OutboxRow,
    ProcessedCommand,
    Renewal,
    StageChange,
    table,
)
from lifecycle.db.uow import UnitOfWork
from lifecycle.errors import (
    AlreadyDecided,
    AmbiguousAccount,
    Conflict,
    InvalidInput,
    NotAuthorized,
    NotFound,
    TransitionRefused,
)
from lifecycle.events import (
    AccountAdded,
    ApprovalDecided,
    ApprovalRequested,
    ChecklistTicked,
    Event,
    HandoffClaimed,
    HandoffOpened,
    OwnerAssigned,
    RenewalRecorded,
    StageChanged,
)
from lifecycle.i18n import Text
from lifecycle.machine import decide
from lifecycle.pipeline import ChecklistItem, Pipeline, Stage, TransitionKind
from lifecycle.views import AccountView, Outcome

ACC = table(Account)
HIST = table(StageChange)
OUTBOX = table(OutboxRow)
KEYS = table(ProcessedCommand)
APPROVALS = table(Approval)
TICKS = table(ChecklistTick)
HANDOFFS = table(Handoff)
RENEWALS = table(Renewal)

MAX_NAME = 200
MAX_REASON = 1000


@dataclass(frozen=True)
class Rules:
    """The configuration the use cases obey: the pipeline, who is in which team, where events go."""

    pipeline: Pipeline
    roster: Roster
    targets: tuple[str, ...] = ("console",)
    extra: dict[str, Any] = field(default_factory=dict)


C = TypeVar("C", bound=c.Command)
Body = Callable[[C, Session, datetime, Rules], Outcome]


def _apply(cmd: C, body: Body[C], *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    """Run `body` in one transaction under the command's idempotency key."""
    if not cmd.key:
        raise InvalidInput(Text("Every command needs an idempotency key.", "每个命令都需要幂等键。"))
    with uow:
        s = uow.session
        prior = s.execute(select(KEYS.c.outcome).where(KEYS.c.key == cmd.key)).scalar_one_or_none()
        if prior is not None:
            return _replayed(prior)
        now = clock.now()
        outcome = body(cmd, s, now, rules)
        s.execute(
            insert(KEYS).values(
                key=cmd.key,
                command=type(cmd).__name__,
                account_id=outcome.account.id,
                outcome=outcome.model_dump_json(),
                processed_at=now,
            )
        )
        try:
            uow.commit()
        except IntegrityError:
            uow.rollback()
            prior = s.execute(select(KEYS.c.outcome).where(KEYS.c.key == cmd.key)).scalar_one_or_none()
            if prior is not None:  # the same delivery, applied concurrently by another worker
                return _replayed(prior)
            raise Conflict(
                Text(
                    "Someone else changed this at the same moment. Look again and retry.",
                    "有人同时修改了它。请刷新后重试。",
                )
            ) from None
        return outcome


def _replayed(stored: str) -> Outcome:
    return Outcome.model_validate_json(stored).model_copy(update={"replayed": True})


# ---------------------------------------------------------------- shared steps


def _view(row: Row[Any]) -> AccountView:
    return AccountView(
        id=row.id,
        name=row.name,
        stage=row.stage,
        stage_entered_at=row.stage_entered_at,
        owner=row.owner,
        amount=row.amount,
        segment=row.segment,
        external_id=row.external_id,
        contract_end=row.contract_end,
        version=row.version,
    )


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def find_account(s: Session, ref: str) -> Row[Any]:
    """An account by `#ID`, exact name, or unique name prefix (case-insensitive)."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput(Text("Which account? Give a name or #ID.", "请指定客户名称或 #编号。"))
    if ref.startswith("#") and ref[1:].isdigit():
        row = s.execute(select(ACC).where(ACC.c.id == int(ref[1:]))).first()
        if row is None:
            raise NotFound(Text(f"No account {ref}.", f"没有编号为 {ref} 的客户。"))
        return row
    key = name_key(ref)
    # One index range scan finds the exact name (sorted first) or every name with this prefix.
    rows = s.execute(
        select(ACC)
        .where(ACC.c.name_key >= key, ACC.c.name_key < key + "\U0010ffff")
        .order_by((ACC.c.name_key == key).desc(), ACC.c.name_key)
        .limit(6)
    ).all()
    if rows and (rows[0].name_key == key or len(rows) == 1):
        return rows[0]
    if len(rows) > 1:
        names = [r.name for r in rows[:5]] + (["…"] if len(rows) > 5 else [])
        raise AmbiguousAccount(ref, names)
    by_ext = s.execute(select(ACC).where(ACC.c.external_id == ref)).first()
    if by_ext is not None:
        return by_ext
    similar = s.execute(select(ACC.c.name).where(ACC.c.name_key.contains(key, autoescape=True)).limit(5)).scalars()
    hint = ", ".join(similar)
    raise NotFound(
        Text(
            f'No account named "{ref}".' + (f" Did you mean: {hint}?" if hint else ""),
            f"没有名为“{ref}”的客户。" + (f"你是不是要找:{hint}?" if hint else ""),
        )
    )


def _emit(s: Session, rules: Rules, event: Event, now: datetime) -> None:
    """Write one outbox row per delivery target, in the caller's transaction."""
    if not rules.targets:
        return
    payload = event.model_dump_json()
    event_id = str(uuid.uuid4())
    rows = [
        {
            "event_id": event_id,
            "target": target,
            "account_id": event.account_id,
            "kind": event.kind,
            "payload": payload,
            "created_at": now,
            "available_at": now,
            "status": "pending",
            "attempts": 0,
        }
        for target in rules.targets
    ]
    # A single-row insert is a cheaper statement than executemany on the hot path.
    s.execute(insert(OUTBOX).values(rows[0])) if len(rows) == 1 else s.execute(insert(OUTBOX), rows)


def _bump(s: Session, acc: Row[Any], now: datetime, **values: Any) -> int:
    """Update an account if nobody changed it since it was read; the new version, else Conflict."""
    new_version = acc.version + 1
    res = s.execute(
        update(ACC)
        .where(ACC.c.id == acc.id, ACC.c.version == acc.version)
        .values(version=new_version, updated_at=now, **values)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        current = s.execute(select(ACC.c.stage).where(ACC.c.id == acc.id)).scalar_one_or_none()
        raise Conflict(
            Text(
                f"Someone else just changed {acc.name} (now in {current}). Look again and retry.",
                f"{acc.name} 刚被其他人修改(当前阶段 {current})。请刷新后重试。",
            )
        )
    return int(new_version)


def _require_known(rules: Rules, actor: Actor) -> None:
    if not rules.roster.known(actor):
        raise NotAuthorized(
            Text(
                f"You ({actor.ref}) are not in any stagebot team yet. "
                f"Ask an admin to add {actor.ref} to a team in the config.",
                f"你({actor.ref})还不在任何团队中。请管理员在配置中把 {actor.ref} 加入团队。",
            )
        )


def _require_owner_team(rules: Rules, actor: Actor, stage: Stage, acc_name: str, doing: Text) -> None:
    _require_known(rules, actor)
    if not rules.roster.in_any_team(actor, stage.owners):
        p = rules.pipeline
        raise NotAuthorized(
            Text(
                f"Only {p.owner_labels(stage, 'en')} (owners of {stage.key}) or an admin can {doing.en} {acc_name}.",
                f"只有{p.owner_labels(stage, 'zh')}({stage.key} 的负责团队)或管理员可以{doing.zh} {acc_name}。",
            )
        )


def _clean_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            Text(
                f"The reason is {len(reason)} characters; keep it under {MAX_REASON}.",
                f"原因共 {len(reason)} 个字符,请控制在 {MAX_REASON} 以内。",
            )
        )
    return reason


def _move(
    s: Session,
    rules: Rules,
    acc: Row[Any],
    source: Stage,
    target: Stage,
    kind: str,
    *,
    actor: Actor,
    via: str,
    reason: str,
    now: datetime,
    approved_by: str | None = None,
) -> tuple[AccountView, tuple[int, ...]]:
    """Apply a decided transition: account row, history row, events, handoffs."""
    p = rules.pipeline
    version = _bump(s, acc, now, stage=target.key, stage_entered_at=now)
    s.execute(
        insert(HIST).values(
            account_id=acc.id,
            from_stage=source.key,
            to_stage=target.key,
            kind=kind,
            at=now,
            actor=actor.ref,
            via=via,
            reason=reason,
        )
    )
    if any(t.approval is not None for t in p.next_stages(source.key)):
        # Leaving a gated stage by another road withdraws the approval that was waiting there.
        s.execute(
            update(APPROVALS)
            .where(APPROVALS.c.account_id == acc.id, APPROVALS.c.status == "pending")
            .values(status="cancelled", decided_at=now, decided_by=actor.ref, note="account moved")
        )
    _emit(
        s,
        rules,
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
        ),
        now,
    )
    handoffs: list[int] = []
    if set(source.owners) != set(target.owners):
        # A team that no longer owns the account has nothing left to take over; a team that gets a
        # fresh handoff below needs only that one.
        new_teams = [t for t in target.owners if t not in source.owners] if kind in ("advance", "winback") else []
        s.execute(
            update(HANDOFFS)
            .where(
                HANDOFFS.c.account_id == acc.id,
                HANDOFFS.c.status == "open",
                HANDOFFS.c.to_team.not_in(target.owners) | HANDOFFS.c.to_team.in_(new_teams),
            )
            .values(status="superseded")
        )
    if kind in ("advance", "winback"):
        for team in target.owners:
            if team in source.owners:
                continue
            # Ownership passes to a team that did not own the account before: it must be taken.
            hid = s.execute(
                insert(HANDOFFS)
                .values(
                    account_id=acc.id,
                    stage=target.key,
                    from_teams=",".join(source.owners),
                    to_team=team,
                    opened_at=now,
                    opened_by=actor.ref,
                    status="open",
                )
                .returning(HANDOFFS.c.id)
            ).scalar_one()
            handoffs.append(hid)
            _emit(
                s,
                rules,
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
                ),
                now,
            )
    view = _view(acc).model_copy(update={"stage": target.key, "stage_entered_at": now, "version": version})
    return view, tuple(handoffs)


def _ticked(s: Session, account_id: int, stage: str) -> set[str]:
    return set(
        s.execute(select(TICKS.c.item).where(TICKS.c.account_id == account_id, TICKS.c.stage == stage)).scalars()
    )


# ---------------------------------------------------------------- use cases


def add_account(cmd: c.AddAccount, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _add_account, uow=uow, clock=clock, rules=rules)


def _add_account(cmd: c.AddAccount, s: Session, now: datetime, rules: Rules) -> Outcome:
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
    _require_known(rules, cmd.actor)
    if stage.key != p.first_stage.key:
        _require_owner_team(rules, cmd.actor, stage, name, Text("add an account in this stage:", "在该阶段新建"))
    if cmd.amount is not None and cmd.amount < 0:
        raise InvalidInput(Text("The amount cannot be negative.", "金额不能为负数。"))
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
        owner=cmd.owner,
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
    _emit(
        s,
        rules,
        AccountAdded(
            account_id=account_id,
            account=name,
            at=now,
            actor=cmd.actor.ref,
            audience=stage.owners,
            stage=stage.key,
            owner=cmd.owner,
            amount=cmd.amount,
        ),
        now,
    )
    view = AccountView(id=account_id, **{k: v for k, v in values.items() if k in AccountView.model_fields})
    return Outcome(kind="added", account=view, to_stage=stage.key)


def move_stage(cmd: c.MoveStage, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _move_stage, uow=uow, clock=clock, rules=rules)


def _move_stage(cmd: c.MoveStage, s: Session, now: datetime, rules: Rules) -> Outcome:
    p = rules.pipeline
    target = p.resolve_stage(cmd.target)
    acc = find_account(s, cmd.account)
    return _move_to(cmd, s, now, rules, acc, target, cmd.reason, cmd.expected_version)


def _move_to(
    cmd: c.Command,
    s: Session,
    now: datetime,
    rules: Rules,
    acc: Row[Any],
    target: Stage,
    reason: str,
    expected_version: int | None = None,
) -> Outcome:
    p = rules.pipeline
    reason = _clean_reason(reason)
    if expected_version is not None and acc.version != expected_version:
        raise Conflict(
            Text(
                f"{acc.name} changed since this was shown (now in {acc.stage}). Look again and retry.",
                f"{acc.name} 在显示后已被修改(当前阶段 {acc.stage})。请刷新后重试。",
            )
        )
    _require_known(rules, cmd.actor)
    source = p.stage(acc.stage)
    ticked = _ticked(s, acc.id, source.key) if source.require_checklist else ()
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
    view, handoffs = _move(
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
    return Outcome(kind="moved", account=view, from_stage=source.key, to_stage=target.key, handoff_ids=handoffs)


def _move_by_kind(kind: TransitionKind, verb: Text) -> Body[Any]:
    def body(cmd: c.Churn | c.WinBack | c.Archive, s: Session, now: datetime, rules: Rules) -> Outcome:
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
    return _apply(cmd, _churn, uow=uow, clock=clock, rules=rules)


def win_back(cmd: c.WinBack, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _win_back, uow=uow, clock=clock, rules=rules)


def archive(cmd: c.Archive, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _archive, uow=uow, clock=clock, rules=rules)


def _request_approval(
    cmd: c.Command,
    s: Session,
    now: datetime,
    rules: Rules,
    acc: Row[Any],
    source: Stage,
    target: Stage,
    reason: str,
) -> Outcome:
    edge = rules.pipeline.transition(source.key, target.key)
    assert edge is not None and edge.approval is not None
    gate = edge.approval
    pending = s.execute(
        select(APPROVALS.c.id, APPROVALS.c.requested_by, APPROVALS.c.to_stage).where(
            APPROVALS.c.account_id == acc.id, APPROVALS.c.status == "pending"
        )
    ).first()
    if pending is not None:
        raise Conflict(
            Text(
                f"{acc.name} is already waiting for approval #{pending.id} "
                f"(to {pending.to_stage}, asked by {pending.requested_by}).",
                f"{acc.name} 已在等待审批 #{pending.id}(推进到 {pending.to_stage},申请人 {pending.requested_by})。",
            )
        )
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
    _emit(
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
        account=_view(acc),
        from_stage=source.key,
        to_stage=target.key,
        approval_id=approval_id,
        approval_team=gate.team,
    )


def decide_approval(cmd: c.DecideApproval, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _decide_approval, uow=uow, clock=clock, rules=rules)


def _decide_approval(cmd: c.DecideApproval, s: Session, now: datetime, rules: Rules) -> Outcome:
    p = rules.pipeline
    ap = s.execute(select(APPROVALS).where(APPROVALS.c.id == cmd.approval_id)).first()
    if ap is None:
        raise NotFound(Text(f"No approval #{cmd.approval_id}.", f"没有审批 #{cmd.approval_id}。"))
    if ap.status != "pending":
        raise _already_decided(ap)
    if not rules.roster.may_approve(cmd.actor, ap.team):
        team = p.team_by_key[ap.team]
        raise NotAuthorized(
            Text(
                f"Only {team.en} approvers can decide approval #{ap.id}.",
                f"只有{team.zh}的审批人可以处理审批 #{ap.id}。",
            )
        )
    status: Literal["approved", "rejected"] = "approved" if cmd.approve else "rejected"
    note = _clean_reason(cmd.note)
    # First decision wins: the conditional update lets exactly one of two racing approvers through.
    res = s.execute(
        update(APPROVALS)
        .where(APPROVALS.c.id == ap.id, APPROVALS.c.status == "pending")
        .values(status=status, decided_by=cmd.actor.ref, decided_at=now, note=note)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
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
    view = _view(acc)
    if dest_key is not None:
        edge = p.transition(source.key, dest_key)
        why = note or ("approved" if cmd.approve else "rejected")
        view, handoffs = _move(
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
    _emit(
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
        account=view,
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


def tick_checklist(cmd: c.TickChecklist, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _tick_checklist, uow=uow, clock=clock, rules=rules)


def resolve_item(stage: Stage, ref: str) -> ChecklistItem:
    """A checklist item by 1-based number, key, or a unique part of its en/zh label."""
    items = stage.checklist
    ref = ref.strip()
    if not items:
        raise NotFound(Text(f"{stage.key} has no checklist.", f"{stage.key} 没有检查项。"))
    listing_en = "; ".join(f"{n}. {i.en}" for n, i in enumerate(items, 1))
    listing_zh = ";".join(f"{n}. {i.zh}" for n, i in enumerate(items, 1))
    if ref.isdigit():
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


def _tick_checklist(cmd: c.TickChecklist, s: Session, now: datetime, rules: Rules) -> Outcome:
    acc = find_account(s, cmd.account)
    stage = rules.pipeline.stage(acc.stage)
    item = resolve_item(stage, cmd.item)
    _require_owner_team(rules, cmd.actor, stage, acc.name, Text("tick the checklist of", "勾选检查项:"))
    done = _ticked(s, acc.id, stage.key)
    if item.key in done:
        return Outcome(kind="already_ticked", account=_view(acc), item=item.key)
    s.execute(
        insert(TICKS).values(
            account_id=acc.id,
            stage=stage.key,
            item=item.key,
            ticked_by=cmd.actor.ref,
            ticked_at=now,
            via=cmd.channel,
        )
    )
    _emit(
        s,
        rules,
        ChecklistTicked(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=cmd.actor.ref,
            audience=stage.owners,
            stage=stage.key,
            item=item.key,
            done=len(done) + 1,
            total=len(stage.checklist),
        ),
        now,
    )
    return Outcome(kind="ticked", account=_view(acc), item=item.key)


def assign_owner(cmd: c.AssignOwner, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _assign_owner, uow=uow, clock=clock, rules=rules)


def _assign_owner(cmd: c.AssignOwner, s: Session, now: datetime, rules: Rules) -> Outcome:
    acc = find_account(s, cmd.account)
    owner = cmd.owner.strip()
    if not owner or len(owner) > 120 or any(ch.isspace() for ch in owner):
        raise InvalidInput(Text("Name one person as the owner, e.g. @alice.", "请指定一位负责人,例如 @alice。"))
    stage = rules.pipeline.stage(acc.stage)
    _require_owner_team(rules, cmd.actor, stage, acc.name, Text("assign an owner to", "分配负责人给"))
    version = _bump(s, acc, now, owner=owner)
    _emit(
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
    view = _view(acc).model_copy(update={"owner": owner, "version": version})
    return Outcome(kind="assigned", account=view)


def record_renewal(cmd: c.RecordRenewal, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _record_renewal, uow=uow, clock=clock, rules=rules)


def _record_renewal(cmd: c.RecordRenewal, s: Session, now: datetime, rules: Rules) -> Outcome:
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
    _require_owner_team(rules, cmd.actor, stage, acc.name, Text("record a renewal for", "记录续费:"))
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
            note=_clean_reason(cmd.note),
        )
    )
    version = _bump(s, acc, now, amount=cmd.amount, contract_end=cmd.until)
    _emit(
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
    view = _view(acc).model_copy(update={"amount": cmd.amount, "contract_end": cmd.until, "version": version})
    return Outcome(kind="renewed", account=view, renewal=kind)


def claim_handoff(cmd: c.ClaimHandoff, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return _apply(cmd, _claim_handoff, uow=uow, clock=clock, rules=rules)


def _claim_handoff(cmd: c.ClaimHandoff, s: Session, now: datetime, rules: Rules) -> Outcome:
    roster = rules.roster
    if cmd.handoff_id is not None:
        rows: Sequence[Row[Any]] = s.execute(select(HANDOFFS).where(HANDOFFS.c.id == cmd.handoff_id)).all()
        if not rows:
            raise NotFound(Text(f"No handoff #{cmd.handoff_id}.", f"没有交接 #{cmd.handoff_id}。"))
        acc = s.execute(select(ACC).where(ACC.c.id == rows[0].account_id)).one()
    else:
        acc = find_account(s, cmd.account or "")
        rows = s.execute(select(HANDOFFS).where(HANDOFFS.c.account_id == acc.id).order_by(HANDOFFS.c.id.desc())).all()
    open_rows = [r for r in rows if r.status == "open"]
    if not open_rows:
        last = next((r for r in rows if r.status == "claimed"), None)
        if last is not None:
            raise Conflict(
                Text(
                    f"{acc.name} was already taken by {last.claimed_by}.",
                    f"{acc.name} 已由 {last.claimed_by} 接手。",
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
    if res.rowcount != 1:  # type: ignore[attr-defined]
        who = s.execute(select(HANDOFFS.c.claimed_by).where(HANDOFFS.c.id == h.id)).scalar()
        raise Conflict(Text(f"{acc.name} was just taken by {who}.", f"{acc.name} 刚被 {who} 接手。"))
    version = _bump(s, acc, now, owner=cmd.actor.ref)
    _emit(
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
    view = _view(acc).model_copy(update={"owner": cmd.actor.ref, "version": version})
    return Outcome(kind="claimed", account=view, handoff_ids=(h.id,))


HANDLERS: dict[type[c.Command], Callable[..., Outcome]] = {
    c.AddAccount: add_account,
    c.MoveStage: move_stage,
    c.Churn: churn,
    c.WinBack: win_back,
    c.Archive: archive,
    c.DecideApproval: decide_approval,
    c.TickChecklist: tick_checklist,
    c.AssignOwner: assign_owner,
    c.RecordRenewal: record_renewal,
    c.ClaimHandoff: claim_handoff,
}


def count_accounts(s: Session) -> int:
    return int(s.execute(select(func.count()).select_from(ACC)).scalar_one())
