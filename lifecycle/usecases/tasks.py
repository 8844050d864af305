"""Tasks on accounts (opened by automations or typed with `todo`), and snoozing SLA reminders.

A task belongs to a team (and, when known, a person): members of that team, its assignee and
admins may mark it done; the first to do so wins, and later presses are told who did it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from lifecycle.db.tables import ACC, TASKS
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from lifecycle.domain.events import TaskDone, TaskOpened
from lifecycle.domain.i18n import Text
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import AccountRecord, account_view, find_account, valid_id
from lifecycle.usecases.base import apply_command, emit, require_known

MAX_TITLE = 300
MAX_SNOOZE_DAYS = 90
_INSERT_TASK = insert(TASKS).returning(TASKS.c.id)


def open_task(
    s: Connection,
    rules: Rules,
    acc: AccountRecord,
    *,
    title: Text,
    team: str | None,
    source: str,
    actor: str,
    now: datetime,
    link: str | None = None,
) -> int:
    """Insert a task and announce it to its team; the task id. Used by `todo` and by automations."""
    owner = rules.roster.canonical_ref(acc.owner) if acc.owner else None
    assignee = owner if owner and (team is None or owner in rules.roster.members.get(team, ())) else None
    task_id = int(
        s.execute(
            _INSERT_TASK,
            {
                "account_id": acc.id,
                "title_en": title.en[:MAX_TITLE],
                "title_zh": title.zh[:MAX_TITLE],
                "team": team,
                "assignee": assignee,
                "source": source,
                "status": "open",
                "opened_at": now,
            },
        ).scalar_one()
    )
    stage = rules.pipeline.stage(acc.stage)
    emit(
        s,
        rules,
        TaskOpened(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=actor,
            audience=(team,) if team else stage.owners,
            task_id=task_id,
            title_en=title.en[:MAX_TITLE],
            title_zh=title.zh[:MAX_TITLE],
            team=team,
            assignee=assignee,
            link=link,
        ),
        now,
    )
    return task_id


def add_task(cmd: c.AddTask, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _add_task, uow=uow, clock=clock, rules=rules)


def _add_task(cmd: c.AddTask, s: Connection, now: datetime, rules: Rules) -> Outcome:
    require_known(rules, cmd.actor)
    title = " ".join(cmd.title.split())
    if not title:
        raise InvalidInput(Text("Say what the task is: `todo Acme send the guide`.", "请写明任务内容。"))
    if len(title) > MAX_TITLE:
        raise InvalidInput(Text(f"A task is at most {MAX_TITLE} characters.", f"任务最多 {MAX_TITLE} 个字符。"))
    acc = find_account(s, cmd.account)
    stage = rules.pipeline.stage(acc.stage)
    me = rules.roster.canonical_ref(cmd.actor.ref)
    mine = [t for t in stage.owners if me in rules.roster.members.get(t, ())]
    team = mine[0] if mine else (stage.owners[0] if stage.owners else None)
    task_id = open_task(
        s, rules, acc, title=Text(title, title), team=team, source="manual", actor=cmd.actor.ref, now=now
    )
    return Outcome(kind="task_opened", account=account_view(acc), task_id=task_id, item=title)


def complete_task(cmd: c.CompleteTask, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _complete_task, uow=uow, clock=clock, rules=rules)


def _complete_task(cmd: c.CompleteTask, s: Connection, now: datetime, rules: Rules) -> Outcome:
    require_known(rules, cmd.actor)
    task = s.execute(select(TASKS).where(TASKS.c.id == cmd.task_id)).first() if valid_id(cmd.task_id) else None
    if task is None:
        raise NotFound(Text(f"No task #{cmd.task_id}.", f"没有任务 #{cmd.task_id}。"))
    roster, ref = rules.roster, cmd.actor.ref
    in_team = bool(task.team) and roster.in_any_team(cmd.actor, [task.team])
    allowed = roster.is_admin(cmd.actor) or roster.same(ref, task.assignee) or in_team
    if not allowed:
        raise NotAuthorized(
            Text(
                f"Task #{task.id} belongs to {task.team or 'its team'}; only its members or an admin can close it.",
                f"任务 #{task.id} 属于{task.team or '对应团队'},只有其成员或管理员可以完成。",
            )
        )
    done = s.execute(
        update(TASKS)
        .where(TASKS.c.id == task.id, TASKS.c.status == "open")
        .values(status="done", done_at=now, done_by=ref)
    )
    if done.rowcount != 1:  # someone else was first
        by = s.execute(select(TASKS.c.done_by).where(TASKS.c.id == task.id)).scalar_one()
        raise Conflict(Text(f"Task #{task.id} was already done by {by}.", f"任务 #{task.id} 已由 {by} 完成。"))
    acc = s.execute(select(ACC).where(ACC.c.id == task.account_id)).one()
    emit(
        s,
        rules,
        TaskDone(
            account_id=acc.id,
            account=acc.name,
            at=now,
            actor=ref,
            audience=(task.team,) if task.team else (),
            task_id=task.id,
            title_en=task.title_en,
            title_zh=task.title_zh,
        ),
        now,
    )
    return Outcome(kind="task_done", account=account_view(acc), task_id=task.id, item=task.title_en)


def snooze_sla(cmd: c.SnoozeSla, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    return apply_command(cmd, _snooze, uow=uow, clock=clock, rules=rules)


def _snooze(cmd: c.SnoozeSla, s: Connection, now: datetime, rules: Rules) -> Outcome:
    if not 1 <= cmd.days <= MAX_SNOOZE_DAYS:
        raise InvalidInput(
            Text(f"Snooze for 1 to {MAX_SNOOZE_DAYS} days.", f"暂停提醒的天数须在 1 到 {MAX_SNOOZE_DAYS} 之间。")
        )
    acc = find_account(s, cmd.account)
    stage = rules.pipeline.stage(acc.stage)
    require_known(rules, cmd.actor)
    if not rules.roster.in_any_team(cmd.actor, stage.owners):
        raise NotAuthorized(
            Text(
                f"Only the owners of {stage.key} or an admin can snooze {acc.name}'s reminders.",
                f"只有 {stage.key} 的负责团队或管理员可以暂停 {acc.name} 的提醒。",
            )
        )
    until = now + timedelta(days=cmd.days)
    # Not version-checked: a snooze changes no stage and may race a move harmlessly.
    s.execute(update(ACC).where(ACC.c.id == acc.id).values(sla_snoozed_until=until))
    return Outcome(kind="snoozed", account=account_view(acc), until=until)
