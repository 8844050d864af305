"""The one door adapters use: execute a command or ask a query, with storage, clock and rules bound."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime
from typing import TypeVar

from lifecycle.db.uow import Database, retry_disconnects
from lifecycle.delivery.outbox import DeliveryProblem, delivery_problems
from lifecycle.domain import commands as c
from lifecycle.domain.access import join_hint
from lifecycle.domain.clock import Clock, SystemClock
from lifecycle.domain.errors import NotAuthorized
from lifecycle.domain.i18n import Text
from lifecycle.domain.limits import MAX_NAME, checked, delivery_key
from lifecycle.domain.people import with_people
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import Outcome, ReadModel
from lifecycle.read.accounts import account_names_among
from lifecycle.read.queries import QUERIES
from lifecycle.usecases import HANDLERS
from lifecycle.usecases.inbound import first_delivery

Q = TypeVar("Q", c.Command, c.Query)


class Lifecycle:
    """Binds the use-case functions to a database, a clock and the rules. Holds no other state."""

    def __init__(self, db: Database, rules: Rules, clock: Clock | None = None) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock or SystemClock()

    @property
    def pipeline(self) -> Pipeline:
        return self.rules.pipeline

    def execute(self, cmd: c.Command) -> Outcome:
        """Run a command; once more if the database connection was lost mid-way (its idempotency
        key turns the second run into a replay if the first did commit). Text the storage cannot
        hold is refused here, naming the field (lifecycle/domain/limits.py)."""
        handler = HANDLERS[type(cmd)]
        cmd = self._as_person(checked(cmd))
        outcome = retry_disconnects(
            lambda: handler(cmd, uow=self.db.uow(), clock=self.clock, rules=self.rules), what=type(cmd).__name__
        )
        return with_people(self.rules.roster, outcome)

    def _as_person(self, asked: Q) -> Q:
        """The command or query as asked by the person behind its actor: whichever platform they
        write from, the core sees (and stores) one identity (lifecycle/domain/access.py). The platform
        it came through stays the command's `via`."""
        actor = self.rules.roster.canonical(asked.actor)
        if actor is asked.actor:
            return asked
        if isinstance(asked, c.Command):
            return dataclasses.replace(asked, actor=actor, via=asked.channel)  # type: ignore[call-arg]
        return dataclasses.replace(asked, actor=actor)

    def first_delivery(self, key: str) -> bool:
        """Whether this platform delivery (event id, message id) is new; it is recorded as seen."""
        return first_delivery(self.db, delivery_key(key), self.clock.now())

    def delivery_problems(self, target: str, *, since: datetime | None = None) -> list[DeliveryProblem]:
        """Notifications `target` refused for good, by error, most recent first (for admins)."""
        return [p for p in delivery_problems(self.db, since=since) if p.target == target]

    def ask(self, query: c.Query) -> ReadModel:
        handler = QUERIES[type(query)]
        query = checked(query)
        if not self.rules.roster.may_read(query.actor):
            hint = join_hint(query.actor)
            raise NotAuthorized(
                Text(
                    f"You ({query.actor.ref}) are not in any stagebot team yet, so you cannot see accounts. "
                    f"Ask an admin to {hint.en}.",
                    f"你({query.actor.ref})还不在任何团队中,暂时不能查看客户。请管理员{hint.zh}。",
                )
            )
        query = self._as_person(query)
        answer = retry_disconnects(
            lambda: handler(query, uow=self.db.reader(), clock=self.clock, rules=self.rules), what=type(query).__name__
        )
        return with_people(self.rules.roster, answer)

    def account_names_among(self, names: Collection[str]) -> set[str]:
        """Those of `names` that are exactly an account's name (case and spacing aside): how the chat
        grammar tells where an unquoted multi-word name ends (`churn Pied Piper lost to competitor`).
        One query; names only, no other data."""
        names = [n for n in names if len(n) <= MAX_NAME]

        def look() -> set[str]:
            with self.db.reader() as uow:
                return account_names_among(uow.conn, names)

        return retry_disconnects(look, what="account name lookup") if names else set()
