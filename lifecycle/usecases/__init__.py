"""Use cases: one plain function per command, each over a unit of work, a clock and the rules.

`HANDLERS` maps each command type to its function; `Lifecycle.execute` (lifecycle/core.py) uses it.
"""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.db.tables import ACC, APPROVALS, HANDOFFS, HIST, KEYS, OUTBOX, TICKS
from lifecycle.domain import commands as c
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import account_view, find_account, name_key
from lifecycle.usecases.accounts import assign_owner, claim_handoff, record_renewal, resolve_item, tick_checklist
from lifecycle.usecases.approvals import decide_approval
from lifecycle.usecases.signals import ingest_signal
from lifecycle.usecases.stages import add_account, archive, churn, move_stage, win_back
from lifecycle.usecases.tasks import add_task, complete_task, snooze_sla

HANDLERS: dict[type[c.Command], Callable[..., Outcome]] = {
    c.AddAccount: add_account,
    c.MoveStage: move_stage,
    c.Churn: churn,
    c.WinBack: win_back,
    c.Archive: archive,
    c.DecideApproval: decide_approval,
    c.TickChecklist: tick_checklist,
    c.AssignOwner: assign_owner,
    c.RecordRenewal: record_renewal,
    c.ClaimHandoff: claim_handoff,
    c.IngestSignal: ingest_signal,
    c.AddTask: add_task,
    c.CompleteTask: complete_task,
    c.SnoozeSla: snooze_sla,
}

__all__ = [
    "ACC",
    "APPROVALS",
    "HANDLERS",
    "HANDOFFS",
    "HIST",
    "KEYS",
    "OUTBOX",
    "TICKS",
    "Rules",
    "account_view",
    "add_account",
    "archive",
    "assign_owner",
    "churn",
    "claim_handoff",
    "decide_approval",
    "find_account",
    "move_stage",
    "name_key",
    "record_renewal",
    "resolve_item",
    "tick_checklist",
    "win_back",
]
