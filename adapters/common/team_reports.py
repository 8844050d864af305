"""The report for the teams a person works in, as the Slack App Home and the Feishu report menu show it.

A person in teams sees one report per team (the stages that team owns), at most `MAX_TEAMS`;
someone in no team sees the whole pipeline when they may read at all (an admin, or anyone under
`[access] read = "everyone"`), and nothing otherwise. Reports are kept for
`ttl` seconds: opening the App Home over and over must not recompute a report over the whole
history each time, and the figures say when they were computed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.views import Report

MAX_TEAMS = 3
DEFAULT_TTL = 120.0


class TeamReports:
    def __init__(
        self, core: Lifecycle, *, ttl: float = DEFAULT_TTL, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.core, self.ttl, self.monotonic = core, ttl, monotonic
        self._lock = threading.Lock()
        self._kept: dict[str | None, tuple[float, Report]] = {}

    def teams_of(self, actor: Actor) -> list[str | None]:
        teams = sorted(self.core.rules.roster.teams_of(actor))
        if teams:
            return list(teams[:MAX_TEAMS])
        return [None] if self.core.rules.roster.may_read(actor) else []

    def for_person(self, actor: Actor) -> list[Report]:
        return [self.for_team(actor, team) for team in self.teams_of(actor)]

    def for_team(self, actor: Actor, team: str | None) -> Report:
        now = self.monotonic()
        with self._lock:
            kept = self._kept.get(team)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        r = self.core.ask(c.ShowReport(actor=actor, team=team))
        assert isinstance(r, Report)
        with self._lock:
            self._kept[team] = (now, r)
        return r
