"""One sample of every event the Slack notifier posts, with the user's text chosen by the caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lifecycle.domain import events as ev

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def every_event(
    name: str = "Acme",
    reason: str = "because",
    *,
    title: str = "Send the guide",
    approvers: tuple[str, ...] = ("slack:U0BOSS",),
    owner: str | None = "slack:U0ALICE",
) -> dict[str, ev.Event]:
    """Every event kind by its kind name; `reason` also stands for notes, task titles and notices."""
    base: dict[str, Any] = {"account_id": 1, "account": name, "at": T0, "actor": "slack:U0ALICE"}
    return {
        "AccountAdded": ev.AccountAdded(**base, stage="MQL", owner=owner, amount=Decimal(10)),
        "StageChanged": ev.StageChanged(
            **base, from_stage="P1", to_stage="P2", transition="advance", reason=reason, owner=owner
        ),
        "ApprovalRequested": ev.ApprovalRequested(
            **base,
            approval_id=7,
            from_stage="PQL",
            to_stage="P0",
            reject_to="SQL",
            team="sales",
            reason=reason,
            amount=Decimal("99999999999999.99"),
            owner=owner,
        ),
        "ApprovalDecided": ev.ApprovalDecided(
            **base,
            approval_id=7,
            decision="rejected",
            from_stage="PQL",
            to_stage="P0",
            requested_by="slack:U0BOB",
            note=reason,
        ),
        "HandoffOpened": ev.HandoffOpened(
            **base,
            handoff_id=3,
            stage="P0",
            from_teams=("sales",),
            to_team="cs",
            owner=owner,
            amount=Decimal(5),
            segment=name[:64],
            contract_end="2027-06-30",
        ),
        "HandoffClaimed": ev.HandoffClaimed(**base, handoff_id=3, stage="P0", to_team="cs"),
        "OwnerAssigned": ev.OwnerAssigned(**base, owner="slack:U0BOB", previous=owner, stage="P2"),
        "ChecklistTicked": ev.ChecklistTicked(**base, stage="P2", item="first_test", done=1, total=2),
        "RenewalRecorded": ev.RenewalRecorded(
            **base, renewal="expansion", amount=Decimal(120000), contract_end="2027-06-30", stage="P5"
        ),
        "SlaReminder": ev.SlaReminder(
            **base,
            stage="P2",
            entered_at=T0 - timedelta(days=30),
            sla_days=14,
            days_in_stage=30,
            n=3,
            owner=owner,
            escalate_to=approvers,
        ),
        "HandoffEscalated": ev.HandoffEscalated(
            **base,
            handoff_id=3,
            stage="P0",
            to_team="cs",
            opened_at=T0 - timedelta(hours=30),
            hours_open=30,
            escalate_to=approvers,
        ),
        "RenewalDue": ev.RenewalDue(**base, stage="P5", contract_end="2026-05-31", days_left=30, owner=owner),
        "ChurnRisk": ev.ChurnRisk(
            **base, stage="P5", signal="daily_sends", quiet_since=T0 - timedelta(days=9), quiet_days=9, owner=owner
        ),
        "TaskOpened": ev.TaskOpened(
            **base, task_id=5, title_en=title, title_zh=title, team="cs", assignee=owner, link="https://x.example/g"
        ),
        "TaskDone": ev.TaskDone(**base, task_id=5, title_en=title, title_zh=title),
        "AutomationNotice": ev.AutomationNotice(
            **base, automation="deliverability_guide", stage="P2", text_en=reason, text_zh=reason, link=None
        ),
    }
