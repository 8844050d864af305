"""Product signals (`POST /api/v1/signals`): record one, tick the checklist items it completes, and
advance the account when the pipeline says a complete checklist moves it on.

One transaction per signal, under the key `signal:<source>:<id>`: a repeat changes nothing and
answers as the first delivery did; a refusal (unknown account or signal) changes nothing at all.
Usage signals (daily send volume) are only recorded here; `lifecycle/usecases/scheduling.py` raises the
churn-risk alert when they stay at zero.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from lifecycle.db.tables import ACC, SIGNALS
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import InvalidInput, NotFound
from lifecycle.domain.i18n import Text
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import AccountRecord, account_view, find_account
from lifecycle.usecases.accounts import record_tick
from lifecycle.usecases.base import apply_command, ticked_items
from lifecycle.usecases.stages import apply_transition, carry_out

SIGNAL_ACTOR = Actor("system", "signals")


def ingest_signal(cmd: c.IngestSignal, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _ingest, uow=uow, clock=clock, rules=rules)


def _account(s: Connection, cmd: c.IngestSignal) -> AccountRecord:
    if cmd.external_id:
        row = s.execute(select(ACC).where(ACC.c.external_id == cmd.external_id)).first()
        if row is None:
            raise NotFound(
                Text(f'No account with external id "{cmd.external_id}".', f"没有外部 ID 为“{cmd.external_id}”的客户。")
            )
        return row
    if not cmd.account:
        raise InvalidInput(Text('Name the account: "account" or "external_id".', "请指定客户:account 或 external_id。"))
    return find_account(s, cmd.account)


def _ingest(cmd: c.IngestSignal, s: Connection, now: datetime, rules: Rules) -> Outcome:
    known = rules.known_signals
    if cmd.signal not in known:
        listing = ", ".join(sorted(known)) or "none"
        raise InvalidInput(
            Text(f'Unknown signal "{cmd.signal}". Known: {listing}.', f"未知信号“{cmd.signal}”。可用:{listing}。")
        )
    acc = _account(s, cmd)
    at = cmd.at or now
    s.execute(
        insert(SIGNALS),
        {
            "source": cmd.source,
            "signal_id": cmd.signal_id or cmd.key,
            "account_id": acc.id,
            "signal": cmd.signal,
            "value": cmd.value,
            "at": at,
            "received_at": now,
        },
    )
    p = rules.pipeline
    stage = p.stage(acc.stage)
    done = ticked_items(s, acc.id, stage.key)
    ticked: list[str] = []
    for item in stage.checklist:
        if item.signal != cmd.signal or item.key in done:
            continue
        if record_tick(
            s, rules, acc, stage, item, actor=SIGNAL_ACTOR.ref, via=f"signal:{cmd.source}", now=now, done=done
        ):
            ticked.append(item.key)
    signalled = [a for a in p.automations_for(stage.key, "signal") if a.signal == cmd.signal]
    if signalled:
        for auto in signalled:
            acc = carry_out(s, rules, auto, acc, now)
    complete = bool(stage.checklist) and all(i.key in done for i in stage.checklist)
    # (Unless a "move" automation above has already taken the account out of this stage.)
    if ticked and complete and stage.advance_when_complete and acc.stage == stage.key:
        # The pipeline itself authorises this move (validated at load: an allowed, ungated edge).
        edge = p.transition(stage.key, stage.advance_when_complete)
        if edge is not None and edge.approval is None:
            target = p.stage(edge.target)
            moved, handoffs = apply_transition(
                s,
                rules,
                acc,
                stage,
                target,
                edge.kind,
                actor=SIGNAL_ACTOR,
                via=f"signal:{cmd.source}",
                reason=f"checklist complete ({cmd.signal})",
                now=now,
            )
            return Outcome(
                kind="moved",
                account=account_view(moved),
                from_stage=stage.key,
                to_stage=target.key,
                handoff_ids=handoffs,
                ticked=tuple(ticked),
            )
    return Outcome(kind="signal", account=account_view(acc), ticked=tuple(ticked))
