"""Pipeline automations carried out: assign an owner, open a task, notify a team, move a stage.

The pipeline says what and when (lifecycle/domain/pipeline.py `Automation`); this module does it inside
the caller's transaction: the stage move that entered the stage, the signal that fired it, or the
scheduler's run for "after N days in stage" (lifecycle/usecases/scheduling.py), so it happens exactly once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, update

from lifecycle.db.engine import upsert
from lifecycle.db.tables import ACC, ROTATIONS
from lifecycle.domain.access import Actor
from lifecycle.domain.events import AutomationNotice, OwnerAssigned
from lifecycle.domain.i18n import Text
from lifecycle.domain.pipeline import Automation
from lifecycle.domain.rules import Rules
from lifecycle.read.accounts import AccountRecord, changed
from lifecycle.usecases.base import emit
from lifecycle.usecases.tasks import open_task

AUTOMATION = Actor("system", "automation")


def _rotation(rules: Rules, team: str) -> list[str]:
    """Who takes turns: the team's members; its approvers only when there is nobody else."""
    members = rules.roster.members.get(team, frozenset())
    doers = members - rules.roster.approvers.get(team, frozenset())
    return sorted(doers or members)


def _next_turn(s: Connection, key: str) -> int:
    """Bump a round-robin counter and return its new value (1 for the first turn), atomically:
    two replicas assigning at once get consecutive turns."""
    stmt = (
        upsert(s.dialect.name, ROTATIONS)
        .values(key=key, turns=1)
        .on_conflict_do_update(index_elements=[ROTATIONS.c.key], set_={"turns": ROTATIONS.c.turns + 1})
        .returning(ROTATIONS.c.turns)
    )
    return int(s.execute(stmt).scalar_one())


def perform(s: Connection, rules: Rules, auto: Automation, acc: AccountRecord, now: datetime) -> AccountRecord:
    """Carry out one automation that keeps the stage (assign, task, notify) for one account, in the
    caller's transaction; the account as it left it. `acc` must be current in this transaction (read
    in it, or as it was just written). A "move" is a stage move: `stages.carry_out` runs those."""
    p = rules.pipeline
    stage = p.stage(acc.stage)
    if acc.stage != auto.stage:
        return acc  # the account moved on before the automation's turn came
    if auto.action == "assign":
        team = auto.team or ""
        people = _rotation(rules, team)
        if not people or (acc.owner and rules.roster.canonical_ref(acc.owner) in rules.roster.members.get(team, ())):
            return acc  # nobody to assign, or a member of the team owns it already
        owner = people[(_next_turn(s, f"assign:{auto.stage}:{team}") - 1) % len(people)]
        s.execute(update(ACC).where(ACC.c.id == acc.id).values(owner=owner, version=ACC.c.version + 1, updated_at=now))
        assigned = changed(acc, owner=owner, version=acc.version + 1, updated_at=now)
        emit(
            s,
            rules,
            OwnerAssigned(
                account_id=acc.id,
                account=acc.name,
                at=now,
                actor=AUTOMATION.ref,
                audience=(team,),
                owner=owner,
                previous=acc.owner,
                stage=acc.stage,
            ),
            now,
        )
        return assigned
    if auto.action == "task":
        open_task(
            s,
            rules,
            acc,
            title=Text(auto.en, auto.zh),
            team=auto.team,
            source=f"automation:{auto.key}",
            actor=AUTOMATION.ref,
            now=now,
            link=auto.link,
        )
    elif auto.action == "notify":
        emit(
            s,
            rules,
            AutomationNotice(
                account_id=acc.id,
                account=acc.name,
                at=now,
                actor=AUTOMATION.ref,
                audience=(auto.team,) if auto.team else stage.owners,
                automation=auto.key,
                stage=acc.stage,
                text_en=auto.en,
                text_zh=auto.zh,
                link=auto.link,
            ),
            now,
        )
    return acc


def on_entry(s: Connection, rules: Rules, acc: AccountRecord, now: datetime) -> AccountRecord:
    """Run the on-entry automations of the stage `acc` has just entered; the account as they left it.
    The pipeline refuses a "move" on entry when it is loaded, so entering a stage never moves on."""
    for auto in rules.pipeline.automations_for(acc.stage, "entry"):
        acc = perform(s, rules, auto, acc, now)
    return acc
