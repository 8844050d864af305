"""The one door adapters use: execute a command or ask a query, with storage, clock and rules bound."""

from __future__ import annotations

from lifecycle import commands as c
from lifecycle.clock import Clock, SystemClock
from lifecycle.db.uow import Database, retry_disconnects
from lifecycle.pipeline import Pipeline
from lifecycle.queries import QUERIES
from lifecycle.services import HANDLERS, Rules
from lifecycle.views import Outcome, ReadModel


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
        key turns the second run into a replay if the first did commit)."""
        handler = HANDLERS[type(cmd)]
        return retry_disconnects(
            lambda: handler(cmd, uow=self.db.uow(), clock=self.clock, rules=self.rules), what=type(cmd).__name__
        )

    def ask(self, query: c.Query) -> ReadModel:
        handler = QUERIES[type(query)]
        return retry_disconnects(
            lambda: handler(query, uow=self.db.reader(), clock=self.clock, rules=self.rules), what=type(query).__name__
        )
