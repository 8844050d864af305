"""Handoff hygiene (issue 17): a handoff is closed when its account leaves the stage that opened
it, by any road (a move, approval, churn, win-back, archive, an import); `handoffs` and the
escalation job see only accounts still waiting; long waits are told in days."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, update

from lifecycle.core import Lifecycle
from lifecycle.db.migrate import alembic_config, upgrade
from lifecycle.db.tables import HANDOFFS, OUTBOX
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.errors import NotFound
from lifecycle.domain.events import HandoffEscalated
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import HandoffList
from lifecycle.usecases.scheduling import Schedule, run_due
from lifecycle.usecases.transfer import import_accounts, read_rows
from tests.conftest import ADMIN, ALICE, BOB, CAROL, T0, new_key
from tests.integration.test_scheduling import emitted

ALWAYS = Schedule(working_days=(1, 2, 3, 4, 5, 6, 7), working_hours=(0, 24))
DAY = timedelta(days=1)


def run(core: Lifecycle, cmd: type[c.Command], **kw: Any) -> Any:
    return core.execute(cmd(actor=kw.pop("actor", ADMIN), key=new_key(), **kw))


def signed_as_admin(core: Lifecycle, name: str) -> None:
    """The issue's steps: `add NAME`, `move NAME SQL`, `move NAME P0` (as an admin)."""
    run(core, c.AddAccount, name=name)
    run(core, c.MoveStage, account=name, target="SQL")
    run(core, c.MoveStage, account=name, target="P0")


def signed_through_approval(core: Lifecycle, name: str) -> None:
    """The same, with the sales approval gate on the road: MQL -> SQL -> PQL -> (approved) P0."""
    run(core, c.AddAccount, name=name)
    run(core, c.MoveStage, account=name, target="SQL")
    run(core, c.MoveStage, account=name, target="PQL")
    out = run(core, c.MoveStage, account=name, target="P0", actor=ALICE)
    assert out.kind == "approval_requested"
    run(core, c.DecideApproval, approval_id=out.approval_id, approve=True, actor=BOB)


def handoffs(database: Database, name: str | None = None) -> list[tuple[str, str, str, str | None]]:
    """(stage, to_team, status, note) of every handoff, oldest first."""
    from lifecycle.db.tables import ACC

    stmt = select(HANDOFFS.c.stage, HANDOFFS.c.to_team, HANDOFFS.c.status, HANDOFFS.c.note).order_by(HANDOFFS.c.id)
    if name is not None:
        stmt = stmt.join(ACC, ACC.c.id == HANDOFFS.c.account_id).where(ACC.c.name == name)
    with database.reader() as uow:
        return [tuple(r) for r in uow.conn.execute(stmt)]  # type: ignore[misc]


def waiting(core: Lifecycle) -> list[tuple[str, str, str]]:
    got = core.ask(c.ListHandoffs(actor=ADMIN))
    assert isinstance(got, HandoffList)
    return [(a.name, h.stage, h.to_team) for a, h in got.handoffs]


def test_churn_closes_both_handoffs_left_open_by_an_admin_signing(core: Lifecycle, database: Database) -> None:
    signed_as_admin(core, "Beta")
    assert waiting(core) == [("Beta", "P0", "cs")]  # the SQL handoff to Sales closed on leaving SQL
    run(core, c.Churn, account="Beta")
    assert waiting(core) == []
    assert handoffs(database, "Beta") == [
        ("SQL", "sales", "superseded", "Beta moved to P0"),
        ("P0", "cs", "superseded", "Beta moved to CHURNED"),
    ]
    assert core.ask(c.ShowAccount(actor=ADMIN, account="Beta")).open_handoffs == ()  # type: ignore[union-attr]
    with pytest.raises(NotFound) as info:
        run(core, c.ClaimHandoff, account="Beta", actor=CAROL)
    assert "closed when Beta moved to CHURNED" in info.value.text("en")


def test_churn_closes_the_handoff_of_an_approved_signing(core: Lifecycle, database: Database) -> None:
    signed_through_approval(core, "Beta")
    assert waiting(core) == [("Beta", "P0", "cs")]
    run(core, c.Churn, account="Beta")
    assert waiting(core) == []
    assert [h[2:] for h in handoffs(database, "Beta")] == [
        ("superseded", "Beta moved to PQL"),
        ("superseded", "Beta moved to CHURNED"),
    ]


def test_moving_on_closes_the_handoff_and_opens_the_next_stages(core: Lifecycle, database: Database) -> None:
    signed_as_admin(core, "Beta")
    run(core, c.MoveStage, account="Beta", target="P1")
    assert waiting(core) == [("Beta", "P1", "support")]
    assert handoffs(database, "Beta")[1:] == [
        ("P0", "cs", "superseded", "Beta moved to P1"),
        ("P1", "support", "open", None),
    ]


def test_win_back_and_archive_leave_nothing_open(core: Lifecycle, database: Database) -> None:
    signed_as_admin(core, "Beta")
    run(core, c.Churn, account="Beta")
    run(core, c.WinBack, account="Beta")
    assert waiting(core) == []
    signed_as_admin(core, "Gamma")
    run(core, c.Churn, account="Gamma")
    run(core, c.Archive, account="Gamma")
    assert waiting(core) == []
    assert {h[2] for h in handoffs(database)} == {"superseded"}


def test_an_import_that_moves_an_account_closes_its_handoff_without_a_message(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    signed_as_admin(core, "Beta")
    with database.reader() as uow:
        before = len(uow.conn.execute(select(OUTBOX.c.id)).all())
    import io

    r = read_rows(io.StringIO("name,stage\nBeta,P1\n"), rules.pipeline)
    import_accounts(database, r.rows, actor=ADMIN, clock=core.clock, rules=rules, force=True)
    assert handoffs(database, "Beta")[-1] == ("P0", "cs", "superseded", "Beta moved to P1 by import")
    assert waiting(core) == []
    with database.reader() as uow:
        assert len(uow.conn.execute(select(OUTBOX.c.id)).all()) == before  # an import says nothing in chat


def reopen_all(database: Database) -> None:
    """Rows as a version before this fix left them: open, though the account has moved on."""
    with database.uow() as uow:
        uow.conn.execute(update(HANDOFFS).values(status="open", note=None, closed_at=None))
        uow.commit()


def test_handoffs_lists_only_accounts_still_in_the_handoffs_stage(core: Lifecycle, database: Database) -> None:
    signed_as_admin(core, "Beta")
    signed_as_admin(core, "Gamma")
    run(core, c.Churn, account="Beta")
    reopen_all(database)
    assert waiting(core) == [("Gamma", "P0", "cs")]
    card = core.ask(c.ShowAccount(actor=ADMIN, account="Beta"))
    assert card.open_handoffs == ()  # type: ignore[union-attr]
    # Nor can a stale one be taken.
    with pytest.raises(NotFound):
        run(core, c.ClaimHandoff, account="Beta", actor=CAROL)
    assert run(core, c.ClaimHandoff, account="Gamma", actor=CAROL).kind == "claimed"


def test_weeks_of_ticks_escalate_the_waiting_account_once_and_the_churned_never(
    core: Lifecycle, database: Database, rules: Rules, clock: FixedClock
) -> None:
    signed_as_admin(core, "Beta")
    signed_as_admin(core, "Gamma")
    clock.advance(hours=2)
    run(core, c.Churn, account="Beta")
    for reopened in (False, True):  # and again with rows a version before the fix left open
        if reopened:
            reopen_all(database)
        ticks = [T0 + timedelta(hours=h) for h in range(0, 21 * 24, 6)]
        totals = [run_due(database, rules, ALWAYS, at).emitted.get("HandoffEscalated", 0) for at in ticks]
        assert sum(totals) == (1 if not reopened else 0)
    (esc,) = emitted(database, "HandoffEscalated")
    assert (esc.account, esc.stage, esc.to_team, esc.hours_open) == ("Gamma", "P0", "cs", 24)


def escalation(hours: int) -> HandoffEscalated:
    opened = datetime(2026, 3, 2, 9, 0, tzinfo=T0.tzinfo)
    return HandoffEscalated(
        account_id=1,
        account="Gamma",
        at=opened + timedelta(hours=hours),
        actor="system",
        audience=("cs",),
        handoff_id=1,
        stage="P0",
        to_team="cs",
        opened_at=opened,
        hours_open=hours,
    )


def test_long_waits_are_told_in_days_short_ones_in_hours(rules: Rules) -> None:
    from adapters.common.text import notification

    p = rules.pipeline
    assert "waiting 20 days" in notification(escalation(498), p)
    assert "20 天" in notification(escalation(498), p, "zh")
    assert "waiting 2 days" in notification(escalation(48), p)
    assert "waiting 30 hours" in notification(escalation(30), p)
    assert "30 小时" in notification(escalation(30), p, "zh")
    assert "waiting 1 hour " in notification(escalation(1), p)


def test_the_migration_closes_handoffs_an_earlier_version_left_open(core: Lifecycle, database: Database) -> None:
    signed_as_admin(core, "Beta")
    signed_as_admin(core, "Gamma")
    run(core, c.Churn, account="Beta")
    command.downgrade(alembic_config(database.engine), "0006")  # drops note and closed_at
    with database.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE handoffs SET status = 'open'")  # as the earlier version left them
    upgrade(database.engine)
    assert [h[2:] for h in handoffs(database, "Beta")] == [
        ("superseded", "Beta moved to CHURNED"),
        ("superseded", "Beta moved to CHURNED"),
    ]
    assert handoffs(database, "Gamma")[-1] == ("P0", "cs", "open", None)
    assert waiting(core) == [("Gamma", "P0", "cs")]
