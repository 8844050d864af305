"""Domain events, past tense, written to the outbox in the same transaction as the change.

Each event names its `audience`: the team keys whose channels should hear of it. Adapters map
teams to channels and render; the core never knows a channel id.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from lifecycle.domain.views import People


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    account_id: int
    account: str
    at: datetime
    actor: str
    audience: tuple[str, ...] = ()
    people: People = {}  # the people the event names, as they were when it was emitted

    @property
    def subject(self) -> str:
        """What a posted message of this event is about, so a later event can update it in place."""
        return f"account:{self.account_id}"


class AccountAdded(_Event):
    kind: Literal["AccountAdded"] = "AccountAdded"
    stage: str
    owner: str | None = None
    amount: Decimal | None = None


class StageChanged(_Event):
    kind: Literal["StageChanged"] = "StageChanged"
    from_stage: str
    to_stage: str
    transition: str  # advance | back | churn | winback | archive
    reason: str = ""
    via: str = ""
    owner: str | None = None
    approved_by: str | None = None


class ApprovalRequested(_Event):
    kind: Literal["ApprovalRequested"] = "ApprovalRequested"
    approval_id: int
    from_stage: str
    to_stage: str
    reject_to: str | None
    team: str
    reason: str = ""
    amount: Decimal | None = None
    owner: str | None = None

    @property
    def subject(self) -> str:
        return f"approval:{self.approval_id}"


class ApprovalDecided(_Event):
    kind: Literal["ApprovalDecided"] = "ApprovalDecided"
    approval_id: int
    decision: Literal["approved", "rejected"]
    from_stage: str
    to_stage: str
    requested_by: str
    note: str = ""

    @property
    def subject(self) -> str:
        return f"approval:{self.approval_id}"


class HandoffOpened(_Event):
    kind: Literal["HandoffOpened"] = "HandoffOpened"
    handoff_id: int
    stage: str
    from_teams: tuple[str, ...]
    to_team: str
    owner: str | None = None
    amount: Decimal | None = None
    segment: str | None = None
    contract_end: str | None = None

    @property
    def subject(self) -> str:
        return f"handoff:{self.handoff_id}"


class HandoffClaimed(_Event):
    kind: Literal["HandoffClaimed"] = "HandoffClaimed"
    handoff_id: int
    stage: str
    to_team: str

    @property
    def subject(self) -> str:
        return f"handoff:{self.handoff_id}"


class OwnerAssigned(_Event):
    kind: Literal["OwnerAssigned"] = "OwnerAssigned"
    owner: str
    previous: str | None = None
    stage: str


class ChecklistTicked(_Event):
    kind: Literal["ChecklistTicked"] = "ChecklistTicked"
    stage: str
    item: str
    done: int
    total: int


class RenewalRecorded(_Event):
    kind: Literal["RenewalRecorded"] = "RenewalRecorded"
    renewal: Literal["renewal", "expansion"]
    amount: Decimal
    contract_end: str
    stage: str


class SlaReminder(_Event):
    """An account has sat in its stage longer than the stage's SLA (the `n`th reminder)."""

    kind: Literal["SlaReminder"] = "SlaReminder"
    stage: str
    entered_at: datetime
    sla_days: int
    days_in_stage: int
    n: int
    owner: str | None = None
    escalate_to: tuple[str, ...] = ()  # the owner teams' approvers, from the second reminder on


class HandoffEscalated(_Event):
    """A handoff prompt nobody took within the configured time."""

    kind: Literal["HandoffEscalated"] = "HandoffEscalated"
    handoff_id: int
    stage: str
    to_team: str
    opened_at: datetime
    hours_open: int
    escalate_to: tuple[str, ...] = ()


class RenewalDue(_Event):
    """A contract ends in `days_left` days (reminders at 90/60/30), or a mature account has no end date."""

    kind: Literal["RenewalDue"] = "RenewalDue"
    stage: str
    contract_end: str | None
    days_left: int | None
    owner: str | None = None


class TaskOpened(_Event):
    kind: Literal["TaskOpened"] = "TaskOpened"
    task_id: int
    title_en: str
    title_zh: str
    team: str | None = None
    assignee: str | None = None
    link: str | None = None

    @property
    def subject(self) -> str:
        return f"task:{self.task_id}"


class TaskDone(_Event):
    kind: Literal["TaskDone"] = "TaskDone"
    task_id: int
    title_en: str
    title_zh: str

    @property
    def subject(self) -> str:
        return f"task:{self.task_id}"


class AutomationNotice(_Event):
    """A pipeline automation's message to a team (e.g. the guide to send on entering P2)."""

    kind: Literal["AutomationNotice"] = "AutomationNotice"
    automation: str
    stage: str
    text_en: str
    text_zh: str
    link: str | None = None


class ChurnRisk(_Event):
    """A usage signal (daily send volume) has stayed at zero for `quiet_days` days."""

    kind: Literal["ChurnRisk"] = "ChurnRisk"
    stage: str
    signal: str
    quiet_since: datetime
    quiet_days: int
    owner: str | None = None


Event = Annotated[
    AccountAdded
    | StageChanged
    | ApprovalRequested
    | ApprovalDecided
    | HandoffOpened
    | HandoffClaimed
    | OwnerAssigned
    | ChecklistTicked
    | RenewalRecorded
    | SlaReminder
    | HandoffEscalated
    | RenewalDue
    | ChurnRisk
    | TaskOpened
    | TaskDone
    | AutomationNotice,
    Field(discriminator="kind"),
]
EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def load_event(payload: str) -> Event:
    return EVENT.validate_json(payload)
