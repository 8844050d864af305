"""One person across Slack and Feishu in the core (SQLite, and PostgreSQL when configured): what Alice
owns through Slack she moves, lists as hers, and decides from Feishu; old rows under either of her
refs stay hers; owners are named by key, email or mention."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from lifecycle.core import Lifecycle
from lifecycle.db.models import OutboxRow
from lifecycle.db.tables import ACC, APPROVALS, HIST, TASKS
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor, Person, Roster
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.errors import NotAuthorized, NotFound
from lifecycle.domain.events import load_event
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import AccountList, ApprovalList, TaskList, Who
from tests.conftest import ADMIN, new_key

ALICE_SLACK, ALICE_FEISHU = Actor("slack", "U0ALICE"), Actor("feishu", "ou_alice")
BOB_SLACK, BOB_FEISHU = Actor("slack", "U0BOB"), Actor("feishu", "ou_bob")
CAROL = Actor("feishu", "ou_carol")
ALICE = Person.build("alice", "Alice Wang", "alice@acme.example", slack="U0ALICE", feishu="ou_alice")
BOB = Person.build("bob", "Bob Li", slack="U0BOB", feishu="ou_bob")
SAM = Person.build("sam", "Sam", feishu="ou_sam")  # Feishu only
ZOE = Person.build("zoe", "Zoe", "zoe@acme.example")  # no chat account


@pytest.fixture
def people_rules() -> Rules:
    roster = Roster.build(
        members={"sales": ["alice", "sam", "zoe"], "cs": ["feishu:ou_carol"]},
        approvers={"sales": ["bob"]},
        admins=[ADMIN.ref],
        people=[ALICE, BOB, SAM, ZOE],
    )
    return Rules(load_preset("default").model_copy(update={"automations": ()}), roster, targets=("console",))


@pytest.fixture
def core(database: Database, people_rules: Rules, clock: FixedClock) -> Lifecycle:
    return Lifecycle(database, people_rules, clock)


def run(core: Lifecycle, cmd_type: type[c.Command], actor: Actor, **kw: Any) -> Any:
    return core.execute(cmd_type(actor=actor, key=new_key(), **kw))


def mine(core: Lifecycle, actor: Actor) -> list[str]:
    got = core.ask(c.ListAccounts(actor=actor, mine=True))
    assert isinstance(got, AccountList)
    return [a.name for _, accounts in got.groups for a in accounts]


def outbox(db: Database, kind: str) -> list[Any]:
    t = OutboxRow.__table__
    with db.reader() as uow:
        rows = uow.conn.execute(select(t.c.payload).where(t.c.kind == kind).order_by(t.c.id)).scalars().all()
    return [load_event(p) for p in rows]


def test_alice_owning_through_slack_acts_from_feishu(core: Lifecycle, database: Database) -> None:
    run(core, c.AddAccount, ADMIN, name="Acme", stage="SQL")
    out = run(core, c.AssignOwner, ALICE_SLACK, account="Acme", owner="slack:U0ALICE")  # <@U0ALICE>
    assert out.account.owner == "slack:U0ALICE"
    assert mine(core, ALICE_FEISHU) == ["Acme"] == mine(core, ALICE_SLACK)  # --mine, from either platform
    moved = run(core, c.MoveStage, ALICE_FEISHU, account="Acme", target="PQL")
    assert moved.kind == "moved"
    with database.reader() as uow:
        actor, via = uow.conn.execute(select(HIST.c.actor, HIST.c.via).order_by(HIST.c.id.desc())).first() or ()
    assert (actor, via) == ("slack:U0ALICE", "feishu")  # one identity; the platform it came through kept
    assert moved.people == {"slack:U0ALICE": Who(name="Alice Wang", refs=("slack:U0ALICE", "feishu:ou_alice"))}


def test_an_approver_decides_from_either_platform(core: Lifecycle, database: Database) -> None:
    run(core, c.AddAccount, ADMIN, name="Acme", stage="PQL")
    asked = run(core, c.MoveStage, ALICE_FEISHU, account="Acme", target="P0")
    assert asked.kind == "approval_requested"
    waiting = core.ask(c.ListApprovals(actor=BOB_FEISHU, mine_to_decide=True))
    assert isinstance(waiting, ApprovalList) and [a.id for a in waiting.approvals] == [asked.approval_id]
    decided = run(core, c.DecideApproval, BOB_FEISHU, approval_id=asked.approval_id, approve=True)
    assert decided.kind == "approved" and decided.decided_by == "slack:U0BOB"
    with database.reader() as uow:
        requested_by = uow.conn.execute(select(APPROVALS.c.requested_by)).scalar_one()
    assert requested_by == "slack:U0ALICE"
    (event,) = outbox(database, "ApprovalDecided")
    assert event.people["slack:U0BOB"].refs == ("slack:U0BOB", "feishu:ou_bob")  # renderers mention him


def test_rows_stored_under_another_ref_of_hers_stay_hers(core: Lifecycle, database: Database) -> None:
    """Before [people] was configured, Alice on Feishu wrote `feishu:ou_alice` as the owner: it is hers."""
    run(core, c.AddAccount, ADMIN, name="Old", stage="SQL")
    with database.uow() as uow:
        uow.conn.execute(update(ACC).values(owner="feishu:ou_alice"))
        uow.commit()
    assert mine(core, ALICE_SLACK) == ["Old"]
    task = run(core, c.AddTask, ALICE_SLACK, account="Old", title="call them")
    with database.reader() as uow:
        assert uow.conn.execute(select(TASKS.c.assignee)).scalar_one() == "slack:U0ALICE"
    tasks = core.ask(c.ListTasks(actor=ALICE_FEISHU, mine=True))
    assert isinstance(tasks, TaskList) and [t.id for t in tasks.tasks] == [task.task_id]
    assert run(core, c.CompleteTask, ALICE_FEISHU, task_id=task.task_id).kind == "task_done"


@pytest.mark.parametrize(
    ("typed", "actor", "owner"),
    [
        ("slack:alice", ALICE_SLACK, "slack:U0ALICE"),  # `assign Acme alice` (the grammar adds the platform)
        ("feishu:Alice", ALICE_FEISHU, "slack:U0ALICE"),  # `@Alice` typed in Feishu
        ("slack:alice@acme.example", ALICE_SLACK, "slack:U0ALICE"),
        ("feishu:ou_alice", ALICE_SLACK, "slack:U0ALICE"),  # a Feishu mention
        ("slack:sam", ALICE_SLACK, "feishu:ou_sam"),  # Sam has no Slack account: his Feishu ref
        ("slack:zoe@acme.example", ALICE_SLACK, "person:zoe"),  # Zoe has no chat account yet
    ],
)
def test_assign_by_key_email_name_or_mention(core: Lifecycle, typed: str, actor: Actor, owner: str) -> None:
    run(core, c.AddAccount, ADMIN, name="Acme", stage="SQL")
    assert run(core, c.AssignOwner, actor, account="Acme", owner=typed).account.owner == owner
    assert run(core, c.AddAccount, ADMIN, name="Beta", owner=typed).account.owner == owner


def test_assigning_someone_unknown_is_refused_naming_who_can_own(core: Lifecycle) -> None:
    run(core, c.AddAccount, ADMIN, name="Acme", stage="SQL")
    for typed in ("slack:mallory", "slack:U0NEW"):
        with pytest.raises(NotFound) as info:
            run(core, c.AssignOwner, ALICE_SLACK, account="Acme", owner=typed)
        assert "alice, bob, sam, zoe, feishu:ou_carol" in info.value.text("en")


def test_someone_unknown_is_told_the_config_line_to_add(core: Lifecycle) -> None:
    stranger = Actor("slack", "U0XYZ")
    with pytest.raises(NotAuthorized) as info:
        run(core, c.AddAccount, stranger, name="Mine")
    assert '[people.you] slack = "U0XYZ"' in info.value.text("en")
    with pytest.raises(NotAuthorized) as info:
        core.ask(c.ListAccounts(actor=Actor("feishu", "ou_xyz")))
    assert '[people.you] feishu = "ou_xyz"' in info.value.text("en") and "ou_xyz" in info.value.text("zh")


def test_round_robin_assigns_people_by_their_canonical_ref(database: Database, clock: FixedClock) -> None:
    roster = Roster.build(members={"sales": ["alice", "sam"]}, approvers={}, admins=[ADMIN.ref], people=[ALICE, SAM])
    core = Lifecycle(database, Rules(load_preset("default"), roster, targets=("console",)), clock)
    owners = []
    for i in range(2):
        run(core, c.AddAccount, ADMIN, name=f"Lead {i}", stage="SQL")
        owners.append(run(core, c.MoveStage, ADMIN, account=f"Lead {i}", target="PQL").account.owner)
    assert owners == ["feishu:ou_sam", "slack:U0ALICE"]
    assigned = outbox(database, "OwnerAssigned")
    assert assigned[1].people["slack:U0ALICE"] == Who(name="Alice Wang", refs=("slack:U0ALICE", "feishu:ou_alice"))
