"""Commands (what someone asks the core to do) and queries (what they ask to see).

Every command carries the actor and an idempotency key: the platform's delivery id (Slack
trigger/action id, Feishu event id) or a fresh one from the console. The same key is applied once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from lifecycle.domain.access import Actor


@dataclass(frozen=True, kw_only=True)
class Command:
    actor: Actor
    key: str
    via: str = ""  # the platform the command came through; defaults to the actor's

    @property
    def channel(self) -> str:
        return self.via or self.actor.platform


@dataclass(frozen=True, kw_only=True)
class AddAccount(Command):
    name: str
    stage: str | None = None
    amount: Decimal | None = None
    owner: str | None = None
    segment: str | None = None
    external_id: str | None = None
    contract_end: date | None = None


@dataclass(frozen=True, kw_only=True)
class MoveStage(Command):
    account: str  # exact name, unique prefix or #ID
    target: str  # stage key, zh or en label
    reason: str = ""
    expected_version: int | None = None  # set by buttons rendered from a known version


@dataclass(frozen=True, kw_only=True)
class Churn(Command):
    account: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class WinBack(Command):
    account: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Archive(Command):
    account: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class DecideApproval(Command):
    approval_id: int
    approve: bool
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class TickChecklist(Command):
    account: str
    item: str  # 1-based number, item key, or (part of) its label


@dataclass(frozen=True, kw_only=True)
class AssignOwner(Command):
    account: str
    owner: str  # platform:user_id


@dataclass(frozen=True, kw_only=True)
class RecordRenewal(Command):
    account: str
    amount: Decimal
    until: date
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ClaimHandoff(Command):
    account: str | None = None
    handoff_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class IngestSignal(Command):
    """A product signal for an account (by name or external id). The key is `signal:<source>:<id>`."""

    account: str | None = None
    external_id: str | None = None
    signal: str
    value: Decimal | None = None
    at: datetime | None = None
    source: str = "api"
    signal_id: str = ""


@dataclass(frozen=True, kw_only=True)
class AddTask(Command):
    account: str
    title: str


@dataclass(frozen=True, kw_only=True)
class CompleteTask(Command):
    task_id: int


@dataclass(frozen=True, kw_only=True)
class SnoozeSla(Command):
    """No SLA reminders for the account for `days` days (a reminder's snooze button)."""

    account: str
    days: int


# ---------------------------------------------------------------- queries (read-only, no key)


@dataclass(frozen=True, kw_only=True)
class Query:
    actor: Actor


@dataclass(frozen=True, kw_only=True)
class ShowAccount(Query):
    account: str


@dataclass(frozen=True, kw_only=True)
class ListAccounts(Query):
    stage: str | None = None
    mine: bool = False
    overdue: bool = False  # only accounts past their stage's SLA
    limit: int = 200


@dataclass(frozen=True, kw_only=True)
class ShowHistory(Query):
    account: str
    limit: int = 200


@dataclass(frozen=True, kw_only=True)
class ListHandoffs(Query):
    """Open handoffs to the actor's teams (all teams for an admin) of accounts still in the
    handoff's stage."""

    limit: int = 50


@dataclass(frozen=True, kw_only=True)
class ListApprovals(Query):
    pending_only: bool = True
    mine_to_decide: bool = False  # only those the actor may decide (their team's gates; all for admins)


@dataclass(frozen=True, kw_only=True)
class ListTasks(Query):
    """Open tasks: of one account, or the actor's own (assigned to them or to their teams)."""

    account: str | None = None
    mine: bool = False
    limit: int = 60


@dataclass(frozen=True, kw_only=True)
class ShowReport(Query):
    """Funnel, conversion, time in stage, forecast; filters by period (history), team, owner, segment."""

    since: datetime | None = None
    until: datetime | None = None
    team: str | None = None
    owner: str | None = None
    segment: str | None = None
