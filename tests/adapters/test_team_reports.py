"""Team figures for the App Home and the Feishu report menu: one report per team of the viewer,
recomputed only after the time to live."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from adapters.common.team_reports import TeamReports
from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from tests.conftest import ADMIN, ALICE, new_key


def test_one_report_per_team_and_the_whole_pipeline_for_people_in_none(core: Lifecycle) -> None:
    reports = TeamReports(core)
    (sales,) = reports.for_person(ALICE)  # Alice is in sales only
    assert sales.team == "sales"
    owned = {st.key for st in core.pipeline.stages if "sales" in st.owners}
    assert owned and {f.stage for f in sales.stages} == owned  # the stages sales owns, no others
    (everything,) = reports.for_person(ADMIN)  # an admin in no team sees the whole pipeline
    assert everything.team is None and len(everything.stages) == len(core.pipeline.stages)
    assert reports.for_person(Actor("console", "nobody")) == []  # [access] read = "members"
    everyone = Lifecycle(core.db, replace(core.rules, roster=replace(core.rules.roster, read="everyone")), core.clock)
    (whole,) = TeamReports(everyone).for_person(Actor("console", "nobody"))
    assert whole.team is None


def test_figures_are_kept_for_the_time_to_live_then_recomputed(core: Lifecycle) -> None:
    now = [0.0]
    reports = TeamReports(core, ttl=60, monotonic=lambda: now[0])
    first = reports.for_team(ADMIN, None)
    core.execute(c.AddAccount(name="Later", stage="SQL", amount=Decimal(5), actor=ADMIN, key=new_key()))
    now[0] = 59
    assert reports.for_team(ADMIN, None) is first
    now[0] = 61
    again = reports.for_team(ADMIN, None)
    assert sum(f.in_stage_now for f in again.stages) == sum(f.in_stage_now for f in first.stages) + 1
