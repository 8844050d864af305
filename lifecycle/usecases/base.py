"""What every use case shares: the tables, the rules, the transaction-with-idempotency wrapper,
account lookup, outbox writes, version-checked updates and permission checks.

Every use case runs in one transaction: it applies the change, appends history, writes domain
events to the outbox and records the idempotency key, all or nothing. A repeated key returns the
first outcome (marked `replayed`) and changes nothing. Hot paths use SQLAlchemy Core statements on
the typed models' tables: a stage move is a handful of single-row statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, Update, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from lifecycle.db.engine import upsert
from lifecycle.db.tables import ACC, HANDOFFS, HIST, KEYS, OUTBOX, TICKS
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain import correlation
from lifecycle.domain.access import Actor, join_hint
from lifecycle.domain.clock import Clock
from lifecycle.domain.errors import (
    Conflict,
    InvalidInput,
    LifecycleError,
    NotAuthorized,
    NotFound,
)
from lifecycle.domain.events import (
    Event,
)
from lifecycle.domain.i18n import Text
from lifecycle.domain.limits import MAX_PERSON, MAX_REASON
from lifecycle.domain.people import with_people
from lifecycle.domain.pipeline import Stage
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome
from lifecycle.read.accounts import AccountRecord

# Hot-path statements are built once with bind parameters: rebuilding them per call (and
# recomputing their cache keys) was a third of a stage move's time. They run on the session's
# connection, inside the unit of work's transaction.
SELECT_KEY = select(KEYS.c.outcome).where(KEYS.c.key == bindparam("key"))
INSERT_KEY = insert(KEYS)
INSERT_OUTBOX = insert(OUTBOX)
INSERT_HISTORY = insert(HIST)

# Every open handoff of an account that leaves a stage: the ones that stage opened, and any an
# earlier version left open in a stage the account had already left. Nobody is waiting any more;
# the next stage opens its own. Also used by imports (transfer.py), as an executemany.
SUPERSEDE_HANDOFFS = (
    update(HANDOFFS)
    .where(HANDOFFS.c.account_id == bindparam("b_account"), HANDOFFS.c.status == "open")
    .values(status="superseded", closed_at=bindparam("b_now"), note=bindparam("b_note"))
)


def superseded_note(account: str, target: str, *, by_import: bool = False) -> str:
    """Why a handoff was closed, kept on its row: `Beta moved to CHURNED`."""
    return f"{account} moved to {target}" + (" by import" if by_import else "")


C = TypeVar("C", bound=c.Command)
Body = Callable[[C, Connection, datetime, Rules], Outcome]


def apply_command(cmd: C, body: Body[C], *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Outcome:
    """Run `body` in one transaction under the command's idempotency key."""
    if not cmd.key:
        raise InvalidInput(Text("Every command needs an idempotency key.", "每个命令都需要幂等键。"))
    with uow:
        s = uow.conn
        now = clock.now()
        try:
            outcome = body(cmd, s, now, rules)
            # The key is written in the same transaction as the change, so a repeated delivery
            # can never apply twice: its key insert fails and everything it did rolls back.
            s.execute(
                INSERT_KEY,
                {
                    "key": cmd.key,
                    "command": type(cmd).__name__,
                    "account_id": outcome.account.id,
                    "outcome": outcome.model_dump_json(),
                    "processed_at": now,
                },
            )
            uow.commit()
        except (LifecycleError, IntegrityError):
            # Only now ask whether this delivery was applied before (a retry, a double click,
            # a duplicate handled by another worker): if so, answer with what it did then. Looking
            # the key up here rather than first saves a statement on every successful command.
            uow.rollback()
            prior = s.execute(SELECT_KEY, {"key": cmd.key}).scalar_one_or_none()
            if prior is not None:
                return replayed(prior)
            # A refusal stands; an integrity error that is not a known race is a bug, left to the
            # adapters' error boundary to log with a reference rather than blamed on "someone else".
            raise
        return outcome


def replayed(stored: str) -> Outcome:
    return Outcome.model_validate_json(stored).model_copy(update={"replayed": True})


# ---------------------------------------------------------------- shared steps

AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)  # a fresh outbox row's `available_at`: due now on any clock


def _outbox_rows(rules: Rules, events: Sequence[Event], now: datetime) -> list[dict[str, Any]]:
    """One row per (event, delivery target), in the events' order."""
    correlation_id = correlation.current.get()
    rows = []
    for event, event_id in ((with_people(rules.roster, e), str(uuid.uuid4())) for e in events):
        payload = event.model_dump_json()
        for target in rules.targets:
            rows.append(
                {
                    "event_id": event_id,
                    "target": target,
                    "account_id": event.account_id,
                    "kind": event.kind,
                    "payload": payload,
                    "created_at": now,
                    # Due at once whatever `now` is: `now` may be a simulated instant (`jobs run
                    # --now`), and delivery runs on the wall clock, so a future `now` here would
                    # hold the row (and the account's later rows) until that date.
                    "available_at": AT_ONCE,
                    "status": "pending",
                    "attempts": 0,
                    "correlation_id": correlation_id,
                }
            )
    return rows


def emit(s: Connection, rules: Rules, event: Event, now: datetime) -> None:
    """Write one outbox row per delivery target, in the caller's transaction."""
    emit_many(s, rules, [event], now)


def emit_many(s: Connection, rules: Rules, events: Sequence[Event], now: datetime) -> None:
    """`emit` for many events in one statement (scheduled work emits hundreds at a time)."""
    rows = _outbox_rows(rules, events, now) if rules.targets and events else []
    if rows:
        s.execute(INSERT_OUTBOX, rows)


def insert_ignoring_duplicates(s: Connection, table: Table, row: dict[str, Any], unique: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; whether a row was inserted.

    A racing duplicate waits for the first insert to commit and then inserts nothing.
    """
    # RETURNING tells "inserted" from "skipped" on both drivers (psycopg's rowcount does not).
    pk = next(iter(table.primary_key.columns))
    stmt = upsert(s.dialect.name, table).values(row).on_conflict_do_nothing(index_elements=unique).returning(pk)
    return s.execute(stmt).first() is not None


@cache
def _bump_statement(cols: tuple[str, ...]) -> Update:
    """The version-checked UPDATE for one set of changed columns, built once with bind parameters:
    building a statement (and its cache key) on every move cost more than running it."""
    return (
        update(ACC)
        .where(ACC.c.id == bindparam("b_id"), ACC.c.version == bindparam("b_version"))
        .values(
            version=bindparam("b_new_version"),
            updated_at=bindparam("b_now"),
            **{col: bindparam(f"b_{col}") for col in cols},
        )
    )


def bump(s: Connection, acc: AccountRecord, now: datetime, **values: Any) -> int:
    """Update an account if nobody changed it since it was read; the new version, else Conflict."""
    new_version = int(acc.version) + 1
    params = {"b_id": acc.id, "b_version": acc.version, "b_new_version": new_version, "b_now": now}
    params.update({f"b_{col}": v for col, v in values.items()})
    res = s.execute(_bump_statement(tuple(sorted(values))), params)
    if res.rowcount != 1:
        current = s.execute(select(ACC.c.stage).where(ACC.c.id == acc.id)).scalar_one_or_none()
        raise Conflict(
            Text(
                f"Someone else just changed {acc.name} (now in {current}). Look again and retry.",
                f"{acc.name} 刚被其他人修改(当前阶段 {current})。请刷新后重试。",
            )
        )
    return new_version


def require_known(rules: Rules, actor: Actor) -> None:
    if not rules.roster.known(actor):
        hint = join_hint(actor)
        raise NotAuthorized(
            Text(
                f"You ({actor.ref}) are not in any stagebot team yet. Ask an admin to {hint.en}.",
                f"你({actor.ref})还不在任何团队中。请管理员{hint.zh}。",
            )
        )


def resolve_owner(rules: Rules, typed: str, platform: str) -> str:
    """The canonical ref of the person `typed` names as an owner (a people key, an email, a name, an
    @mention or a platform ref; lifecycle/domain/access.py `Roster.find`). With nobody configured at
    all an owner is taken as typed, on the platform it was typed on; otherwise someone the roster does
    not know is refused, naming who can own."""
    owner = typed.strip()
    if not owner or len(owner) > MAX_PERSON or any(ch.isspace() for ch in owner):
        raise InvalidInput(Text("Name one person as the owner, e.g. @alice.", "请指定一位负责人,例如 @alice。"))
    roster = rules.roster
    found = roster.find(owner, platform)
    if found is not None:
        return found
    if not roster.configured:
        bare = owner.lstrip("@")
        return bare if ":" in bare else f"{platform}:{bare}"
    owner = owner.removeprefix(f"{platform}:")  # as typed: the grammar writes `@x` as platform:x
    who = roster.owners()
    listing = ", ".join(who[:20]) + (f" (+{len(who) - 20})" if len(who) > 20 else "")
    raise NotFound(
        Text(
            f'"{owner}" is not in the people directory or any team, so they cannot own an account. '
            f"Name a people key, email or @mention of: {listing or 'nobody yet'}.",
            f"“{owner}”不在人员目录或任何团队中,不能作为负责人。"
            f"可指定以下人员(键名、邮箱或 @提及):{listing or '暂无'}。",
        )
    )


def require_owner_team(rules: Rules, actor: Actor, stage: Stage, acc_name: str, doing: Text) -> None:
    require_known(rules, actor)
    if not rules.roster.in_any_team(actor, stage.owners):
        p = rules.pipeline
        raise NotAuthorized(
            Text(
                f"Only {p.owner_labels(stage, 'en')} (owners of {stage.key}) or an admin can {doing.en} {acc_name}.",
                f"只有{p.owner_labels(stage, 'zh')}({stage.key} 的负责团队)或管理员可以{doing.zh} {acc_name}。",
            )
        )


def clean_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            Text(
                f"The reason is {len(reason)} characters; keep it under {MAX_REASON}.",
                f"原因共 {len(reason)} 个字符,请控制在 {MAX_REASON} 以内。",
            )
        )
    return reason


def ticked_items(s: Connection, account_id: int, stage: str) -> set[str]:
    return set(
        s.execute(select(TICKS.c.item).where(TICKS.c.account_id == account_id, TICKS.c.stage == stage)).scalars()
    )
