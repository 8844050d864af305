"""What the core answers with: outcomes of commands and read models for queries, as plain data."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Who(BaseModel):
    """A person as renderers need them: the name to show and every platform ref of theirs, so each
    platform mentions them its own way (Slack `<@U…>`, Feishu `<at id=ou_…>`) or names them."""

    model_config = ConfigDict(frozen=True)

    name: str
    refs: tuple[str, ...] = ()


People = dict[str, Who]  # a ref as it appears in the model -> the person it is


class AccountView(_View):
    id: int
    name: str
    stage: str
    stage_entered_at: datetime
    owner: str | None = None
    amount: Decimal | None = None
    segment: str | None = None
    external_id: str | None = None
    contract_end: date | None = None
    version: int = 1


OutcomeKind = Literal[
    "added",
    "moved",
    "approval_requested",
    "approved",
    "rejected",
    "ticked",
    "already_ticked",
    "assigned",
    "renewed",
    "claimed",
    "signal",
    "task_opened",
    "task_done",
    "snoozed",
]


class Outcome(_View):
    """The result of a command. `replayed` is true when the idempotency key had been seen before."""

    kind: OutcomeKind
    account: AccountView
    from_stage: str | None = None
    to_stage: str | None = None
    approval_id: int | None = None
    approval_team: str | None = None
    handoff_ids: tuple[int, ...] = ()
    item: str | None = None
    renewal: Literal["renewal", "expansion"] | None = None
    decided_by: str | None = None
    ticked: tuple[str, ...] = ()  # checklist items a signal ticked
    task_id: int | None = None
    until: datetime | None = None  # snoozed until
    replayed: bool = False
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class ChecklistLine(_View):
    number: int
    key: str
    en: str
    zh: str
    done: bool
    by: str | None = None
    at: datetime | None = None


class ApprovalView(_View):
    id: int
    account_id: int
    account: str
    from_stage: str
    to_stage: str
    reject_to: str | None
    team: str
    status: str
    requested_by: str
    requested_at: datetime
    reason: str
    decided_by: str | None = None
    decided_at: datetime | None = None


class HandoffView(_View):
    id: int
    account_id: int
    stage: str
    to_team: str
    opened_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None


class AccountCard(_View):
    account: AccountView
    checklist: tuple[ChecklistLine, ...]
    time_in_stage_seconds: float
    sla_days: int | None
    overdue: bool
    pending_approval: ApprovalView | None = None
    open_handoffs: tuple[HandoffView, ...] = ()
    allowed_next: tuple[str, ...] = ()
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class HistoryLine(_View):
    at: datetime
    actor: str
    from_stage: str | None
    to_stage: str
    kind: str
    reason: str
    via: str


class History(_View):
    account: AccountView
    lines: tuple[HistoryLine, ...]  # the newest changes, oldest first
    truncated: bool = False  # earlier changes exist that are not included
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class AccountList(_View):
    groups: tuple[tuple[str, tuple[AccountView, ...]], ...]  # (stage key, accounts) in pipeline order
    total: int
    truncated: bool = False
    stage_filter: str | None = None
    mine: bool = False
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class ApprovalList(_View):
    approvals: tuple[ApprovalView, ...]
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class HandoffList(_View):
    handoffs: tuple[tuple[AccountView, HandoffView], ...]
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class TaskView(_View):
    id: int
    account_id: int
    account: str
    title_en: str
    title_zh: str
    team: str | None
    assignee: str | None
    status: str
    opened_at: datetime
    done_by: str | None = None


class TaskList(_View):
    tasks: tuple[TaskView, ...]
    account: str | None = None
    people: People = {}  # the people named above (lifecycle/core.py fills it)


class StageFigures(_View):
    stage: str
    entries: int
    converted: int
    conversion: float | None  # None: no entries, or no forward move out of the stage
    avg_days: float | None
    median_days: float | None
    in_stage_now: int


class ForecastLine(_View):
    stage: str
    accounts: int
    amount: Decimal
    probability: float
    weighted: Decimal


class Report(_View):
    """The managers' report (lifecycle/read/reports.py says how each figure is defined)."""

    since: datetime | None
    until: datetime | None
    team: str | None
    owner: str | None
    segment: str | None
    stages: tuple[StageFigures, ...]
    bottleneck: str | None
    forecast: tuple[ForecastLine, ...]
    weighted_total: Decimal
    sql_p0_amount: Decimal
    renewals_next_quarter: int
    renewals_next_quarter_amount: Decimal
    generated_at: datetime
    people: People = {}  # the people named above (lifecycle/core.py fills it)


ReadModel = AccountCard | History | AccountList | ApprovalList | HandoffList | TaskList | Report
