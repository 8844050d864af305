"""Scheduled work at explicit instants (no sleeping): SLA reminders and their escalation, handoff
escalation, renewal reminders, quiet hours, catch-up after downtime, and concurrent runs."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from lifecycle.core import Lifecycle
from lifecycle.db.models import OutboxRow
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.access import Roster
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.events import load_event
from lifecycle.domain.rules import Rules
from lifecycle.usecases.scheduling import Schedule, run_due
from tests.conftest import ADMIN, CAROL, T0, new_key

ALWAYS = Schedule(working_days=(1, 2, 3, 4, 5, 6, 7), working_hours=(0, 24))
DAY = timedelta(days=1)


def add(core: Lifecycle, name: str, stage: str, **kw: Any) -> int:
    return core.execute(c.AddAccount(name=name, stage=stage, actor=ADMIN, key=new_key(), **kw)).account.id


def emitted(db: Database, kind: str) -> list[Any]:
    t = OutboxRow.__table__
    with db.reader() as uow:
        rows = uow.conn.execute(select(t.c.payload).where(t.c.kind == kind).order_by(t.c.id)).scalars().all()
    return [load_event(p) for p in rows]


def at(clock: FixedClock, when: datetime) -> datetime:
    clock.at = when
    return when


def test_an_sla_reminder_fires_when_due_once_then_repeats_and_escalates(
    core: Lifecycle, database: Database, rules: Rules, clock: FixedClock
) -> None:
    add(core, "Acme", "SQL", owner="slack:U0ALICE")  # SQL: 30-day SLA, owned by Sales
    due = T0 + 30 * DAY
    assert run_due(database, rules, ALWAYS, due - timedelta(seconds=1)).total == 0
    first = run_due(database, rules, ALWAYS, due)
    assert first.emitted == {"SlaReminder": 1}
    assert run_due(database, rules, ALWAYS, due).total == 0  # the same instant again: nothing
    assert run_due(database, rules, ALWAYS, due + 2 * DAY).total == 0  # before the repeat interval
    assert run_due(database, rules, ALWAYS, due + 3 * DAY).emitted == {"SlaReminder": 1}
    reminders = emitted(database, "SlaReminder")
    assert [r.n for r in reminders] == [1, 2]
    assert reminders[0].audience == ("sales",) and reminders[0].owner == "slack:U0ALICE"
    assert reminders[0].escalate_to == ()  # the first breach goes to the team
    assert reminders[1].escalate_to == ("slack:U0BOB",)  # the second to its approvers too
    assert reminders[1].days_in_stage == 33


def test_ten_days_of_downtime_catch_up_with_one_reminder_not_ten(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    add(core, "Late", "SQL")
    back = T0 + 30 * DAY + 10 * DAY  # the scheduler was down for the ten days after the SLA ran out
    assert run_due(database, rules, ALWAYS, back).emitted == {"SlaReminder": 1}
    assert run_due(database, rules, ALWAYS, back).total == 0
    assert [r.n for r in emitted(database, "SlaReminder")] == [4]  # the current one only


def test_hourly_ticks_over_ten_days_emit_each_reminder_once(core: Lifecycle, database: Database, rules: Rules) -> None:
    add(core, "Ticked", "SQL")
    start = T0 + 30 * DAY
    total = sum(run_due(database, rules, ALWAYS, start + timedelta(hours=h)).total for h in range(0, 240))
    assert total == 4  # days 0, 3, 6 and 9 after the breach
    assert [r.n for r in emitted(database, "SlaReminder")] == [1, 2, 3, 4]


def test_a_run_emits_only_the_items_not_emitted_before_and_counts_the_rest(
    core: Lifecycle, database: Database, rules: Rules, clock: FixedClock
) -> None:
    add(core, "Old", "SQL")  # SQL: 30-day SLA
    at(clock, T0 + DAY)
    add(core, "New", "SQL")
    assert run_due(database, rules, ALWAYS, T0 + 30 * DAY).emitted == {"SlaReminder": 1}
    # One claim statement sees Old's first reminder again and New's for the first time.
    report = run_due(database, rules, ALWAYS, T0 + 31 * DAY)
    assert report.emitted == {"SlaReminder": 1} and report.already == 1
    assert [(r.account, r.n) for r in emitted(database, "SlaReminder")] == [("Old", 1), ("New", 1)]


def test_a_stage_move_starts_the_sla_over(core: Lifecycle, database: Database, rules: Rules, clock: FixedClock) -> None:
    add(core, "Mover", "SQL")
    assert run_due(database, rules, ALWAYS, T0 + 31 * DAY).total == 1
    at(clock, T0 + 31 * DAY)
    core.execute(c.MoveStage(account="Mover", target="PQL", actor=ADMIN, key=new_key()))  # PQL: 14-day SLA
    assert run_due(database, rules, ALWAYS, T0 + 44 * DAY).total == 0
    assert run_due(database, rules, ALWAYS, T0 + 45 * DAY).emitted == {"SlaReminder": 1}
    assert emitted(database, "SlaReminder")[-1].stage == "PQL"


def test_an_unclaimed_handoff_is_escalated_once(
    core: Lifecycle, database: Database, rules: Rules, clock: FixedClock
) -> None:
    add(core, "Handy", "P0")
    core.execute(c.MoveStage(account="Handy", target="P1", actor=ADMIN, key=new_key()))  # CS + Support take over
    opened = T0
    assert run_due(database, rules, ALWAYS, opened + timedelta(hours=23)).emitted.get("HandoffEscalated", 0) == 0
    report = run_due(database, rules, ALWAYS, opened + timedelta(hours=24))
    assert report.emitted.get("HandoffEscalated") == 1  # the new team: Support (CS owned P0 already)
    assert run_due(database, rules, ALWAYS, opened + timedelta(hours=48)).emitted.get("HandoffEscalated", 0) == 0
    (esc,) = emitted(database, "HandoffEscalated")
    assert esc.to_team == "support" and esc.audience == ("support",) and esc.hours_open == 24
    assert esc.escalate_to == ()  # Support has no approvers in this roster


def test_an_escalated_handoff_names_the_receiving_teams_approvers(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    roster = Roster.build(
        members={"support": ["slack:U0DAVE"], "cs": ["feishu:ou_carol"]},
        approvers={"support": ["slack:U0SUPLEAD"], "cs": ["feishu:ou_cslead", "feishu:ou_cshead"]},
        admins=[ADMIN.ref],
    )
    with_leads = Rules(rules.pipeline, roster, targets=rules.targets)
    add(core, "Handy", "SQL")
    core.execute(c.MoveStage(account="Handy", target="P0", actor=ADMIN, key=new_key()))  # Sales -> CS
    add(core, "Handier", "P0")
    core.execute(c.MoveStage(account="Handier", target="P1", actor=ADMIN, key=new_key()))  # + Support
    run_due(database, with_leads, ALWAYS, T0 + timedelta(hours=25))
    leads = {e.to_team: e.escalate_to for e in emitted(database, "HandoffEscalated")}
    assert leads == {"cs": ("feishu:ou_cshead", "feishu:ou_cslead"), "support": ("slack:U0SUPLEAD",)}


def test_a_claimed_handoff_is_not_escalated(core: Lifecycle, database: Database, rules: Rules) -> None:
    add(core, "Taken", "P0")
    core.execute(c.MoveStage(account="Taken", target="P1", actor=ADMIN, key=new_key()))
    core.execute(c.ClaimHandoff(account="Taken", actor=ADMIN, key=new_key()))
    assert run_due(database, rules, ALWAYS, T0 + 3 * DAY).emitted.get("HandoffEscalated", 0) == 0


def test_renewal_reminders_at_90_60_and_30_days_each_once(core: Lifecycle, database: Database, rules: Rules) -> None:
    end = date(2026, 9, 1)
    add(core, "Renewco", "P5", contract_end=end, owner="feishu:ou_carol")
    noon = lambda d: datetime(d.year, d.month, d.day, 4, 0, tzinfo=T0.tzinfo)  # noqa: E731  12:00 in Shanghai
    assert run_due(database, rules, ALWAYS, noon(end - timedelta(days=91))).emitted.get("RenewalDue", 0) == 0
    assert run_due(database, rules, ALWAYS, noon(end - timedelta(days=90))).emitted == {"RenewalDue": 1}
    assert run_due(database, rules, ALWAYS, noon(end - timedelta(days=75))).total == 0
    assert run_due(database, rules, ALWAYS, noon(end - timedelta(days=60))).emitted == {"RenewalDue": 1}
    # Downtime from day 59 to day 25: one catch-up reminder (the 30-day one), not two.
    assert run_due(database, rules, ALWAYS, noon(end - timedelta(days=25))).emitted == {"RenewalDue": 1}
    assert run_due(database, rules, ALWAYS, noon(end - timedelta(days=1))).total == 0
    assert [r.days_left for r in emitted(database, "RenewalDue")] == [90, 60, 25]
    assert emitted(database, "RenewalDue")[0].audience == ("cs", "sales")


def test_a_mature_account_without_a_contract_end_gets_a_monthly_nudge(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    add(core, "Nodate", "P5")
    days = [T0 + timedelta(days=d) for d in range(0, 62)]
    total = sum(run_due(database, rules, ALWAYS, d).emitted.get("RenewalDue", 0) for d in days)
    assert total == 3  # March, April, May (T0 is 2 March; 61 days later is 2 May)
    assert all(r.contract_end is None for r in emitted(database, "RenewalDue"))


def test_quiet_hours_hold_reminders_until_the_working_day(core: Lifecycle, database: Database, rules: Rules) -> None:
    add(core, "Night", "SQL")
    office = Schedule(timezone="Asia/Shanghai", working_days=(1, 2, 3, 4, 5), working_hours=(9, 19))
    # 2026-04-04 is a Saturday; 2026-04-06 09:00 Shanghai is Monday 01:00 UTC.
    saturday = datetime(2026, 4, 4, 3, 0, tzinfo=T0.tzinfo)
    quiet = run_due(database, rules, office, saturday)
    assert quiet.quiet and quiet.total == 0
    assert run_due(database, rules, office, datetime(2026, 4, 6, 0, 59, tzinfo=T0.tzinfo)).total == 0  # 08:59
    assert run_due(database, rules, office, datetime(2026, 4, 6, 1, 0, tzinfo=T0.tzinfo)).total == 1  # 09:00


def test_concurrent_runs_never_emit_twice(core: Lifecycle, database: Database, rules: Rules) -> None:
    for i in range(30):
        add(core, f"Many {i}", "SQL")
    start = T0 + 30 * DAY
    totals: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            totals.append(sum(run_due(database, rules, ALWAYS, start + h * DAY).total for h in range(0, 10)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    reminders = emitted(database, "SlaReminder")
    keys = Counter((r.account_id, r.n) for r in reminders)
    assert len(reminders) == 30 * 4 and max(keys.values()) == 1
    assert sum(totals) == len(reminders)


def test_reminders_reach_the_owner_team_with_an_open_card_button(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    from adapters.common.actions import buttons_for
    from adapters.common.text import notification

    add(core, "Shown", "P4", owner=CAROL.ref)  # P4: 28 days
    run_due(database, rules, ALWAYS, T0 + 28 * DAY)
    (r,) = emitted(database, "SlaReminder")
    text = notification(r, rules.pipeline)
    assert "Shown" in text and "28-day SLA" in text and "@ou_carol" in text
    assert "超出 SLA" in notification(r, rules.pipeline, "zh")
    assert [(b.value["op"], b.value.get("days")) for b in buttons_for(r)] == [
        ("show", None),
        ("snooze", 1),
        ("snooze", 7),
    ]


def test_escalations_mention_the_approvers_in_slack_and_render_in_feishu(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    from adapters.feishu import cards
    from adapters.slack import blocks

    add(core, "Escalated", "SQL")
    run_due(database, rules, ALWAYS, T0 + 30 * DAY)
    run_due(database, rules, ALWAYS, T0 + 33 * DAY)
    second = emitted(database, "SlaReminder")[-1]
    msg = blocks.notification(second, rules.pipeline)
    dumped = json.dumps(msg.blocks)
    assert "<@U0BOB>" in dumped and "Escalated" in msg.text
    assert '"op":"show"' in dumped.replace(" ", "").replace("\\", "")
    card = cards.notification(second, rules.pipeline)
    texts = json.dumps(card, ensure_ascii=False)
    # The body is in the bot's language (en by default); button labels carry both languages.
    assert "Escalated" in texts and "past its" in texts and "查看客户" in texts
    assert "超出 SLA" in json.dumps(cards.notification(second, rules.pipeline, "zh"), ensure_ascii=False)


# ---------------------------------------------------------------- product signals and churn risk


def signal(core: Lifecycle, name: str, account: str = "Sig", sid: str | None = None, **kw: Any) -> Any:
    return core.execute(
        c.IngestSignal(
            actor=ADMIN, key=f"signal:test:{sid or new_key()}", account=account, signal=name, signal_id=sid or "", **kw
        )
    )


def test_a_signal_ticks_its_checklist_items_and_a_complete_p2_goes_live(core: Lifecycle, database: Database) -> None:
    add(core, "Sig", "P2")
    first = signal(core, "test_email_sent", sid="s1")
    assert first.kind == "signal" and first.ticked == ("first_test",)
    again = signal(core, "test_email_sent", sid="s1")  # the same (source, id): applied once
    assert again.replayed and again.ticked == ("first_test",)
    done = signal(core, "domain_verified", sid="s2")
    assert done.kind == "moved" and done.to_stage == "P3" and done.ticked == ("domain_auth",)
    hist = core.ask(c.ShowHistory(account="Sig", actor=ADMIN))
    assert hist.lines[-1].actor == "system:signals" and "checklist complete" in hist.lines[-1].reason
    assert [e.item for e in emitted(database, "ChecklistTicked")] == ["first_test", "domain_auth"]


def test_refused_signals_change_nothing(core: Lifecycle, database: Database) -> None:
    import pytest

    from lifecycle.domain.errors import InvalidInput, NotFound

    add(core, "Sig", "P2")
    with pytest.raises(InvalidInput, match="Unknown signal"):
        signal(core, "made_up_signal")
    with pytest.raises(NotFound):
        signal(core, "test_email_sent", account="Nobody")
    with pytest.raises(NotFound):
        core.execute(c.IngestSignal(actor=ADMIN, key=new_key(), external_id="ext-404", signal="test_email_sent"))
    assert emitted(database, "ChecklistTicked") == []
    card = core.ask(c.ShowAccount(account="Sig", actor=ADMIN))
    assert not any(line.done for line in card.checklist)


def test_usage_at_zero_for_a_week_raises_one_churn_risk_alert(
    core: Lifecycle, database: Database, rules: Rules
) -> None:
    add(core, "Quiet", "P4")
    for day in range(0, 10):
        value = 500 if day < 2 else 0  # sends stop after day 1
        signal(core, "daily_send_volume", account="Quiet", value=value, at=T0 + day * DAY)
    assert run_due(database, rules, ALWAYS, T0 + 7 * DAY).emitted.get("ChurnRisk", 0) == 0  # quiet 6 days
    assert run_due(database, rules, ALWAYS, T0 + 8 * DAY + timedelta(hours=1)).emitted == {"ChurnRisk": 1}
    assert run_due(database, rules, ALWAYS, T0 + 9 * DAY).total == 0
    (risk,) = emitted(database, "ChurnRisk")
    assert risk.audience == ("cs",) and risk.quiet_days == 7 and risk.signal == "daily_send_volume"
    # Sending again, then stopping again, is a new quiet spell and a new alert.
    signal(core, "daily_send_volume", account="Quiet", value=10, at=T0 + 10 * DAY)
    assert run_due(database, rules, ALWAYS, T0 + 12 * DAY).emitted.get("ChurnRisk", 0) == 0
    signal(core, "daily_send_volume", account="Quiet", value=0, at=T0 + 11 * DAY)
    assert run_due(database, rules, ALWAYS, T0 + 17 * DAY + timedelta(hours=1)).emitted == {"ChurnRisk": 1}


def test_an_instant_in_another_time_zone_is_the_same_instant(core: Lifecycle, database: Database, rules: Rules) -> None:
    from zoneinfo import ZoneInfo

    add(core, "Zoned", "SQL")
    due = (T0 + 30 * DAY).astimezone(ZoneInfo("Asia/Shanghai"))  # the same instant, written at +08:00
    assert run_due(database, rules, ALWAYS, due - timedelta(seconds=1)).total == 0
    assert run_due(database, rules, ALWAYS, due).emitted == {"SlaReminder": 1}
