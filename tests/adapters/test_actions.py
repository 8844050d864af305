"""The shared button-value schema: round trips, and damaged values answered, never raised raw."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.common.actions import buttons_for, decode, encode
from adapters.common.grammar import UsageError
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.events import ApprovalRequested, HandoffOpened, StageChanged

ME = Actor("feishu", "ou_boss")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_approval_buttons_decode_to_the_same_command_as_typed_text() -> None:
    ev = ApprovalRequested(
        account_id=1,
        account="Acme",
        at=AT,
        actor="slack:U1",
        approval_id=7,
        from_stage="PQL",
        to_stage="P0",
        reject_to="SQL",
        team="sales",
    )
    approve, reject = buttons_for(ev)
    assert (approve.style, reject.style) == ("primary", "danger")
    assert reject.confirm is not None and "SQL" in reject.confirm("en")
    for button, expected in ((approve, True), (reject, False)):
        for value in (button.value, encode(button.value)):  # Feishu sends objects, Slack strings
            cmd = decode(value, actor=ME, key="k", via="feishu")
            assert cmd == c.DecideApproval(approval_id=7, approve=expected, actor=ME, key="k", via="feishu")
    assert approve.typed == "approve 7" and reject.typed == "reject 7"


def test_handoff_button_claims_that_handoff() -> None:
    ev = HandoffOpened(
        account_id=1, account="Acme", at=AT, actor="x:y", handoff_id=3, stage="P0", from_teams=("sales",), to_team="cs"
    )
    (take,) = buttons_for(ev)
    assert decode(take.value, actor=ME, key="k") == c.ClaimHandoff(handoff_id=3, actor=ME, key="k")
    ev2 = StageChanged(
        account_id=1, account="A", at=AT, actor="x:y", from_stage="P1", to_stage="P2", transition="advance"
    )
    assert buttons_for(ev2) == []


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not json",
        "[1,2]",
        '{"v": 2, "op": "approve", "approval": 1}',
        '{"v": 1, "op": "explode"}',
        '{"v": 1, "op": "approve"}',
        '{"v": 1, "op": "approve", "approval": "1; drop table"}',
        '{"v": 1, "op": "approve", "approval": true}',
        {"v": 1, "op": "claim", "handoff": None},
        "[" * 5000,
        # Strict JSON: a duplicate key reads as the last one here and as the first one elsewhere.
        '{"v": 1, "op": "approve", "approval": 1, "approval": 2}',
        '{"v": 1, "op": "approve", "op": "reject", "approval": 1}',
        '{"v": 1, "op": "snooze", "account": 1, "days": 1, "x": {"k": 1, "k": 2}}',
    ],
)
def test_damaged_values_are_a_user_error(value: object) -> None:
    with pytest.raises(UsageError) as err:
        decode(value, actor=ME, key="k")  # type: ignore[arg-type]
    assert "button" in err.value.text("en")


@given(st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5))))
def test_no_value_raises_anything_but_a_user_error(value: object) -> None:
    with contextlib.suppress(UsageError):
        decode(value, actor=ME, key="k")  # type: ignore[arg-type]


def test_values_fit_slack_limits() -> None:
    assert len(encode({"v": 1, "op": "approve", "approval": 10**12})) < 2000
    with pytest.raises(ValueError):
        encode({"v": 1, "blob": "x" * 3000})
