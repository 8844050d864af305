"""Pipeline automations (the seed's three by default), tasks and snoozed SLA reminders, at explicit instants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from lifecycle.core import Lifecycle
from lifecycle.db.models import OutboxRow
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Roster
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.errors import Conflict, NotAuthorized, PipelineError
from lifecycle.domain.events import load_event
from lifecycle.domain.pipeline import from_mapping, load_preset
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import TaskList
from lifecycle.usecases.scheduling import Schedule, run_due
from tests.conftest import ADMIN, ALICE, BOB, CAROL, DAVE, T0, new_key

ALWAYS = Schedule(working_days=(1, 2, 3, 4, 5, 6, 7), working_hours=(0, 24))
DAY = timedelta(days=1)
SALES2 = "slack:U0SAM"  # a second Sales member, for the round-robin


@pytest.fixture
def auto_rules() -> Rules:
    roster = Roster.build(
        members={"sales": [ALICE.ref, SALES2], "cs": [CAROL.ref], "support": [DAVE.ref]},
        approvers={"sales": [BOB.ref]},
        admins=[ADMIN.ref],
    )
    return Rules(load_preset("default"), roster, targets=("console",))


@pytest.fixture
def auto(database: Database, auto_rules: Rules, clock: FixedClock) -> Lifecycle:
    return Lifecycle(database, auto_rules, clock)


def events(db: Database, kind: str) -> list[Any]:
    t = OutboxRow.__table__
    with db.reader() as uow:
        rows = uow.conn.execute(select(t.c.payload).where(t.c.kind == kind).order_by(t.c.id)).scalars().all()
    return [load_event(p) for p in rows]


def test_entering_pql_assigns_sales_owners_in_turn(auto: Lifecycle, database: Database) -> None:
    owners = []
    for i in range(4):
        auto.execute(c.AddAccount(name=f"Lead {i}", stage="SQL", actor=ADMIN, key=new_key()))
        out = auto.execute(c.MoveStage(account=f"Lead {i}", target="PQL", actor=ADMIN, key=new_key()))
        owners.append(out.account.owner)
    assert owners == [ALICE.ref, SALES2, ALICE.ref, SALES2]  # approvers (Bob) are not in the rotation
    assigned = events(database, "OwnerAssigned")
    assert [e.owner for e in assigned] == owners and all(e.actor == "system:automation" for e in assigned)


def test_an_owner_already_in_sales_is_kept(auto: Lifecycle) -> None:
    auto.execute(c.AddAccount(name="Kept", stage="SQL", owner=SALES2, actor=ADMIN, key=new_key()))
    out = auto.execute(c.MoveStage(account="Kept", target="PQL", actor=ADMIN, key=new_key()))
    assert out.account.owner == SALES2


def test_entering_p2_opens_the_guide_task_which_cs_can_close_once(auto: Lifecycle, database: Database) -> None:
    auto.execute(c.AddAccount(name="Guide", stage="P1", owner=CAROL.ref, actor=ADMIN, key=new_key()))
    auto.execute(c.MoveStage(account="Guide", target="P2", actor=ADMIN, key=new_key()))
    (opened,) = events(database, "TaskOpened")
    assert opened.audience == ("cs",) and opened.assignee == CAROL.ref and opened.link and "guide" in opened.title_en
    tasks = auto.ask(c.ListTasks(actor=CAROL, mine=True))
    assert isinstance(tasks, TaskList) and [t.id for t in tasks.tasks] == [opened.task_id]
    with pytest.raises(NotAuthorized):
        auto.execute(c.CompleteTask(task_id=opened.task_id, actor=DAVE, key=new_key()))  # Support, not CS
    done = auto.execute(c.CompleteTask(task_id=opened.task_id, actor=CAROL, key=new_key()))
    assert done.kind == "task_done"
    with pytest.raises(Conflict, match="already done by feishu:ou_carol"):
        auto.execute(c.CompleteTask(task_id=opened.task_id, actor=ADMIN, key=new_key()))
    assert auto.ask(c.ListTasks(actor=CAROL, mine=True)).tasks == ()  # type: ignore[union-attr]


def test_ninety_days_in_p5_opens_an_upsell_task_once(
    auto: Lifecycle, database: Database, auto_rules: Rules, clock: FixedClock
) -> None:
    auto.execute(c.AddAccount(name="Mature", stage="P5", actor=ADMIN, key=new_key()))
    assert run_due(database, auto_rules, ALWAYS, T0 + 89 * DAY).emitted.get("Automation", 0) == 0
    assert run_due(database, auto_rules, ALWAYS, T0 + 90 * DAY).emitted.get("Automation") == 1
    assert run_due(database, auto_rules, ALWAYS, T0 + 120 * DAY).emitted.get("Automation", 0) == 0
    (task,) = events(database, "TaskOpened")
    assert "upsell" in task.title_en.lower() and task.audience == ("cs",)


def test_typed_todos_and_snoozes(auto: Lifecycle, database: Database, auto_rules: Rules, clock: FixedClock) -> None:
    auto.execute(c.AddAccount(name="Sleepy", stage="SQL", actor=ADMIN, key=new_key()))
    todo = auto.execute(c.AddTask(account="Sleepy", title="  call the CTO  ", actor=ALICE, key=new_key()))
    assert todo.kind == "task_opened" and todo.item == "call the CTO"
    clock.at = T0 + 29 * DAY
    snoozed = auto.execute(c.SnoozeSla(account="Sleepy", days=7, actor=ALICE, key=new_key()))
    assert snoozed.until == T0 + 36 * DAY
    assert run_due(database, auto_rules, ALWAYS, T0 + 31 * DAY).emitted.get("SlaReminder", 0) == 0  # snoozed
    assert run_due(database, auto_rules, ALWAYS, T0 + 36 * DAY).emitted.get("SlaReminder") == 1  # awake again
    with pytest.raises(NotAuthorized):
        auto.execute(c.SnoozeSla(account="Sleepy", days=1, actor=CAROL, key=new_key()))  # CS does not own SQL


def test_broken_automations_are_refused_at_load_with_every_problem() -> None:
    data = load_preset("default").model_dump(by_alias=True)
    data["automations"] = [
        {"key": "a", "stage": "NOPE", "on": "entry", "action": "notify", "en": "x", "zh": "x"},
        {"key": "b", "stage": "P2", "on": "days", "action": "task", "team": "cs"},
        {"key": "c", "stage": "PQL", "on": "days", "days": 3, "action": "move", "to": "P0"},
        {"key": "d", "stage": "P1", "on": "entry", "action": "assign"},
    ]
    with pytest.raises(PipelineError) as err:
        from_mapping(data)
    text = "\n".join(err.value.problems)
    assert "automation a: unknown stage NOPE" in text
    assert "automation b: `days` goes with" in text and "automation b: a task needs its text" in text
    assert "automation c: move to P0 needs an approval" in text
    assert "automation d: assign needs the `team`" in text


def test_a_signal_that_moves_the_account_answers_with_where_it_went(database: Database, clock: FixedClock) -> None:
    # A "move" automation on a signal runs P1 -> P2, whose entry automation then opens the guide
    # task: the answer must show the account as all of that left it (stage, version), so the next
    # command that checks the version is not refused as a conflict.
    data = load_preset("default").model_dump(by_alias=True)
    data["automations"] = [
        *data["automations"],
        {"key": "go_test", "stage": "P1", "on": "signal", "signal": "api_configured", "action": "move", "to": "P2"},
    ]
    roster = Roster.build(members={"cs": [CAROL.ref]}, approvers={}, admins=[ADMIN.ref])
    core = Lifecycle(database, Rules(from_mapping(data), roster, targets=("console",)), clock)
    core.execute(c.AddAccount(name="Quick", stage="P1", owner=CAROL.ref, actor=ADMIN, key=new_key()))
    out = core.execute(c.IngestSignal(account="Quick", signal="api_configured", actor=ADMIN, key=new_key()))
    card = core.ask(c.ShowAccount(account="Quick", actor=ADMIN))
    assert (out.account.stage, out.account.version) == ("P2", card.account.version) and card.account.stage == "P2"
    assert [e.to_stage for e in events(database, "StageChanged")] == ["P2"]
    assert len(events(database, "TaskOpened")) == 1  # P2's entry automation ran, once
    moved = core.execute(
        c.MoveStage(account="Quick", target="P3", expected_version=out.account.version, actor=CAROL, key=new_key())
    )
    assert moved.account.stage == "P3"
