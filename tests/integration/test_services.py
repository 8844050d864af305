"""The use cases over a real database (SQLite, and PostgreSQL when configured): every edge of the seed
flowchart, approvals, permissions, idempotency, races, checklists, renewals, handoffs, lookups, and the
outbox written in the same transaction as the change."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.models import Approval, ChecklistTick, Handoff, OutboxRow, ProcessedCommand, StageChange
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor, Roster
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.errors import (
    AlreadyDecided,
    AlreadyInStage,
    AmbiguousAccount,
    ChecklistIncomplete,
    Conflict,
    InvalidInput,
    LifecycleError,
    NotAuthorized,
    NotFound,
    TransitionRefused,
    UnknownStage,
)
from lifecycle.domain.events import load_event
from lifecycle.domain.machine import allowed_next
from lifecycle.domain.pipeline import Pipeline, from_mapping, load_preset
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import AccountCard, AccountView, ApprovalList, History, HistoryLine, Outcome
from tests.conftest import ADMIN, ALICE, BOB, CAROL, DAVE, EVE, MARY, PG_URL, ROSTER, T0, new_key

DEFAULT = load_preset("default")
STAGES = [s.key for s in DEFAULT.stages]
ALLOWED_EDGES = [(t.source, t.target) for t in DEFAULT.transitions]

# Someone from an owner team of each stage, to make each move as a real user would.
MOVER: dict[str, Actor] = {
    "MQL": MARY,
    "SQL": ALICE,
    "PQL": ALICE,
    "P0": ALICE,
    "P1": DAVE,
    "P2": DAVE,
    "P3": CAROL,
    "P4": CAROL,
    "P5": CAROL,
    "CHURNED": CAROL,
}


# ---------------------------------------------------------------- helpers


def add(core: Lifecycle, name: str, stage: str | None = None, actor: Actor = ADMIN, **kw: Any) -> Outcome:
    return core.execute(c.AddAccount(actor=actor, key=new_key(), name=name, stage=stage, **kw))


def put_in(core: Lifecycle, name: str, stage: str) -> AccountView:
    """An account sitting in `stage`: created there, or (for a terminal stage) walked there."""
    if DEFAULT.stage(stage).terminal:
        add(core, name, "CHURNED")
        out = core.execute(c.Archive(actor=ADMIN, key=new_key(), account=name))
        assert out.account.stage == stage
        return out.account
    return add(core, name, stage).account


def move(
    core: Lifecycle,
    account: str,
    target: str,
    actor: Actor = ADMIN,
    *,
    reason: str = "",
    key: str | None = None,
    expected_version: int | None = None,
    via: str = "",
) -> Outcome:
    return core.execute(
        c.MoveStage(
            actor=actor,
            key=key or new_key(),
            account=account,
            target=target,
            reason=reason,
            expected_version=expected_version,
            via=via,
        )
    )


def decide(core: Lifecycle, approval_id: int, actor: Actor, approve: bool = True, note: str = "") -> Outcome:
    return core.execute(
        c.DecideApproval(actor=actor, key=new_key(), approval_id=approval_id, approve=approve, note=note)
    )


def history(core: Lifecycle, account: str) -> tuple[HistoryLine, ...]:
    h = core.ask(c.ShowHistory(actor=ADMIN, account=account))
    assert isinstance(h, History)
    return h.lines


def card(core: Lifecycle, account: str) -> AccountCard:
    got = core.ask(c.ShowAccount(actor=ADMIN, account=account))
    assert isinstance(got, AccountCard)
    return got


def stage_of(core: Lifecycle, account: str) -> str:
    return card(core, account).account.stage


def count(db: Database, model: Any, *where: Any) -> int:
    with db.reader() as uow:
        return int(uow.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def outbox_kinds(db: Database, account_id: int) -> list[str]:
    with db.reader() as uow:
        return list(
            uow.session.execute(
                select(OutboxRow.kind).where(OutboxRow.account_id == account_id).order_by(OutboxRow.id)
            ).scalars()
        )


def approval_status(db: Database, approval_id: int) -> str:
    with db.reader() as uow:
        return str(uow.session.execute(select(Approval.status).where(Approval.id == approval_id)).scalar_one())


@dataclass
class Snapshot:
    """What a refused command must leave untouched."""

    stage: str
    version: int
    history: int
    outbox: int
    keys: int


def snapshot(core: Lifecycle, account: str) -> Snapshot:
    cd = card(core, account)
    return Snapshot(
        cd.account.stage,
        cd.account.version,
        count(core.db, StageChange),
        count(core.db, OutboxRow),
        count(core.db, ProcessedCommand),
    )


@dataclass
class Race:
    """Run callables in threads that start together; collect every result or exception."""

    results: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def run(self, *fns: Callable[[], Any], timeout: float = 60) -> Race:
        barrier = threading.Barrier(len(fns))
        lock = threading.Lock()

        def worker(fn: Callable[[], Any]) -> None:
            try:
                barrier.wait(timeout=timeout)
                r = fn()
            except BaseException as exc:
                with lock:
                    self.errors.append(exc)
            else:
                with lock:
                    self.results.append(r)

        threads = [threading.Thread(target=worker, args=(fn,)) for fn in fns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in threads), "a racing thread did not finish"
        return self


# ---------------------------------------------------------------- every edge of the flowchart


@pytest.mark.parametrize(("source", "target"), ALLOWED_EDGES, ids=[f"{s}->{t}" for s, t in ALLOWED_EDGES])
def test_every_allowed_edge_moves_and_records_history(
    core: Lifecycle, clock: FixedClock, source: str, target: str
) -> None:
    acc = put_in(core, "Acme", source)
    before = history(core, "Acme")
    outbox_before = count(core.db, OutboxRow)
    clock.advance(hours=3)
    actor = MOVER[source]
    reason = f"because {source} is done"

    out = move(core, "Acme", target, actor, reason=reason, via="feishu")

    if (source, target) == ("PQL", "P0"):
        assert out.kind == "approval_requested"
        assert out.approval_id is not None and out.approval_team == "sales"
        assert stage_of(core, "Acme") == "PQL"
        assert history(core, "Acme") == before
        clock.advance(minutes=5)
        out = decide(core, out.approval_id, BOB, note="validated")
        assert out.kind == "approved"
        assert out.decided_by == BOB.ref
        actor, reason, via = BOB, f"approval #{out.approval_id} approved: validated", BOB.platform
    else:
        via = "feishu"
        assert out.kind == "moved"
        assert out.from_stage == source

    assert out.to_stage == target
    assert out.account.stage == target
    assert out.account.version > acc.version
    assert out.replayed is False
    assert stage_of(core, "Acme") == target
    assert card(core, "Acme").account.stage_entered_at == clock.now()

    after = history(core, "Acme")
    assert after[: len(before)] == before  # history is only ever appended to
    assert len(after) == len(before) + 1
    line = after[-1]
    assert (line.from_stage, line.to_stage) == (source, target)
    assert line.actor == actor.ref
    assert line.reason == reason
    assert line.via == via
    assert line.at == clock.now()
    assert line.kind == DEFAULT.transition(source, target).kind  # type: ignore[union-attr]

    # Exactly one StageChanged for this move, with the same facts.
    assert count(core.db, OutboxRow) > outbox_before
    with core.db.reader() as uow:
        payloads = uow.session.execute(
            select(OutboxRow.payload).where(OutboxRow.kind == "StageChanged", OutboxRow.account_id == acc.id)
        ).scalars()
        changes = [load_event(p) for p in payloads]
    assert len(changes) == 1
    ev = changes[-1]
    assert (ev.from_stage, ev.to_stage, ev.actor) == (source, target, actor.ref)  # type: ignore[union-attr]


@pytest.mark.parametrize("source", STAGES)
def test_every_disallowed_move_is_refused_with_the_allowed_next_stages(core: Lifecycle, source: str) -> None:
    put_in(core, "Acme", source)
    allowed = allowed_next(DEFAULT, source)
    for target in STAGES:
        if target in allowed:
            continue
        before = snapshot(core, "Acme")
        hist = history(core, "Acme")
        with pytest.raises(LifecycleError) as info:
            move(core, "Acme", target, reason="try it")
        err = info.value
        if target == source:
            assert isinstance(err, AlreadyInStage)
        else:
            assert isinstance(err, TransitionRefused), (source, target, err)
            assert err.allowed == allowed
            for nxt in allowed:
                assert DEFAULT.stage(nxt).title("en") in err.text("en"), (source, target)
            if not allowed:
                assert "final" in err.text("en")
        assert snapshot(core, "Acme") == before, (source, target)
        assert history(core, "Acme") == hist


def test_a_stage_can_be_named_by_its_labels_when_moving(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    assert move(core, "Acme", "测试发送").to_stage == "P2"
    assert move(core, "acme", "go-live").to_stage == "P3"
    assert move(core, "ACME", "P4:稳定发送").to_stage == "P4"


def test_a_whole_life_from_mql_to_archived(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme")
    path = [
        ("SQL", MARY),
        ("PQL", ALICE),
        ("P0", ALICE),  # needs approval
        ("P1", ALICE),
        ("P2", DAVE),
        ("P3", DAVE),
        ("P4", CAROL),
        ("P5", CAROL),
        ("CHURNED", CAROL),
        ("PQL", CAROL),
        ("SQL", ALICE),
        ("P0", ALICE),
        ("CHURNED", ALICE),
        ("ARCHIVED", CAROL),
    ]
    for target, actor in path:
        clock.advance(days=1)
        out = move(core, "Acme", target, actor)
        if out.kind == "approval_requested":
            assert out.approval_id is not None
            out = decide(core, out.approval_id, BOB)
        assert out.account.stage == target
    lines = history(core, "Acme")
    assert [(x.from_stage, x.to_stage) for x in lines] == [(None, "MQL")] + [
        (a, b) for a, b in zip(["MQL"] + [t for t, _ in path], [t for t, _ in path], strict=False)
    ]
    assert [x.at for x in lines] == sorted(x.at for x in lines)


# ---------------------------------------------------------------- approvals


def request_approval(core: Lifecycle, name: str = "Acme") -> int:
    add(core, name, "PQL")
    out = move(core, name, "P0", ALICE, reason="test email sent")
    assert out.kind == "approval_requested"
    assert out.to_stage == "P0" and out.from_stage == "PQL"
    assert out.approval_id is not None
    return out.approval_id


def test_approval_request_changes_no_stage_and_announces_itself(core: Lifecycle) -> None:
    before = count(core.db, StageChange)
    aid = request_approval(core)
    assert stage_of(core, "Acme") == "PQL"
    assert count(core.db, StageChange) == before + 1  # only the creation row
    pending = core.ask(c.ListApprovals(actor=ADMIN))
    assert [(a.id, a.status, a.requested_by, a.team) for a in pending.approvals] == [  # type: ignore[union-attr]
        (aid, "pending", ALICE.ref, "sales")
    ]
    assert card(core, "Acme").pending_approval is not None
    acc_id = card(core, "Acme").account.id
    assert outbox_kinds(core.db, acc_id) == ["AccountAdded", "ApprovalRequested"]


def test_only_approvers_decide_and_a_refusal_changes_nothing(core: Lifecycle) -> None:
    aid = request_approval(core)
    before = snapshot(core, "Acme")
    for who in (EVE, CAROL, ALICE, MARY, DAVE):  # ALICE is in sales but is not an approver
        for approve in (True, False):
            with pytest.raises(NotAuthorized) as info:
                decide(core, aid, who, approve)
            assert "Sales approvers" in info.value.text("en")
            assert snapshot(core, "Acme") == before, who
            assert approval_status(core.db, aid) == "pending"


def test_bob_approves_the_account_enters_p0_and_cs_gets_a_handoff(core: Lifecycle) -> None:
    aid = request_approval(core)
    out = decide(core, aid, BOB)
    assert out.kind == "approved" and out.to_stage == "P0" and out.decided_by == BOB.ref
    assert stage_of(core, "Acme") == "P0"
    assert approval_status(core.db, aid) == "approved"
    handoffs = card(core, "Acme").open_handoffs
    assert [h.to_team for h in handoffs] == ["cs"]
    assert out.handoff_ids == tuple(h.id for h in handoffs)
    kinds = outbox_kinds(core.db, out.account.id)
    assert kinds[-3:] == ["StageChanged", "HandoffOpened", "ApprovalDecided"]

    # A second decision, by anyone, is answered with the first.
    for who, approve in ((BOB, True), (ADMIN, False), (BOB, False)):
        before = snapshot(core, "Acme")
        with pytest.raises(AlreadyDecided) as info:
            decide(core, aid, who, approve)
        assert info.value.decided_by == BOB.ref
        assert BOB.ref in info.value.text("en") and "approved" in info.value.text("en")
        assert BOB.ref in info.value.text("zh")
        assert isinstance(info.value, Conflict)
        assert snapshot(core, "Acme") == before


def test_reject_sends_the_account_back_to_sql(core: Lifecycle) -> None:
    aid = request_approval(core)
    out = decide(core, aid, BOB, approve=False, note="bounces everywhere")
    assert out.kind == "rejected"
    assert out.to_stage == "SQL"
    assert stage_of(core, "Acme") == "SQL"
    assert approval_status(core.db, aid) == "rejected"
    line = history(core, "Acme")[-1]
    assert (line.from_stage, line.to_stage, line.kind, line.actor) == ("PQL", "SQL", "back", BOB.ref)
    assert "bounces everywhere" in line.reason
    assert card(core, "Acme").open_handoffs == ()
    with pytest.raises(AlreadyDecided) as info:
        decide(core, aid, ADMIN)
    assert "rejected" in info.value.text("en")


def test_admin_may_decide_an_approval(core: Lifecycle) -> None:
    aid = request_approval(core)
    assert decide(core, aid, ADMIN).kind == "approved"


def test_a_second_request_while_one_is_pending_is_a_conflict_naming_it(core: Lifecycle) -> None:
    aid = request_approval(core)
    before = snapshot(core, "Acme")
    with pytest.raises(Conflict) as info:
        move(core, "Acme", "P0", BOB)
    assert f"#{aid}" in info.value.text("en") and ALICE.ref in info.value.text("en")
    assert snapshot(core, "Acme") == before


def test_moving_back_to_sql_withdraws_the_pending_approval(core: Lifecycle) -> None:
    aid = request_approval(core)
    out = move(core, "Acme", "SQL", ALICE, reason="validation failed")
    assert out.kind == "moved"
    assert approval_status(core.db, aid) == "cancelled"
    assert card(core, "Acme").pending_approval is None
    before = snapshot(core, "Acme")
    with pytest.raises(AlreadyDecided) as info:
        decide(core, aid, BOB)
    assert "withdrawn" in info.value.text("en")
    assert snapshot(core, "Acme") == before
    assert stage_of(core, "Acme") == "SQL"


def test_unknown_approval_is_not_found(core: Lifecycle) -> None:
    with pytest.raises(NotFound) as info:
        decide(core, 424242, BOB)
    assert "#424242" in info.value.text("en")


def test_two_approvers_racing_only_one_decision_counts(core: Lifecycle) -> None:
    for n in range(10):
        aid = request_approval(core, f"Race {n}")
        race = Race().run(lambda aid=aid: decide(core, aid, BOB, True), lambda aid=aid: decide(core, aid, ADMIN, False))
        assert len(race.results) == 1, race.errors
        assert len(race.errors) == 1
        assert isinstance(race.errors[0], AlreadyDecided), repr(race.errors[0])
        won = race.results[0]
        assert stage_of(core, f"Race {n}") == ("P0" if won.kind == "approved" else "SQL")
        assert len(history(core, f"Race {n}")) == 2


def test_two_people_requesting_the_same_approval_at_once(core: Lifecycle) -> None:
    for n in range(10):
        name = f"Ask {n}"
        acc = add(core, name, "PQL").account
        race = Race().run(
            lambda name=name: move(core, name, "P0", ALICE), lambda name=name: move(core, name, "P0", BOB)
        )
        assert len(race.results) == 1, [repr(e) for e in race.errors]
        assert isinstance(race.errors[0], Conflict), repr(race.errors[0])
        assert "waiting for approval" in race.errors[0].text("en")
        assert count(core.db, Approval, Approval.account_id == acc.id) == 1


# ---------------------------------------------------------------- permissions


def test_marketing_cannot_move_a_sales_account(core: Lifecycle) -> None:
    add(core, "Acme", "SQL")
    before = snapshot(core, "Acme")
    with pytest.raises(NotAuthorized) as info:
        move(core, "Acme", "PQL", MARY)
    assert "Sales" in info.value.text("en") and "SQL" in info.value.text("en")
    assert snapshot(core, "Acme") == before


def test_someone_in_no_team_is_told_their_ref(core: Lifecycle) -> None:
    add(core, "Acme", "SQL")
    before = snapshot(core, "Acme")
    for cmd in (
        c.MoveStage(actor=EVE, key=new_key(), account="Acme", target="PQL"),
        c.AddAccount(actor=EVE, key=new_key(), name="Eve's"),
        c.TickChecklist(actor=EVE, key=new_key(), account="Acme", item="1"),
        c.AssignOwner(actor=EVE, key=new_key(), account="Acme", owner=EVE.ref),
    ):
        with pytest.raises(NotAuthorized) as info:
            core.execute(cmd)
        assert EVE.ref in info.value.text("en"), type(cmd).__name__
        assert EVE.ref in info.value.text("zh")
    assert snapshot(core, "Acme") == before


def test_admin_can_do_anything(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    assert core.execute(c.TickChecklist(actor=ADMIN, key=new_key(), account="Acme", item="1")).kind == "ticked"
    assert core.execute(c.AssignOwner(actor=ADMIN, key=new_key(), account="Acme", owner=DAVE.ref)).kind == "assigned"
    for target in ("P2", "P3", "P4", "P5"):
        move(core, "Acme", target, ADMIN)
    renew = c.RecordRenewal(actor=ADMIN, key=new_key(), account="Acme", amount=Decimal(10), until=date(2027, 1, 1))
    assert core.execute(renew).kind == "renewed"
    assert core.execute(c.Churn(actor=ADMIN, key=new_key(), account="Acme")).account.stage == "CHURNED"
    assert core.execute(c.WinBack(actor=ADMIN, key=new_key(), account="Acme")).account.stage == "PQL"


def test_adding_outside_the_first_stage_needs_the_owner_team(core: Lifecycle) -> None:
    assert add(core, "Mine", actor=MARY).account.stage == "MQL"
    with pytest.raises(NotAuthorized):
        add(core, "Not mine", "P3", actor=MARY)
    assert add(core, "Sales deal", "SQL", actor=ALICE).account.stage == "SQL"


# ---------------------------------------------------------------- idempotency


def test_the_same_key_ten_times_applies_once(core: Lifecycle) -> None:
    acc = add(core, "Acme", "P1").account
    hist0, outbox0 = count(core.db, StageChange), count(core.db, OutboxRow)
    key = new_key()
    outs = [move(core, "Acme", "P2", DAVE, key=key, reason="first test sent") for _ in range(10)]
    assert outs[0].replayed is False
    assert all(o.replayed for o in outs[1:])
    for o in outs[1:]:
        assert o.model_copy(update={"replayed": False}) == outs[0]
    assert count(core.db, StageChange) == hist0 + 1
    assert count(core.db, OutboxRow) == outbox0 + 1
    assert count(core.db, StageChange, StageChange.account_id == acc.id, StageChange.to_stage == "P2") == 1
    assert stage_of(core, "Acme") == "P2"


def test_a_replayed_key_returns_the_first_outcome_even_when_it_would_now_be_refused(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    key = new_key()
    assert move(core, "Acme", "P2", key=key).replayed is False
    move(core, "Acme", "P3")
    again = move(core, "Acme", "P2", key=key)
    assert again.replayed and again.to_stage == "P2"
    assert stage_of(core, "Acme") == "P3"


def test_a_refused_command_does_not_burn_its_key(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    key = new_key()
    with pytest.raises(NotAuthorized):
        move(core, "Acme", "P2", MARY, key=key)
    assert count(core.db, ProcessedCommand, ProcessedCommand.key == key) == 0


def test_ten_threads_delivering_the_same_key_apply_it_once(core: Lifecycle) -> None:
    for n in range(5):
        name = f"Acme {n}"
        acc = add(core, name, "P1").account
        hist0 = count(core.db, StageChange)
        key = new_key()
        race = Race().run(*[lambda name=name, key=key: move(core, name, "P2", DAVE, key=key) for _ in range(10)])
        applied = [o for o in race.results if not o.replayed]
        assert len(applied) == 1, (race.results, race.errors)
        assert all(isinstance(e, Conflict) for e in race.errors), [repr(e) for e in race.errors]
        assert count(core.db, StageChange) == hist0 + 1
        assert count(core.db, StageChange, StageChange.account_id == acc.id, StageChange.to_stage == "P2") == 1
        assert count(core.db, ProcessedCommand, ProcessedCommand.key == key) == 1
        assert stage_of(core, name) == "P2"


def test_ten_threads_delivering_the_same_key_all_get_the_first_outcome(core: Lifecycle) -> None:
    """A re-delivery is answered with the outcome of the first (`replayed`), also when it arrives
    while the first is still being applied: it is the same request, not a competing one."""
    for n in range(5):
        name = f"Acme {n}"
        add(core, name, "P1")
        key = new_key()
        race = Race().run(*[lambda name=name, key=key: move(core, name, "P2", DAVE, key=key) for _ in range(10)])
        assert race.errors == [], [repr(e) for e in race.errors]
        assert sorted(o.replayed for o in race.results) == [False] + [True] * 9


def test_ten_threads_delivering_the_same_checklist_tick(core: Lifecycle) -> None:
    for n in range(5):
        name = f"Acme {n}"
        add(core, name, "P1")
        key = new_key()
        tick = c.TickChecklist(actor=CAROL, key=key, account=name, item="1")
        race = Race().run(*[lambda tick=tick: core.execute(tick) for _ in range(10)])
        # Never a raw database error; one tick applied.
        assert all(isinstance(e, LifecycleError) for e in race.errors), [repr(e) for e in race.errors]
        assert len([o for o in race.results if not o.replayed]) == 1
        assert count(core.db, ChecklistTick, ChecklistTick.item == "kickoff") == n + 1


def test_ten_threads_redelivering_a_tick_that_changes_nothing(core: Lifecycle) -> None:
    """The body writes nothing (the item is already ticked), so the only thing the deliveries race on
    is the idempotency key itself: every one must get an answer, never a raw database error."""
    for n in range(5):
        name = f"Acme {n}"
        add(core, name, "P1")
        tick(core, name, "1")
        redelivered = c.TickChecklist(actor=CAROL, key=new_key(), account=name, item="1")
        race = Race().run(*[lambda cmd=redelivered: core.execute(cmd) for _ in range(10)])
        assert race.errors == [], [repr(e) for e in race.errors]
        assert sorted(o.replayed for o in race.results) == [False] + [True] * 9
        assert all(o.kind == "already_ticked" for o in race.results)


def test_two_people_ticking_the_same_item_at_once(core: Lifecycle) -> None:
    for n in range(10):
        name = f"Acme {n}"
        add(core, name, "P1")
        race = Race().run(lambda name=name: tick(core, name, "1", CAROL), lambda name=name: tick(core, name, "1", DAVE))
        assert all(isinstance(e, LifecycleError) for e in race.errors), [repr(e) for e in race.errors]
        assert [o.kind for o in race.results if o.kind == "ticked"] == ["ticked"]
        assert count(core.db, ChecklistTick, ChecklistTick.item == "kickoff") == n + 1


def test_every_command_without_a_key_is_refused(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    with pytest.raises(InvalidInput):
        core.execute(c.MoveStage(actor=ADMIN, key="", account="Acme", target="P2"))


# ---------------------------------------------------------------- concurrency


def assert_lost_race_message(err: BaseException, name: str) -> None:
    """The loser hears that the account already moved (or was moved under it), and where it is now."""
    assert isinstance(err, Conflict), repr(err)
    msg = err.text("en")
    assert name in msg and "P2" in msg, msg


def test_two_people_moving_the_same_account_at_once(core: Lifecycle) -> None:
    for n in range(20):
        name = f"Race {n}"
        acc = add(core, name, "P1").account
        race = Race().run(
            lambda name=name: move(core, name, "P2", DAVE), lambda name=name: move(core, name, "P2", CAROL)
        )
        assert len(race.results) == 1, (n, race.results, [repr(e) for e in race.errors])
        assert len(race.errors) == 1
        assert_lost_race_message(race.errors[0], name)
        assert count(core.db, StageChange, StageChange.account_id == acc.id, StageChange.to_stage == "P2") == 1
        assert card(core, name).account.version == acc.version + 1


def test_racing_moves_to_different_stages_never_lose_an_update(core: Lifecycle) -> None:
    """P1 -> P2 and P1 -> CHURNED at once: run one after the other both may succeed (P2 -> CHURNED is
    allowed too), but history must stay one chain and the account must be where its last row says."""
    for n in range(10):
        name = f"Fork {n}"
        acc = add(core, name, "P1").account
        race = Race().run(
            lambda name=name: move(core, name, "P2", DAVE), lambda name=name: move(core, name, "CHURNED", CAROL)
        )
        assert len(race.results) + len(race.errors) == 2
        assert race.results, [repr(e) for e in race.errors]
        assert all(isinstance(e, Conflict | TransitionRefused) for e in race.errors), [repr(e) for e in race.errors]
        lines = history(core, name)
        assert len(lines) == 1 + len(race.results)
        for prev, nxt in itertools.pairwise(lines):
            assert nxt.from_stage == prev.to_stage
        assert stage_of(core, name) == lines[-1].to_stage
        assert card(core, name).account.version == acc.version + len(race.results)


def test_expected_version_loses_to_a_move_made_since(core: Lifecycle) -> None:
    shown = add(core, "Acme", "P1").account
    move(core, "Acme", "P2")
    before = snapshot(core, "Acme")
    with pytest.raises(Conflict) as info:
        move(core, "Acme", "P3", expected_version=shown.version)
    assert "Acme" in info.value.text("en") and "P2" in info.value.text("en")
    assert snapshot(core, "Acme") == before
    # With the right version it goes through.
    assert move(core, "Acme", "P3", expected_version=before.version).to_stage == "P3"


def test_two_button_presses_on_the_same_card_race_with_expected_version(core: Lifecycle) -> None:
    for n in range(10):
        name = f"Card {n}"
        shown = add(core, name, "P1").account
        race = Race().run(
            lambda name=name, v=shown.version: move(core, name, "P2", DAVE, expected_version=v),
            lambda name=name, v=shown.version: move(core, name, "CHURNED", CAROL, expected_version=v),
        )
        assert len(race.results) == 1, (n, [repr(e) for e in race.errors])
        assert len(race.errors) == 1
        assert isinstance(race.errors[0], Conflict), repr(race.errors[0])
        assert name in race.errors[0].text("en")
        assert stage_of(core, name) == race.results[0].to_stage
        assert count(core.db, StageChange, StageChange.account_id == shown.id) == 2


def _second_engine(db: Database) -> Database:
    """Another engine (its own connection pool) on the same PostgreSQL schema: a second process."""
    with db.engine.connect() as conn:
        schema = conn.execute(text("select current_schema()")).scalar_one()
    return Database(make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_size=2))


@pytest.fixture
def pg_pair(pg_database: Database, rules: Rules, clock: FixedClock) -> Iterator[tuple[Lifecycle, Lifecycle]]:
    other = _second_engine(pg_database)
    try:
        yield Lifecycle(pg_database, rules, clock), Lifecycle(other, rules, clock)
    finally:
        other.dispose()


def test_postgresql_two_processes_racing_one_move(pg_pair: tuple[Lifecycle, Lifecycle]) -> None:
    one, two = pg_pair
    assert one.db.dialect == two.db.dialect == "postgresql"
    for n in range(20):
        name = f"PG {n}"
        acc = add(one, name, "P1").account
        race = Race().run(lambda name=name: move(one, name, "P2", DAVE), lambda name=name: move(two, name, "P2", CAROL))
        assert len(race.results) == 1, (n, [repr(e) for e in race.errors])
        assert len(race.errors) == 1
        assert_lost_race_message(race.errors[0], name)
        assert count(one.db, StageChange, StageChange.account_id == acc.id, StageChange.to_stage == "P2") == 1
        assert card(two, name).account.stage == "P2"
        assert card(two, name).account.version == acc.version + 1


def test_postgresql_two_processes_racing_the_same_key(pg_pair: tuple[Lifecycle, Lifecycle]) -> None:
    one, two = pg_pair
    for n in range(10):
        name = f"PG {n}"
        acc = add(one, name, "P1").account
        key = new_key()
        race = Race().run(
            lambda name=name, key=key: move(one, name, "P2", DAVE, key=key),
            lambda name=name, key=key: move(two, name, "P2", DAVE, key=key),
        )
        applied = [o for o in race.results if not o.replayed]
        assert len(applied) == 1, (n, race.results, [repr(e) for e in race.errors])
        assert all(isinstance(e, Conflict) for e in race.errors), [repr(e) for e in race.errors]
        assert count(one.db, StageChange, StageChange.account_id == acc.id, StageChange.to_stage == "P2") == 1


def test_postgresql_two_processes_adding_the_same_name(pg_pair: tuple[Lifecycle, Lifecycle]) -> None:
    one, two = pg_pair
    for n in range(10):
        name = f"New {n}"
        race = Race().run(lambda name=name: add(one, name), lambda name=name: add(two, name.upper()))
        assert len(race.results) == 1, [repr(e) for e in race.errors]
        assert isinstance(race.errors[0], Conflict), repr(race.errors[0])
    assert count(one.db, StageChange) == 10


# ---------------------------------------------------------------- checklists


def tick(core: Lifecycle, account: str, item: str, actor: Actor = CAROL) -> Outcome:
    return core.execute(c.TickChecklist(actor=actor, key=new_key(), account=account, item=item))


def test_tick_by_number_key_and_text(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    out = tick(core, "Acme", "1")
    assert (out.kind, out.item) == ("ticked", "kickoff")
    out = tick(core, "Acme", "configuring smtp")  # part of the en label
    assert (out.kind, out.item) == ("ticked", "api_started")
    lines = card(core, "Acme").checklist
    assert [(x.key, x.done, x.by) for x in lines] == [("kickoff", True, CAROL.ref), ("api_started", True, CAROL.ref)]

    add(core, "Globex", "P2")
    assert tick(core, "Globex", "domain_auth", DAVE).item == "domain_auth"
    assert tick(core, "Globex", "已成功发送第一封测试邮件", DAVE).item == "first_test"


def test_tick_twice_answers_already_ticked_and_writes_nothing(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    tick(core, "Acme", "1")
    outbox = count(core.db, OutboxRow)
    out = tick(core, "Acme", "kickoff")
    assert out.kind == "already_ticked" and out.item == "kickoff"
    assert count(core.db, OutboxRow) == outbox
    assert count(core.db, ChecklistTick) == 1


def test_unknown_or_ambiguous_item_lists_the_items(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    for item in ("3", "0", "nonsense", "a"):  # "a" is in both labels
        with pytest.raises(NotFound) as info:
            tick(core, "Acme", item)
        msg = info.value.text("en")
        assert f'"{item}"' in msg
        assert "1. Kick-off held, contacts named on both sides" in msg
        assert "2. Customer has started calling the API or configuring SMTP" in msg
        assert "1. 已安排启动会" in info.value.text("zh")
    assert count(core.db, ChecklistTick) == 0


def test_ticks_belong_to_the_stage(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    tick(core, "Acme", "1")
    move(core, "Acme", "P2")
    assert [x.done for x in card(core, "Acme").checklist] == [False, False]


def test_non_owner_cannot_tick(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    with pytest.raises(NotAuthorized):
        tick(core, "Acme", "1", MARY)
    assert count(core.db, ChecklistTick) == 0


def test_a_required_checklist_blocks_leaving_until_ticked(database: Database, clock: FixedClock) -> None:
    data = DEFAULT.model_dump(by_alias=True)
    for st in data["stages"]:
        if st["key"] == "P1":
            st["require_checklist"] = True
    strict: Pipeline = from_mapping(data)
    core = Lifecycle(database, Rules(strict, ROSTER), clock)
    add(core, "Acme", "P1")
    tick(core, "Acme", "1")
    with pytest.raises(ChecklistIncomplete) as info:
        move(core, "Acme", "P2", DAVE)
    assert info.value.missing == ["api_started"]
    tick(core, "Acme", "2")
    assert move(core, "Acme", "P2", DAVE).to_stage == "P2"


# ---------------------------------------------------------------- owner


def test_assign_owner(core: Lifecycle) -> None:
    acc = add(core, "Acme", "SQL").account
    out = core.execute(c.AssignOwner(actor=ALICE, key=new_key(), account="Acme", owner=ALICE.ref))
    assert out.kind == "assigned"
    assert out.account.owner == ALICE.ref
    assert out.account.version == acc.version + 1
    assert card(core, "Acme").account.owner == ALICE.ref
    assert outbox_kinds(core.db, acc.id)[-1] == "OwnerAssigned"
    mine = core.ask(c.ListAccounts(actor=ALICE, mine=True))
    assert mine.total == 1  # type: ignore[union-attr]


def test_assign_owner_refusals(core: Lifecycle) -> None:
    add(core, "Acme", "SQL")
    before = snapshot(core, "Acme")
    with pytest.raises(NotAuthorized):
        core.execute(c.AssignOwner(actor=CAROL, key=new_key(), account="Acme", owner=CAROL.ref))
    for bad in ("", "two words", "x" * 121):
        with pytest.raises(InvalidInput):
            core.execute(c.AssignOwner(actor=ALICE, key=new_key(), account="Acme", owner=bad))
    assert snapshot(core, "Acme") == before


# ---------------------------------------------------------------- renewals


def renew(core: Lifecycle, account: str, amount: str, until: date, actor: Actor = CAROL) -> Outcome:
    return core.execute(
        c.RecordRenewal(actor=actor, key=new_key(), account=account, amount=Decimal(amount), until=until)
    )


def test_renewal_and_expansion_on_a_mature_account(core: Lifecycle) -> None:
    acc = add(core, "Acme", "P5", amount=Decimal(1000)).account
    out = renew(core, "Acme", "1500", date(2027, 3, 1))
    assert (out.kind, out.renewal) == ("renewed", "expansion")
    assert out.account.amount == Decimal(1500) and out.account.contract_end == date(2027, 3, 1)
    out = renew(core, "Acme", "1500", date(2028, 3, 1), ALICE)
    assert out.renewal == "renewal"
    out = renew(core, "Acme", "900", date(2029, 3, 1))
    assert out.renewal == "renewal"
    shown = card(core, "Acme").account
    assert shown.stage == "P5"
    assert shown.amount == Decimal(900) and shown.contract_end == date(2029, 3, 1)
    assert len(history(core, "Acme")) == 1  # renewals are events, not stage changes
    assert outbox_kinds(core.db, acc.id).count("RenewalRecorded") == 3


def test_renewal_without_a_previous_amount_is_a_renewal(core: Lifecycle) -> None:
    add(core, "Acme", "P5")
    assert renew(core, "Acme", "10", date(2027, 1, 1)).renewal == "renewal"


def test_renewal_only_in_p5(core: Lifecycle) -> None:
    for stage in STAGES:
        name = f"Acme {stage}"
        put_in(core, name, stage)
        if stage == "P5":
            continue
        before = snapshot(core, name)
        with pytest.raises(TransitionRefused) as info:
            renew(core, name, "100", date(2027, 1, 1), ADMIN)
        assert "P5" in info.value.text("en") and "P5" in info.value.text("zh"), stage
        assert stage in info.value.text("en")
        assert snapshot(core, name) == before
    assert renew(core, "Acme P5", "100", date(2027, 1, 1), ADMIN).kind == "renewed"


def test_renewal_amount_must_be_positive(core: Lifecycle) -> None:
    add(core, "Acme", "P5")
    before = snapshot(core, "Acme")
    for amount in ("0", "-5", "-0.01"):
        with pytest.raises(InvalidInput) as info:
            renew(core, "Acme", amount, date(2027, 1, 1))
        assert "positive" in info.value.text("en")
        assert snapshot(core, "Acme") == before
    assert renew(core, "Acme", "0.01", date(2027, 1, 1)).kind == "renewed"


def test_renewal_date_must_be_in_the_future(core: Lifecycle) -> None:
    add(core, "Acme", "P5")
    before = snapshot(core, "Acme")
    for days in (0, -1, -400):
        until = T0.date() + timedelta(days=days)
        with pytest.raises(InvalidInput) as info:
            renew(core, "Acme", "100", until)
        assert str(until) in info.value.text("en")
        assert snapshot(core, "Acme") == before
    assert renew(core, "Acme", "100", T0.date() + timedelta(days=1)).kind == "renewed"


def test_renewal_needs_the_owner_team(core: Lifecycle) -> None:
    add(core, "Acme", "P5")
    for who in (MARY, DAVE):
        with pytest.raises(NotAuthorized):
            renew(core, "Acme", "100", date(2027, 1, 1), who)


# ---------------------------------------------------------------- churn, win back, archive


def test_churn_win_back_and_archive(core: Lifecycle, clock: FixedClock) -> None:
    add(core, "Acme", "P3")
    out = core.execute(c.Churn(actor=CAROL, key=new_key(), account="Acme", reason="volume at zero"))
    assert (out.kind, out.from_stage, out.to_stage) == ("moved", "P3", "CHURNED")
    out = core.execute(c.WinBack(actor=ALICE, key=new_key(), account="Acme", reason="new budget"))
    assert (out.from_stage, out.to_stage) == ("CHURNED", "PQL")
    move(core, "Acme", "SQL", ALICE)
    move(core, "Acme", "P0", ALICE)
    core.execute(c.Churn(actor=ALICE, key=new_key(), account="Acme"))
    out = core.execute(c.Archive(actor=CAROL, key=new_key(), account="Acme"))
    assert out.to_stage == "ARCHIVED"
    kinds = [(x.to_stage, x.kind) for x in history(core, "Acme")]
    assert kinds == [
        ("P3", "create"),
        ("CHURNED", "churn"),
        ("PQL", "winback"),
        ("SQL", "back"),
        ("P0", "advance"),
        ("CHURNED", "churn"),
        ("ARCHIVED", "archive"),
    ]
    assert history(core, "Acme")[1].reason == "volume at zero"


def test_churn_win_back_archive_from_the_wrong_stage(core: Lifecycle) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("SQL", c.Churn, "P0, P1, P2, P3, P4, P5"),
        ("MQL", c.Churn, "P0, P1, P2, P3, P4, P5"),
        ("PQL", c.Churn, "P0, P1, P2, P3, P4, P5"),
        ("P5", c.WinBack, "CHURNED"),
        ("P2", c.Archive, "CHURNED"),
    ]
    for stage, cmd, valid_from in cases:
        name = f"Acme {stage} {cmd.__name__}"
        add(core, name, stage)
        before = snapshot(core, name)
        with pytest.raises(TransitionRefused) as info:
            core.execute(cmd(actor=ADMIN, key=new_key(), account=name))
        assert valid_from in info.value.text("en"), (stage, cmd)
        assert info.value.allowed == allowed_next(DEFAULT, stage)
        assert snapshot(core, name) == before


def test_churn_needs_the_owner_team(core: Lifecycle) -> None:
    add(core, "Acme", "P3")
    with pytest.raises(NotAuthorized):
        core.execute(c.Churn(actor=DAVE, key=new_key(), account="Acme"))


def test_nothing_leaves_archived(core: Lifecycle) -> None:
    put_in(core, "Acme", "ARCHIVED")
    for cmd in (c.Churn, c.WinBack, c.Archive):
        with pytest.raises(TransitionRefused):
            core.execute(cmd(actor=ADMIN, key=new_key(), account="Acme"))
    with pytest.raises(InvalidInput):
        add(core, "Other", "ARCHIVED")


# ---------------------------------------------------------------- handoffs


def signed(core: Lifecycle, name: str = "Acme") -> AccountView:
    add(core, name, "SQL")
    out = move(core, name, "P0", ALICE, reason="signed directly")
    assert out.handoff_ids
    return out.account


def test_entering_p0_opens_a_handoff_to_cs_that_a_cs_member_claims(core: Lifecycle) -> None:
    acc = signed(core)
    handoffs = card(core, "Acme").open_handoffs
    assert [(h.to_team, h.stage) for h in handoffs] == [("cs", "P0")]
    assert "HandoffOpened" in outbox_kinds(core.db, acc.id)
    out = core.execute(c.ClaimHandoff(actor=CAROL, key=new_key(), account="Acme"))
    assert out.kind == "claimed"
    assert out.account.owner == CAROL.ref
    assert out.handoff_ids == (handoffs[0].id,)
    assert card(core, "Acme").account.owner == CAROL.ref
    assert card(core, "Acme").open_handoffs == ()
    assert outbox_kinds(core.db, acc.id)[-1] == "HandoffClaimed"


def test_a_second_claim_conflicts_naming_who_took_it(core: Lifecycle) -> None:
    signed(core)
    first = core.execute(c.ClaimHandoff(actor=CAROL, key=new_key(), account="Acme"))
    before = snapshot(core, "Acme")
    for who in (ADMIN, CAROL):
        with pytest.raises(Conflict) as info:
            core.execute(c.ClaimHandoff(actor=who, key=new_key(), handoff_id=first.handoff_ids[0]))
        assert CAROL.ref in info.value.text("en")
    assert snapshot(core, "Acme") == before


def test_only_the_receiving_team_claims(core: Lifecycle) -> None:
    signed(core)
    before = snapshot(core, "Acme")
    for who in (DAVE, ALICE, MARY, EVE):
        with pytest.raises(NotAuthorized) as info:
            core.execute(c.ClaimHandoff(actor=who, key=new_key(), account="Acme"))
        assert "cs" in info.value.text("en"), who
        assert snapshot(core, "Acme") == before
        assert len(card(core, "Acme").open_handoffs) == 1


def test_claim_by_handoff_id_and_unknown_handoffs(core: Lifecycle) -> None:
    acc = signed(core)
    (h,) = card(core, "Acme").open_handoffs
    assert core.execute(c.ClaimHandoff(actor=ADMIN, key=new_key(), handoff_id=h.id)).account.owner == ADMIN.ref
    with pytest.raises(NotFound):
        core.execute(c.ClaimHandoff(actor=CAROL, key=new_key(), handoff_id=h.id + 1000))
    add(core, "Quiet", "P3")
    with pytest.raises(NotFound) as info:
        core.execute(c.ClaimHandoff(actor=CAROL, key=new_key(), account="Quiet"))
    assert "no open handoff" in info.value.text("en")
    assert count(core.db, Handoff, Handoff.account_id == acc.id, Handoff.status == "claimed") == 1


def test_two_cs_members_racing_to_claim(database: Database, clock: FixedClock, pipeline: Pipeline) -> None:
    carol2 = Actor("slack", "U0CAROL2", "carol2")
    roster = Roster.build(
        members={"sales": [ALICE.ref], "cs": [CAROL.ref, carol2.ref]},
        approvers={"sales": [BOB.ref]},
        admins=[ADMIN.ref],
    )
    core = Lifecycle(database, Rules(pipeline, roster), clock)
    for n in range(10):
        name = f"Deal {n}"
        signed(core, name)
        race = Race().run(
            lambda name=name: core.execute(c.ClaimHandoff(actor=CAROL, key=new_key(), account=name)),
            lambda name=name: core.execute(c.ClaimHandoff(actor=carol2, key=new_key(), account=name)),
        )
        assert len(race.results) == 1, [repr(e) for e in race.errors]
        assert isinstance(race.errors[0], Conflict), repr(race.errors[0])
        assert card(core, name).account.owner == race.results[0].account.owner


# ---------------------------------------------------------------- lookups


@pytest.fixture
def three(core: Lifecycle) -> Lifecycle:
    add(core, "Acme Corp", external_id="crm-1")
    add(core, "Acme Labs")
    add(core, "Globex")
    return core


def test_lookup_exact_prefix_and_id(three: Lifecycle) -> None:
    assert card(three, "Globex").account.name == "Globex"
    assert card(three, "globex").account.name == "Globex"
    assert card(three, "  GLOBEX ").account.name == "Globex"
    assert card(three, "Glo").account.name == "Globex"
    assert card(three, "acme c").account.name == "Acme Corp"
    assert card(three, "Acme  Labs").account.name == "Acme Labs"
    gid = card(three, "Globex").account.id
    assert card(three, f"#{gid}").account.name == "Globex"
    assert card(three, "crm-1").account.name == "Acme Corp"


def test_lookup_exact_name_wins_over_a_longer_one(three: Lifecycle) -> None:
    add(three, "Acme")
    assert card(three, "acme").account.name == "Acme"


def test_ambiguous_prefix_lists_candidates(three: Lifecycle) -> None:
    with pytest.raises(AmbiguousAccount) as info:
        card(three, "acme")
    assert info.value.candidates == ["Acme Corp", "Acme Labs"]
    assert "Acme Corp" in info.value.text("en") and "Acme Labs" in info.value.text("en")
    assert "#ID" in info.value.text("en")
    with pytest.raises(AmbiguousAccount):
        move(three, "acme", "SQL")


def test_unknown_account_suggests_a_similar_name(three: Lifecycle) -> None:
    with pytest.raises(NotFound) as info:
        card(three, "labs")
    assert not isinstance(info.value, AmbiguousAccount)
    assert "Did you mean: Acme Labs?" in info.value.text("en")
    with pytest.raises(NotFound) as info:
        card(three, "Initech")
    assert "Did you mean" not in info.value.text("en")
    assert '"Initech"' in info.value.text("en")
    with pytest.raises(NotFound) as info:
        card(three, "#9999")
    assert "#9999" in info.value.text("en")
    with pytest.raises(InvalidInput):
        card(three, "   ")


def test_lookup_treats_like_wildcards_literally(three: Lifecycle) -> None:
    add(three, "100% Pure")
    with pytest.raises(NotFound) as info:
        card(three, "%")
    assert "Did you mean: 100% Pure?" in info.value.text("en")
    with pytest.raises(NotFound):
        card(three, "_cme")


def test_add_account_duplicate_name_is_a_conflict(core: Lifecycle) -> None:
    first = add(core, "Acme Corp", external_id="crm-1").account
    before = count(core.db, OutboxRow), count(core.db, StageChange)
    for dup in ("Acme Corp", "acme corp", "  ACME   CORP "):
        with pytest.raises(Conflict) as info:
            add(core, dup)
        assert f"#{first.id}" in info.value.text("en")
    with pytest.raises(Conflict) as info:
        add(core, "Other", external_id="crm-1")
    assert "crm-1" in info.value.text("en")
    assert (count(core.db, OutboxRow), count(core.db, StageChange)) == before


def test_add_account_rejects_bad_names(core: Lifecycle) -> None:
    for name in ("", "   ", "#12", "x" * 201):
        with pytest.raises(InvalidInput):
            add(core, name)
    assert count(core.db, StageChange) == 0
    assert add(core, "x" * 200).account.name == "x" * 200


def test_add_account_rejects_a_negative_amount_and_unknown_stage(core: Lifecycle) -> None:
    with pytest.raises(InvalidInput):
        add(core, "Acme", amount=Decimal(-1))
    with pytest.raises(UnknownStage):
        add(core, "Acme", "P9")
    assert count(core.db, StageChange) == 0


# ---------------------------------------------------------------- outbox in the same transaction


def test_a_move_writes_history_and_its_event_together(core: Lifecycle) -> None:
    acc = add(core, "Acme", "P2").account
    h0, o0 = count(core.db, StageChange), count(core.db, OutboxRow)
    move(core, "Acme", "P3", DAVE, reason="first production send")
    assert count(core.db, StageChange) == h0 + 1
    assert count(core.db, OutboxRow) == o0 + 1
    with core.db.reader() as uow:
        row = uow.session.execute(select(OutboxRow).order_by(OutboxRow.id.desc()).limit(1)).scalar_one()
        assert (row.kind, row.account_id, row.status, row.attempts, row.target) == (
            "StageChanged",
            acc.id,
            "pending",
            0,
            "console",
        )
        ev = load_event(row.payload)
    assert ev.kind == "StageChanged"
    assert ev.audience == ("cs",)
    assert ev.reason == "first production send"  # type: ignore[union-attr]


def test_a_refused_move_writes_no_event_and_no_history(core: Lifecycle) -> None:
    cases: list[tuple[str, str, Actor, type[Exception]]] = [
        ("SQL", "P3", ADMIN, TransitionRefused),
        ("SQL", "SQL", ADMIN, AlreadyInStage),
        ("SQL", "PQL", MARY, NotAuthorized),
        ("SQL", "PQL", EVE, NotAuthorized),
        ("ARCHIVED", "PQL", ADMIN, TransitionRefused),
        ("P1", "Nowhere", ADMIN, UnknownStage),
    ]
    for n, (stage, target, actor, error) in enumerate(cases):
        name = f"Acme {n}"
        put_in(core, name, stage)
        h0, o0, k0 = count(core.db, StageChange), count(core.db, OutboxRow), count(core.db, ProcessedCommand)
        with pytest.raises(error):
            move(core, name, target, actor)
        assert count(core.db, StageChange) == h0, (stage, target)
        assert count(core.db, OutboxRow) == o0, (stage, target)
        assert count(core.db, ProcessedCommand) == k0, (stage, target)


def test_an_overlong_reason_is_refused_and_writes_nothing(core: Lifecycle) -> None:
    add(core, "Acme", "P1")
    before = snapshot(core, "Acme")
    with pytest.raises(InvalidInput) as info:
        move(core, "Acme", "P2", reason="x" * 1001)
    assert "1000" in info.value.text("en")
    assert snapshot(core, "Acme") == before
    assert move(core, "Acme", "P2", reason="  spaced   out\n reason ").account.stage == "P2"
    assert history(core, "Acme")[-1].reason == "spaced out reason"


def test_a_failure_while_writing_the_event_rolls_the_move_back(
    database: Database, clock: FixedClock, pipeline: Pipeline
) -> None:
    """A delivery target of NULL makes the outbox insert violate NOT NULL after the account update
    and the history row were written in the same transaction: all of it must be rolled back."""
    good = Lifecycle(database, Rules(pipeline, ROSTER, targets=("console",)), clock)
    add(good, "Acme", "P1")
    broken = Lifecycle(database, Rules(pipeline, ROSTER, targets=(None,)), clock)  # type: ignore[arg-type]
    before = snapshot(good, "Acme")
    key = new_key()
    with pytest.raises(IntegrityError):
        move(broken, "Acme", "P2", key=key)
    assert snapshot(good, "Acme") == before
    assert history(good, "Acme")[-1].to_stage == "P1"
    # The key was not recorded either, so a retry after the fault is fixed applies the move.
    assert move(good, "Acme", "P2", key=key).replayed is False
    assert stage_of(good, "Acme") == "P2"


def test_events_go_to_every_configured_target(database: Database, clock: FixedClock, pipeline: Pipeline) -> None:
    core = Lifecycle(database, Rules(pipeline, ROSTER, targets=("slack", "feishu")), clock)
    acc = add(core, "Acme", "P1").account
    move(core, "Acme", "P2")
    with database.reader() as uow:
        rows = uow.session.execute(
            select(OutboxRow.event_id, OutboxRow.target).where(
                OutboxRow.account_id == acc.id, OutboxRow.kind == "StageChanged"
            )
        ).all()
    assert sorted(r.target for r in rows) == ["feishu", "slack"]
    assert len({r.event_id for r in rows}) == 1


def test_approvals_to_decide_are_only_those_the_person_may_decide(core: Lifecycle) -> None:
    core.execute(c.AddAccount(actor=ADMIN, key=new_key(), name="Gated", stage="PQL"))
    core.execute(c.MoveStage(actor=ALICE, key=new_key(), account="Gated", target="P0"))

    def deciding(actor: Actor) -> list[str]:
        found = core.ask(c.ListApprovals(actor=actor, mine_to_decide=True))
        assert isinstance(found, ApprovalList)
        return [a.account for a in found.approvals]

    assert deciding(BOB) == ["Gated"]  # the sales approver
    assert deciding(ADMIN) == ["Gated"]
    assert deciding(ALICE) == []  # a sales member who may not approve
    assert deciding(CAROL) == []


def test_a_nul_character_is_refused_before_it_reaches_the_database(core: Lifecycle, database: Database) -> None:
    # PostgreSQL cannot store NUL in text: such input used to surface as a database error (the
    # "Something went wrong" fallback in chat). Hypothesis found `claim \x00` in the grammar.
    core.execute(c.AddAccount(name="Nully", actor=ADMIN, key=new_key()))
    with pytest.raises(InvalidInput, match="reason contains a character that cannot be stored"):
        core.execute(c.MoveStage(account="Nully", target="SQL", reason="first\x00call", actor=ADMIN, key=new_key()))
    with pytest.raises(InvalidInput, match="name contains a character that cannot be stored"):
        core.execute(c.AddAccount(name="Bad\x00Name", actor=ADMIN, key=new_key()))
    with pytest.raises(InvalidInput):
        core.ask(c.ShowAccount(account="Nul\x00ly", actor=ADMIN))
    with pytest.raises(InvalidInput):
        core.execute(
            c.IngestSignal(account="Nully", signal="test_email_sent", source="a\x00", actor=ADMIN, key=new_key())
        )
    with database.reader() as uow:
        assert uow.conn.execute(select(func.count()).select_from(StageChange.__table__)).scalar_one() == 1
