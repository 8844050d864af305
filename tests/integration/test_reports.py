"""The report's figures on a small fixed history, checked against values worked out by hand: an
account that went back PQL -> SQL, one created in SQL that signed directly (skipping PQL), and one
that churned and was won back."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import select

from lifecycle.core import Lifecycle
from lifecycle.db.migrate import alembic_config, upgrade
from lifecycle.db.models import StageChange
from lifecycle.domain import commands as c
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.views import Report
from tests.conftest import ADMIN, T0, new_key

DAY = timedelta(days=1)


def at(clock: FixedClock, days: float) -> None:
    clock.at = T0 + days * DAY


@pytest.fixture
def history(core: Lifecycle, clock: FixedClock) -> Lifecycle:
    def add(name: str, stage: str, amount: int, end: date | None = None) -> None:
        core.execute(
            c.AddAccount(name=name, stage=stage, amount=Decimal(amount), contract_end=end, actor=ADMIN, key=new_key())
        )

    def move(name: str, to: str, days: float) -> None:
        at(clock, days)
        core.execute(c.MoveStage(account=name, target=to, actor=ADMIN, key=new_key()))

    at(clock, 0)
    add("Alpha", "MQL", 10_000)  # MQL -> SQL -> PQL -> back to SQL
    add("Bravo", "SQL", 50_000, date(2026, 5, 1))  # created in SQL, signs directly: SQL -> P0 -> P1
    add("Charlie", "P3", 20_000, date(2026, 12, 1))  # P3 -> P4 -> churned -> won back to PQL
    move("Alpha", "SQL", 2)
    move("Charlie", "P4", 4)
    move("Alpha", "PQL", 5)
    move("Charlie", "CHURNED", 5)
    move("Alpha", "SQL", 6)
    move("Charlie", "PQL", 8)
    move("Bravo", "P0", 10)
    move("Bravo", "P1", 12)
    at(clock, 20)  # now: 2026-03-22
    return core


def figures(r: Report) -> dict[str, tuple[int, int, float | None, float | None, float | None, int]]:
    def rnd(x: float | None) -> float | None:
        return None if x is None else round(x, 6)

    return {
        f.stage: (f.entries, f.converted, rnd(f.conversion), rnd(f.avg_days), rnd(f.median_days), f.in_stage_now)
        for f in r.stages
    }


def test_funnel_conversion_and_time_in_stage(history: Lifecycle) -> None:
    r = history.ask(c.ShowReport(actor=ADMIN))
    assert isinstance(r, Report)
    got = figures(r)
    # stage: (entries, converted, conversion, average days, median days, accounts there now)
    assert got["MQL"] == (1, 1, 1.0, 2.0, 2.0, 0)
    # SQL: Alpha day 2 -> PQL (3 days), Alpha day 6 -> still there (14), Bravo day 0 -> P0 (10).
    assert got["SQL"] == (3, 2, round(2 / 3, 6), 9.0, 10.0, 1)
    # PQL: Alpha day 5 -> back to SQL (1 day, not a conversion), Charlie day 8 -> still there (12).
    assert got["PQL"] == (2, 0, 0.0, 6.5, 6.5, 1)
    assert got["P0"] == (1, 1, 1.0, 2.0, 2.0, 0)
    assert got["P1"] == (1, 0, 0.0, 8.0, 8.0, 1)
    assert got["P3"] == (1, 1, 1.0, 4.0, 4.0, 0)
    assert got["P4"] == (1, 0, 0.0, 1.0, 1.0, 0)  # churned: not a conversion
    assert got["CHURNED"] == (1, 0, None, 3.0, 3.0, 0)  # no forward move out of Churned
    assert got["P5"] == (0, 0, None, None, None, 0)
    assert r.bottleneck == "SQL"  # the longest median time in stage


def test_forecast_and_renewals(history: Lifecycle) -> None:
    r = history.ask(c.ShowReport(actor=ADMIN))
    assert isinstance(r, Report)
    lines = {f.stage: (f.accounts, f.amount, f.weighted) for f in r.forecast}
    assert lines == {
        "SQL": (1, Decimal("10000"), Decimal("2000.00")),  # 20%
        "PQL": (1, Decimal("20000"), Decimal("6000.00")),  # 30%
        "P1": (1, Decimal("50000"), Decimal("50000.00")),  # 100%
    }
    assert r.weighted_total == Decimal("58000.00")
    assert r.sql_p0_amount == Decimal("10000")  # the seed's "SQL + P0 amounts"
    assert (r.renewals_next_quarter, r.renewals_next_quarter_amount) == (1, Decimal("50000"))  # Bravo, 1 May


def test_filters_by_period_team_and_owner(history: Lifecycle) -> None:
    late = history.ask(c.ShowReport(actor=ADMIN, since=T0 + 5 * DAY))
    assert isinstance(late, Report)
    got = figures(late)
    assert got["MQL"][0] == 0 and got["SQL"][0] == 1 and got["PQL"][0] == 2 and got["P1"][0] == 1
    cs = history.ask(c.ShowReport(actor=ADMIN, team="cs"))
    assert isinstance(cs, Report)
    assert {f.stage for f in cs.stages} >= {"P3", "P4"} and "MQL" not in {f.stage for f in cs.stages}
    nobody = history.ask(c.ShowReport(actor=ADMIN, owner="slack:U0NOBODY"))
    assert isinstance(nobody, Report)
    assert all(f.entries == 0 for f in nobody.stages) and nobody.weighted_total == 0


def test_history_from_before_the_stay_columns_is_filled_in_by_the_migration(history: Lifecycle) -> None:
    # Migration 0006 fills from_entered_at / stay_seconds of existing rows from the row before.
    # Taking the schema back to 0005 drops them; upgrading again must compute what the write path
    # stored, and the report must not change.
    engine = history.db.engine
    hist = StageChange.__table__
    cols = (hist.c.id, hist.c.from_entered_at, hist.c.stay_seconds)
    with engine.connect() as conn:
        written = conn.execute(select(*cols).order_by(hist.c.id)).all()
    before = history.ask(c.ShowReport(actor=ADMIN))
    command.downgrade(alembic_config(engine), "0005")
    upgrade(engine)
    with engine.connect() as conn:
        filled = conn.execute(select(*cols).order_by(hist.c.id)).all()
    assert [(i, e) for i, e, _ in filled] == [(i, e) for i, e, _ in written]
    assert sum(1 for _, e, _ in written if e is not None) == 8  # every move, no creation
    for (_, _, w), (_, _, f) in zip(written, filled, strict=True):
        assert (w is None and f is None) or abs(w - f) < 1e-3
    after = history.ask(c.ShowReport(actor=ADMIN))
    assert figures(after) == figures(before)
