"""`decide()` over every (source, target) pair of the seed flowchart, then permissions and checklist gates.

Pure: no database, just the default pipeline, the test roster and hand-built actors.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lifecycle.domain.access import SYSTEM, Actor
from lifecycle.domain.errors import (
    AlreadyInStage,
    ChecklistIncomplete,
    Conflict,
    LifecycleError,
    NotAuthorized,
    TransitionRefused,
)
from lifecycle.domain.machine import Decision, allowed_next, decide
from lifecycle.domain.pipeline import Pipeline, from_mapping, load_preset
from tests.conftest import ADMIN, ALICE, BOB, CAROL, DAVE, EVE, MARY, ROSTER

DEFAULT = load_preset("default")
STAGES = [s.key for s in DEFAULT.stages]

# SPEC.md's flowchart: every allowed move out of each stage.
ALLOWED: dict[str, set[str]] = {
    "MQL": {"SQL"},
    "SQL": {"PQL", "P0"},
    "PQL": {"P0", "SQL"},
    "P0": {"P1", "CHURNED"},
    "P1": {"P2", "CHURNED"},
    "P2": {"P3", "CHURNED"},
    "P3": {"P4", "CHURNED"},
    "P4": {"P5", "CHURNED"},
    "P5": {"CHURNED"},
    "CHURNED": {"PQL", "ARCHIVED"},
    "ARCHIVED": set(),
}
GATED = {("PQL", "P0")}
ALL_PAIRS = list(itertools.product(STAGES, STAGES))
ALLOWED_PAIRS = [(s, t) for s in STAGES for t in sorted(ALLOWED[s])]


def run(
    source: str,
    target: str,
    actor: Actor = ADMIN,
    *,
    ticked: tuple[str, ...] = (),
    pipeline: Pipeline = DEFAULT,
) -> Decision:
    return decide(
        pipeline,
        current=source,
        target=target,
        ticked=ticked,
        actor=actor,
        roster=ROSTER,
        account_name="Acme",
    )


def test_the_table_is_the_pipeline() -> None:
    """The expectations below are the seed's, written out; the pipeline must agree with them."""
    assert set(ALLOWED) == set(STAGES)
    for s in STAGES:
        assert set(allowed_next(DEFAULT, s)) == ALLOWED[s], s


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=[f"{s}->{t}" for s, t in ALL_PAIRS])
def test_decide_every_pair_of_stages_as_admin(source: str, target: str) -> None:
    d = run(source, target)
    assert d.source.key == source
    assert d.target.key == target
    if source == target:
        assert d.verdict == "refused"
        assert isinstance(d.refusal, AlreadyInStage)
        assert isinstance(d.refusal, Conflict)
        assert "Acme is already in" in d.refusal.text("en")
        with pytest.raises(AlreadyInStage):
            d.raise_if_refused()
    elif (source, target) in GATED:
        assert d.verdict == "approval"
        assert d.refusal is None
        assert d.gate is not None and d.gate.team == "sales" and d.gate.reject_to == "SQL"
        assert d.transition is not None and (d.transition.source, d.transition.target) == (source, target)
        d.raise_if_refused()  # nothing to raise
    elif target in ALLOWED[source]:
        assert d.verdict == "move"
        assert d.refusal is None and d.gate is None
        assert d.transition is not None and (d.transition.source, d.transition.target) == (source, target)
        d.raise_if_refused()
    else:
        assert d.verdict == "refused"
        err = d.refusal
        assert isinstance(err, TransitionRefused)
        assert err.allowed == allowed_next(DEFAULT, source)
        assert set(err.allowed) == ALLOWED[source]
        en, zh = err.text("en"), err.text("zh")
        if ALLOWED[source]:
            assert f"Cannot move from {DEFAULT.stage(source).title('en')} to {DEFAULT.stage(target).title('en')}" in en
            tail = en.split("you can move to:", 1)[1]
            for nxt in ALLOWED[source]:
                assert DEFAULT.stage(nxt).title("en") in tail, (nxt, en)
                assert DEFAULT.stage(nxt).title("zh") in zh, (nxt, zh)
            # Stages that are not allowed are not offered.
            for other in set(STAGES) - ALLOWED[source]:
                assert DEFAULT.stage(other).title("en") not in tail
        else:
            assert "final" in en
        with pytest.raises(TransitionRefused):
            d.raise_if_refused()


def test_sql_and_pql_message_matches_the_documented_wording() -> None:
    d = run("SQL", "P3")
    assert d.refusal is not None
    assert d.refusal.text("en") == (
        "Cannot move from SQL Opportunity to P3 Go-Live. From SQL you can move to: PQL Product-qualified, P0 Signed."
    )


# ---------------------------------------------------------------- permissions

ACTORS: dict[str, tuple[Actor, set[str]]] = {
    "alice": (ALICE, {"sales"}),
    "bob": (BOB, {"sales"}),
    "carol": (CAROL, {"cs"}),
    "dave": (DAVE, {"support"}),
    "mary": (MARY, {"marketing"}),
    "eve": (EVE, set()),
}
PERMISSION_CASES = [(name, s, t) for name in ACTORS for s, t in ALLOWED_PAIRS]


@pytest.mark.parametrize(("who", "source", "target"), PERMISSION_CASES)
def test_only_the_owner_teams_of_the_source_stage_may_move(who: str, source: str, target: str) -> None:
    actor, teams = ACTORS[who]
    d = run(source, target, actor)
    owners = set(DEFAULT.stage(source).owners)
    if teams & owners:
        assert d.verdict == ("approval" if (source, target) in GATED else "move")
    else:
        assert d.verdict == "refused"
        assert isinstance(d.refusal, NotAuthorized)
        assert f"(the owners of {source})" in d.refusal.text("en")
        assert DEFAULT.owner_labels(DEFAULT.stage(source), "en") in d.refusal.text("en")


@pytest.mark.parametrize("actor", [ADMIN, SYSTEM], ids=["admin", "system"])
def test_admin_and_system_may_make_every_allowed_move(actor: Actor) -> None:
    for source, target in ALLOWED_PAIRS:
        assert run(source, target, actor).verdict in ("move", "approval")


def test_an_illegal_move_is_refused_for_what_it_is_even_for_non_members() -> None:
    d = run("MQL", "P5", EVE)
    assert isinstance(d.refusal, TransitionRefused)
    assert d.refusal.allowed == ["SQL"]


def test_same_stage_comes_before_permission() -> None:
    assert isinstance(run("P3", "P3", EVE).refusal, AlreadyInStage)


def test_non_member_cannot_request_the_gated_move() -> None:
    d = run("PQL", "P0", CAROL)
    assert d.verdict == "refused"
    assert isinstance(d.refusal, NotAuthorized)
    assert run("PQL", "P0", ALICE).verdict == "approval"


# ---------------------------------------------------------------- checklist gates


def with_required_checklist(*stage_keys: str) -> Pipeline:
    data: dict[str, Any] = DEFAULT.model_dump(by_alias=True)
    for st in data["stages"]:
        if st["key"] in stage_keys:
            st["require_checklist"] = True
    return from_mapping(data)


def test_checklist_gate_refuses_with_the_missing_items() -> None:
    p = with_required_checklist("P1")
    d = run("P1", "P2", ticked=(), pipeline=p)
    assert d.verdict == "refused"
    err = d.refusal
    assert isinstance(err, ChecklistIncomplete)
    assert err.missing == ["kickoff", "api_started"]
    assert "1. Kick-off held, contacts named on both sides" in err.text("en")
    assert "2. Customer has started calling the API or configuring SMTP" in err.text("en")
    assert "1. 已安排启动会,明确双方对接人" in err.text("zh")


def test_checklist_gate_lists_only_what_is_still_open() -> None:
    p = with_required_checklist("P1")
    d = run("P1", "P2", ticked=("kickoff",), pipeline=p)
    err = d.refusal
    assert isinstance(err, ChecklistIncomplete)
    assert err.missing == ["api_started"]
    assert "Kick-off" not in err.text("en")
    assert "2. Customer has started calling the API" in err.text("en")


def test_checklist_gate_passes_when_every_item_is_ticked() -> None:
    p = with_required_checklist("P1")
    d = run("P1", "P2", ticked=("kickoff", "api_started"), pipeline=p)
    assert d.verdict == "move"
    # Leaving by churn is gated the same way: the gate is on leaving the stage.
    assert isinstance(run("P1", "CHURNED", ticked=(), pipeline=p).refusal, ChecklistIncomplete)


def test_checklist_gate_applies_to_the_leaving_stage_only() -> None:
    p = with_required_checklist("P1")
    assert run("P0", "P1", ticked=(), pipeline=p).verdict == "move"
    assert run("P2", "P3", ticked=(), pipeline=p).verdict == "move"


def test_checklist_gate_comes_after_permission_and_before_approval() -> None:
    p = with_required_checklist("PQL")
    assert isinstance(run("PQL", "P0", CAROL, pipeline=p).refusal, NotAuthorized)
    assert isinstance(run("PQL", "P0", ALICE, pipeline=p).refusal, ChecklistIncomplete)
    assert run("PQL", "P0", ALICE, ticked=("api_or_smtp", "test_email"), pipeline=p).verdict == "approval"


def test_checklist_gate_binds_admins_too() -> None:
    p = with_required_checklist("P3")
    d = run("P3", "P4", ADMIN, ticked=("rates_normal",), pipeline=p)
    assert isinstance(d.refusal, ChecklistIncomplete)
    assert d.refusal.missing == ["first_production"]


def test_every_refusal_is_a_lifecycle_error_with_both_languages() -> None:
    p = with_required_checklist("P1")
    cases = [run("P1", "P1"), run("P1", "P5"), run("P1", "P2", MARY), run("P1", "P2", pipeline=p)]
    for d in cases:
        assert isinstance(d.refusal, LifecycleError)
        assert d.refusal.text("en") and d.refusal.text("zh")
        assert d.refusal.text("en") != d.refusal.text("zh")
