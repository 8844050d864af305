"""The one button-value schema for every platform: a small versioned JSON object.

Slack carries it as the button's `value` string, Feishu as the button's `value` object; both
decode to the same lifecycle commands as typed text. Version 1:

    {"v": 1, "op": "approve" | "reject", "approval": 7}
    {"v": 1, "op": "claim", "handoff": 3}
    {"v": 1, "op": "show", "account": 12}
    {"v": 1, "op": "done", "task": 5}
    {"v": 1, "op": "snooze", "account": 12, "days": 7}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from adapters.common import strict_json
from adapters.common.grammar import UsageError
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.events import (
    ApprovalRequested,
    ChurnRisk,
    Event,
    HandoffEscalated,
    HandoffOpened,
    RenewalDue,
    SlaReminder,
    TaskOpened,
)
from lifecycle.domain.i18n import Text

VERSION = 1
MAX_VALUE = 2000  # Slack's limit for a button value

Style = Literal["primary", "danger", "default"]


@dataclass(frozen=True)
class Button:
    label: Text
    value: dict[str, Any]
    style: Style = "default"
    confirm: Text | None = None  # a confirmation question shown before the press counts
    typed: str = ""  # the same action as a typed command, for the console and text fallbacks


def encode(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(raw) > MAX_VALUE:
        raise ValueError("button value too long")
    return raw


_STALE = UsageError(
    Text(
        "This button is from an older message or is damaged. Type the command instead (see `help`).",
        "这个按钮已失效或已损坏。请直接输入命令(见 `help`)。",
    )
)


def decode(value: str | dict[str, Any], *, actor: Actor, key: str, via: str = "") -> c.Command | c.Query:
    """A button press as the command it stands for; UsageError for anything unexpected (a value
    with a duplicate key too: which of the two would count is a guess)."""
    data: Any = value
    if isinstance(value, str):
        try:
            data = strict_json.loads(value)
        except (ValueError, RecursionError):
            raise _STALE from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise _STALE
    op = data.get("op")

    def int_field(name: str) -> int:
        v = data.get(name)
        text = str(v) if isinstance(v, int | str) and not isinstance(v, bool) else ""
        if not (text.isascii() and text.isdigit()) or len(text) > 19:  # ids are 64-bit
            raise _STALE
        return int(text)

    if op in ("approve", "reject"):
        return c.DecideApproval(
            approval_id=int_field("approval"), approve=op == "approve", actor=actor, key=key, via=via
        )
    if op == "claim":
        return c.ClaimHandoff(handoff_id=int_field("handoff"), actor=actor, key=key, via=via)
    if op == "show":
        return c.ShowAccount(account=f"#{int_field('account')}", actor=actor)
    if op == "done":
        return c.CompleteTask(task_id=int_field("task"), actor=actor, key=key, via=via)
    if op == "snooze":
        return c.SnoozeSla(account=f"#{int_field('account')}", days=int_field("days"), actor=actor, key=key, via=via)
    raise _STALE


def buttons_for(event: Event) -> list[Button]:
    """The buttons a notification of this event carries, the same on every platform."""
    if isinstance(event, ApprovalRequested):
        n = event.approval_id
        return [
            Button(
                Text("Approve", "批准"), {"v": VERSION, "op": "approve", "approval": n}, "primary", typed=f"approve {n}"
            ),
            Button(
                Text("Reject", "驳回"),
                {"v": VERSION, "op": "reject", "approval": n},
                "danger",
                confirm=Text(
                    f"Reject the conversion of {event.account}? It goes back to {event.reject_to or event.from_stage}.",
                    f"确定驳回 {event.account} 的转化吗?客户将退回 {event.reject_to or event.from_stage}。",
                ),
                typed=f"reject {n}",
            ),
        ]
    show = Button(
        Text("Open card", "查看客户"),
        {"v": VERSION, "op": "show", "account": event.account_id},
        typed=f"show #{event.account_id}",
    )
    if isinstance(event, HandoffOpened | HandoffEscalated):
        claim = Button(
            Text("Take ownership", "接手"),
            {"v": VERSION, "op": "claim", "handoff": event.handoff_id},
            "primary",
            typed=f'claim "{event.account}"',
        )
        return [claim, show] if isinstance(event, HandoffEscalated) else [claim]
    if isinstance(event, SlaReminder):
        snooze = [
            Button(
                label,
                {"v": VERSION, "op": "snooze", "account": event.account_id, "days": days},
                typed=f"snooze #{event.account_id} {days}",
            )
            for label, days in ((Text("Snooze 1 day", "暂停 1 天"), 1), (Text("Snooze 1 week", "暂停 1 周"), 7))
        ]
        return [show, *snooze]
    if isinstance(event, TaskOpened):
        done = Button(
            Text("Done", "完成"),
            {"v": VERSION, "op": "done", "task": event.task_id},
            "primary",
            typed=f"done {event.task_id}",
        )
        return [done, show]
    if isinstance(event, RenewalDue | ChurnRisk):
        return [show]
    return []
