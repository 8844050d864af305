"""Who is who: people and the platform accounts they act through, team membership, approvers and
admins, as plain data from the config.

A person (`[people.alice]`) is one identity whatever platform they write from: every ref of theirs
resolves to one canonical ref, the one stored as owner, actor or decider. The canonical ref is the
person's Slack ref, else their Feishu ref, else `person:KEY` (someone with no chat account yet): a
platform ref keeps every row written before the person was configured (`owner = "slack:U0ALICE"`)
theirs without a migration. Comparisons go through `canonical_ref` (in Python) or `refs_of` (in SQL),
so rows written under another of the person's refs still count as theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from lifecycle.domain.i18n import Text

ReadPolicy = Literal["members", "everyone"]
PLATFORMS = ("slack", "feishu")  # the order decides a person's canonical ref
PERSON = "person"  # `person:KEY`: a person with no chat account


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


@dataclass(frozen=True, slots=True)
class Person:
    """One person of the people directory: a key, a name, an email and their platform accounts."""

    key: str
    name: str = ""
    email: str | None = None
    refs: tuple[str, ...] = ()  # platform refs, in PLATFORMS order: the first is canonical

    @property
    def ref(self) -> str:
        return self.refs[0] if self.refs else f"{PERSON}:{self.key}"

    @property
    def display(self) -> str:
        return self.name or self.key

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every ref that means this person, canonical first."""
        return (*self.refs, f"{PERSON}:{self.key}") if self.refs else (self.ref,)

    def on(self, platform: str) -> str | None:
        """The person's user id on `platform`, if they have an account there."""
        return next((r.partition(":")[2] for r in self.refs if r.partition(":")[0] == platform), None)

    @staticmethod
    def build(key: str, name: str = "", email: str | None = None, **accounts: str | None) -> Person:
        refs = tuple(f"{p}:{accounts[p]}" for p in PLATFORMS if accounts.get(p))
        return Person(key, name, email, refs)


def join_hint(actor: Actor) -> Text:
    """How an admin adds someone unknown: the config lines to write, with their id filled in."""
    if actor.platform in PLATFORMS:
        line = f'[people.you] {actor.platform} = "{actor.user_id}"'
        en = f'add `{line}` to the config (any key instead of "you"), then "you" to a team\'s members'
        zh = f'在配置中加入 `{line}`(可用任意键名代替 "you"),再把 "you" 加到某个团队的 members'
        return Text(en, zh)
    return Text(f'add "{actor.ref}" to a team\'s members in the config', f"在配置中把 {actor.ref} 加入团队的 members")


def _index(people: Iterable[Person]) -> tuple[dict[str, Person], dict[str, str]]:
    by_key: dict[str, Person] = {}
    alias: dict[str, str] = {}
    for p in people:
        by_key[p.key] = p
        for ref in p.aliases:
            alias.setdefault(ref, p.ref)
    return by_key, alias


@dataclass(frozen=True)
class Roster:
    """Team membership from the config. Approvers of a team count as its members too. `read` says who
    may see accounts, history and reports: team members and admins only, or everyone who can reach
    the bot (a workspace where all may look). Membership is kept as canonical refs; every question
    about an actor is asked of the actor's canonical ref."""

    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    approvers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    admins: frozenset[str] = frozenset()
    read: ReadPolicy = "members"
    people: Mapping[str, Person] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # any ref of a person -> their canonical ref
    by_ref: Mapping[str, Person] = field(default_factory=dict)  # canonical ref -> person

    @staticmethod
    def build(
        members: Mapping[str, Iterable[str]],
        approvers: Mapping[str, Iterable[str]],
        admins: Iterable[str] = (),
        read: ReadPolicy = "members",
        people: Iterable[Person] = (),
    ) -> Roster:
        """Entries are platform refs (`slack:U0ALICE`) or people keys (`alice`); an unknown key is a
        ValueError (the config names it first)."""
        by_key, alias = _index(people)

        def canon(entry: str) -> str:
            if ":" in entry:
                return alias.get(entry, entry)
            if entry in by_key:
                return by_key[entry].ref
            raise ValueError(f"{entry!r} is neither a person of [people] nor platform:user_id")

        def refs(entries: Iterable[str]) -> frozenset[str]:
            return frozenset(canon(e) for e in entries)

        appr = {t: refs(v) for t, v in approvers.items()}
        mem = {t: refs(v) | appr.get(t, frozenset()) for t, v in members.items()}
        for t, v in appr.items():
            mem.setdefault(t, v)
        return Roster(mem, appr, refs(admins), read, by_key, alias, {p.ref: p for p in by_key.values()})

    # ------------------------------------------------------------ identity

    def canonical_ref(self, ref: str) -> str:
        return self.aliases.get(ref, ref)

    def canonical(self, actor: Actor) -> Actor:
        """The actor as the person they are (their canonical ref and name); others unchanged."""
        ref = self.aliases.get(actor.ref)
        if ref is None or (ref == actor.ref and actor.name):
            return actor
        person = self.person_of(ref)
        platform, _, user = ref.partition(":")
        return Actor(platform, user, person.display if person else actor.name)

    def person_of(self, ref: str | None) -> Person | None:
        if not ref:
            return None
        canonical = self.aliases.get(ref)
        return self.by_ref.get(canonical) if canonical is not None else None

    def refs_of(self, ref: str) -> tuple[str, ...]:
        """Every stored form of whoever `ref` is (for SQL `IN`), the canonical one first."""
        person = self.person_of(ref)
        return person.aliases if person else (ref,)

    def same(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and self.canonical_ref(a) == self.canonical_ref(b)

    @property
    def configured(self) -> bool:
        """Whether anyone is named at all (with nobody, owners are taken as typed)."""
        return bool(self.people or any(self.members.values()) or self.admins)

    def find(self, typed: str, platform: str) -> str | None:
        """The canonical ref of the person `typed` names: a people key, an email, a name, a user id on
        `platform`, or any `platform:user_id` of theirs or of a team member. None when unknown."""
        s = typed.strip().lstrip("@").strip()
        if ":" in s:
            ref = self.canonical_ref(s)
            if ref in self.aliases or self._member(ref):
                return ref
            # The grammar writes what was typed after @ as a user of the platform it was typed on
            # (`@alice` -> `slack:alice`): the word may still be a key, an email or a name.
            where, _, s = s.partition(":")
            platform = where if where in PLATFORMS else platform
        if not s:
            return None
        folded = s.casefold()
        for p in self.people.values():
            names = (p.key, p.email or "", p.name, p.name.replace(" ", ""), p.on(platform) or "")
            if folded in (n.casefold() for n in names if n):
                return p.ref
        ref = self.canonical_ref(f"{platform}:{s}")
        return ref if self._member(ref) else None

    def _member(self, ref: str) -> bool:
        return ref in self.admins or any(ref in refs for refs in self.members.values())

    def owners(self) -> list[str]:
        """Who may be named as an owner, as people write them: people keys, then members by ref."""
        named = {p.ref for p in self.people.values()}
        refs = sorted({r for refs in self.members.values() for r in refs} - named)
        return sorted(self.people) + refs

    # ------------------------------------------------------------ permissions

    def is_admin(self, actor: Actor) -> bool:
        return actor == SYSTEM or self.canonical_ref(actor.ref) in self.admins

    def teams_of(self, actor: Actor) -> frozenset[str]:
        ref = self.canonical_ref(actor.ref)
        return frozenset(t for t, refs in self.members.items() if ref in refs)

    def in_any_team(self, actor: Actor, teams: Iterable[str]) -> bool:
        ref = self.canonical_ref(actor.ref)
        return self.is_admin(actor) or any(ref in self.members.get(t, ()) for t in teams)

    def may_approve(self, actor: Actor, team: str) -> bool:
        return self.is_admin(actor) or self.canonical_ref(actor.ref) in self.approvers.get(team, ())

    def known(self, actor: Actor) -> bool:
        return self.is_admin(actor) or bool(self.teams_of(actor))

    def may_read(self, actor: Actor) -> bool:
        return self.read == "everyone" or self.known(actor)

    def team_members(self, team: str) -> list[str]:
        return sorted(self.members.get(team, ()))
