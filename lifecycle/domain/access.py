"""Who is who: actors, team membership, approvers and admins, as plain data from the config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

ReadPolicy = Literal["members", "everyone"]


@dataclass(frozen=True, slots=True)
class Actor:
    """A person (or the bot itself) acting through a platform: `slack:U0ALICE`, `feishu:ou_x`."""

    platform: str
    user_id: str
    name: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.platform}:{self.user_id}"

    @staticmethod
    def parse(ref: str) -> Actor:
        platform, _, user = ref.partition(":")
        if not user:
            raise ValueError(f"an actor is written platform:user_id, got {ref!r}")
        return Actor(platform, user)


SYSTEM = Actor("system", "stagebot", "stagebot")


@dataclass(frozen=True)
class Roster:
    """Team membership from the config. Approvers of a team count as its members too. `read` says who
    may see accounts, history and reports: team members and admins only, or everyone who can reach
    the bot (a workspace where all may look)."""

    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    approvers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    admins: frozenset[str] = frozenset()
    read: ReadPolicy = "members"

    @staticmethod
    def build(
        members: Mapping[str, Iterable[str]],
        approvers: Mapping[str, Iterable[str]],
        admins: Iterable[str] = (),
        read: ReadPolicy = "members",
    ) -> Roster:
        appr = {t: frozenset(v) for t, v in approvers.items()}
        mem = {t: frozenset(v) | appr.get(t, frozenset()) for t, v in members.items()}
        for t, v in appr.items():
            mem.setdefault(t, v)
        return Roster(mem, appr, frozenset(admins), read)

    def is_admin(self, actor: Actor) -> bool:
        return actor.ref in self.admins or actor == SYSTEM

    def teams_of(self, actor: Actor) -> frozenset[str]:
        return frozenset(t for t, refs in self.members.items() if actor.ref in refs)

    def in_any_team(self, actor: Actor, teams: Iterable[str]) -> bool:
        return self.is_admin(actor) or any(actor.ref in self.members.get(t, ()) for t in teams)

    def may_approve(self, actor: Actor, team: str) -> bool:
        return self.is_admin(actor) or actor.ref in self.approvers.get(team, ())

    def known(self, actor: Actor) -> bool:
        return self.is_admin(actor) or bool(self.teams_of(actor))

    def may_read(self, actor: Actor) -> bool:
        return self.read == "everyone" or self.known(actor)

    def team_members(self, team: str) -> list[str]:
        return sorted(self.members.get(team, ()))
