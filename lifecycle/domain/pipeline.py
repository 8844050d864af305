"""The pipeline as validated data: stages, owner teams, checklists, transitions, approval gates.

A pipeline is loaded from a built-in preset (lifecycle/presets/*.toml) or a TOML file, checked for
every structural problem at once, and then used read-only by `machine.decide` and the services.
"""

from __future__ import annotations

import re
import tomllib
from collections import deque
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle.domain.errors import PipelineError, UnknownStage
from lifecycle.domain.i18n import Lang

TransitionKind = Literal["advance", "back", "churn", "winback", "archive"]
_KEY = r"^[A-Za-z][A-Za-z0-9_]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Team(_Frozen):
    key: str = Field(pattern=_KEY)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def label(self, lang: Lang = "en") -> str:
        return self.zh if lang == "zh" else self.en


class ChecklistItem(_Frozen):
    """A "key sign" of a stage; `signal` names the product signal that ticks it automatically."""

    key: str = Field(pattern=_KEY)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    signal: str | None = Field(default=None, pattern=_KEY)

    def label(self, lang: Lang = "en") -> str:
        return self.zh if lang == "zh" else self.en


class Stage(_Frozen):
    key: str = Field(pattern=_KEY)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    phase: str = ""
    owners: tuple[str, ...] = ()
    checklist: tuple[ChecklistItem, ...] = ()
    require_checklist: bool = False
    sla_days: int | None = Field(default=None, gt=0)
    win_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    terminal: bool = False
    renewable: bool = False
    # A stage whose checklist, once complete by product signals, moves the account on by itself.
    advance_when_complete: str | None = None

    def label(self, lang: Lang = "en") -> str:
        return self.zh if lang == "zh" else self.en

    def title(self, lang: Lang = "en") -> str:
        """`P2 Testing` / `P2 测试发送`; just the label when it is the key itself."""
        lbl = self.label(lang)
        return lbl if lbl.casefold() == self.key.casefold() else f"{self.key} {lbl}"


class ApprovalGate(_Frozen):
    """The transition waits for an approver of `team`; a rejection sends the account to `reject_to`."""

    team: str
    reject_to: str | None = None


class Transition(_Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    kind: TransitionKind = "advance"
    approval: ApprovalGate | None = None


class Automation(_Frozen):
    """Something the bot does by itself: on entering `stage`, after `days` in it, or on a `signal`.

    Actions: `notify` the team (with `en`/`zh` text and an optional `link`), `assign` an owner
    (round-robin over the team's members), open a `task` for the team, or `move` to stage `to`.
    """

    key: str = Field(pattern=_KEY)
    stage: str
    on: Literal["entry", "days", "signal"]
    days: int | None = Field(default=None, gt=0)
    signal: str | None = Field(default=None, pattern=_KEY)
    action: Literal["notify", "assign", "task", "move"]
    team: str | None = None
    en: str = ""
    zh: str = ""
    link: str | None = None
    to: str | None = None


class Pipeline(_Frozen):
    key: str = Field(pattern=_KEY)
    zh: str
    en: str
    initial: str | None = None
    teams: tuple[Team, ...]
    stages: tuple[Stage, ...] = Field(min_length=1)
    transitions: tuple[Transition, ...]
    automations: tuple[Automation, ...] = ()

    def automations_for(self, stage: str, on: str) -> tuple[Automation, ...]:
        return tuple(a for a in self.automations if a.stage == stage and a.on == on)

    # ---- derived lookups (the model is frozen, so caching is safe) ----
    @cached_property
    def stage_by_key(self) -> dict[str, Stage]:
        return {s.key: s for s in self.stages}

    @cached_property
    def team_by_key(self) -> dict[str, Team]:
        return {t.key: t for t in self.teams}

    @cached_property
    def first_stage(self) -> Stage:
        return self.stage_by_key[self.initial] if self.initial else self.stages[0]

    @cached_property
    def _edges(self) -> dict[tuple[str, str], Transition]:
        return {(t.source, t.target): t for t in self.transitions}

    @cached_property
    def _out(self) -> dict[str, tuple[Transition, ...]]:
        out: dict[str, list[Transition]] = {s.key: [] for s in self.stages}
        for t in self.transitions:
            out.setdefault(t.source, []).append(t)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _labels(self) -> dict[str, Stage]:
        idx: dict[str, Stage] = {}
        for s in self.stages:
            for name in (s.key, s.zh, s.en, s.title("en"), s.title("zh")):
                idx.setdefault(_fold(name), s)
        return idx

    def stage(self, key: str) -> Stage:
        return self.stage_by_key[key]

    def transition(self, source: str, target: str) -> Transition | None:
        return self._edges.get((source, target))

    def next_stages(self, source: str) -> tuple[Transition, ...]:
        return self._out.get(source, ())

    def transition_of_kind(self, source: str, kind: TransitionKind) -> Transition | None:
        return next((t for t in self.next_stages(source) if t.kind == kind), None)

    def resolve_stage(self, ref: str) -> Stage:
        """A stage by key, zh or en label (case-insensitive), or `P2 测试发送`-style title."""
        found = self._labels.get(_fold(ref))
        if found is None:
            # `P0:签约待接入` as the seed writes it, or a label with a leading key.
            head = re.split(r"[\s:：]", ref.strip(), maxsplit=1)[0]
            found = self._labels.get(_fold(head)) if head != ref.strip() else None
        if found is None:
            raise UnknownStage(ref, [s.key for s in self.stages])
        return found

    def owner_labels(self, stage: Stage, lang: Lang = "en") -> str:
        if not stage.owners:
            return "-"
        return " + ".join(self.team_by_key[t].label(lang) for t in stage.owners)


def _fold(s: str) -> str:
    return " ".join(s.split()).casefold()


# ---------------------------------------------------------------- loading and validation


def from_mapping(data: dict[str, Any]) -> Pipeline:
    """Build a pipeline from parsed TOML, raising PipelineError with every problem found."""
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"{where}: {err['msg']}")
        # Check the structure of what did parse too, so a file is fixed in one round.
        lenient = _lenient(data)
        if lenient is not None:
            problems += [p for p in validate(lenient) if p not in problems]
        raise PipelineError(problems) from None
    problems = validate(pipeline)
    if problems:
        raise PipelineError(problems)
    return pipeline


def _lenient(data: dict[str, Any]) -> Pipeline | None:
    """A best-effort pipeline from a file that failed validation, for the structural checks.

    Items that fail on their own are kept as bare placeholders when their keys can be read, so
    references to them are not reported as unknown on top of their own errors.
    """
    if not isinstance(data, dict):
        return None

    def items(name: str) -> list[dict[str, Any]]:
        raw = data.get(name)
        return [x for x in raw if isinstance(x, dict)] if isinstance(raw, list) else []

    def text(x: dict[str, Any], key: str, default: str) -> str:
        v = x.get(key)
        return v if isinstance(v, str) and v else default

    teams = [
        Team.model_construct(key=k, zh=text(t, "zh", k), en=text(t, "en", k))
        for t in items("teams")
        if isinstance(k := t.get("key"), str)
    ]
    stages = []
    for st in items("stages"):
        key = st.get("key")
        if not isinstance(key, str):
            continue
        try:
            stages.append(Stage.model_validate(st))
        except ValidationError:
            owners = (
                tuple(o for o in st.get("owners", ()) if isinstance(o, str))
                if isinstance(st.get("owners"), list)
                else ()
            )
            stages.append(
                Stage.model_construct(
                    key=key,
                    zh=text(st, "zh", key),
                    en=text(st, "en", key),
                    owners=owners,
                    checklist=(),
                    require_checklist=False,
                    terminal=st.get("terminal") is True,
                )
            )
    transitions = []
    for t in items("transitions"):
        try:
            transitions.append(Transition.model_validate(t))
        except ValidationError:
            if isinstance(t.get("from"), str) and isinstance(t.get("to"), str):
                transitions.append(Transition.model_construct(source=t["from"], target=t["to"], kind="advance"))
    automations = []
    for a in items("automations"):
        try:
            automations.append(Automation.model_validate(a))
        except ValidationError:
            continue  # its own errors are reported by the shape check
    if not stages:
        return None
    initial = data.get("initial") if isinstance(data.get("initial"), str) else None
    return Pipeline.model_construct(
        key=text(data, "key", "pipeline"),
        zh="",
        en="",
        initial=initial,
        teams=tuple(teams),
        stages=tuple(stages),
        transitions=tuple(transitions),
        automations=tuple(automations),
    )


def validate(p: Pipeline) -> list[str]:
    """Every structural problem of a pipeline, as readable lines; empty when it is sound."""
    problems: list[str] = []
    stage_keys = [s.key for s in p.stages]
    team_keys = {t.key for t in p.teams}
    known = set(stage_keys)

    for dup in sorted({k for k in stage_keys if stage_keys.count(k) > 1}):
        problems.append(f"stage {dup} is defined more than once")
    seen_team: set[str] = set()
    for team in p.teams:
        if team.key in seen_team:
            problems.append(f"team {team.key} is defined more than once")
        seen_team.add(team.key)

    # Labels must identify one stage, since people type them.
    owner_of_label: dict[str, str] = {}
    for s in p.stages:
        for name in {_fold(s.key), _fold(s.zh), _fold(s.en)}:
            other = owner_of_label.get(name)
            if other is not None and other != s.key:
                problems.append(f'label "{name}" is used by both {other} and {s.key}')
            owner_of_label.setdefault(name, s.key)
        items = [i.key for i in s.checklist]
        for dup in sorted({k for k in items if items.count(k) > 1}):
            problems.append(f"stage {s.key}: checklist item {dup} is listed more than once")
        for owner in s.owners:
            if owner not in team_keys:
                problems.append(f"stage {s.key}: unknown owner team {owner}")
        if s.require_checklist and not s.checklist:
            problems.append(f"stage {s.key}: require_checklist is set but the checklist is empty")

    if p.initial is not None and p.initial not in known:
        problems.append(f"initial stage {p.initial} is not a stage")

    edges: set[tuple[str, str]] = set()
    for t in p.transitions:
        label = f"transition {t.source} -> {t.target}"
        for end in (t.source, t.target):
            if end not in known:
                problems.append(f"{label}: unknown stage {end}")
        if (t.source, t.target) in edges:
            problems.append(f"{label} is listed more than once")
        edges.add((t.source, t.target))
        if t.source == t.target:
            problems.append(f"{label}: a stage cannot move to itself (record renewals as events)")
        if t.approval is not None:
            if t.approval.team not in team_keys:
                problems.append(f"{label}: unknown approver team {t.approval.team}")
            rt = t.approval.reject_to
            if rt is not None and rt not in known:
                problems.append(f"{label}: reject_to names unknown stage {rt}")
            elif rt is not None and (t.source, rt) not in {(x.source, x.target) for x in p.transitions}:
                problems.append(f"{label}: reject_to {rt} is not an allowed move from {t.source}")

    outgoing = {k: [t for t in p.transitions if t.source == k] for k in known}
    for s in p.stages:
        if s.terminal and outgoing.get(s.key):
            problems.append(f"stage {s.key} is terminal but has moves out of it")
        if not s.terminal and not outgoing.get(s.key):
            problems.append(f"stage {s.key} is a dead end: no moves out and not marked terminal")
        if s.advance_when_complete is not None:
            edge = next((t for t in outgoing.get(s.key, []) if t.target == s.advance_when_complete), None)
            if edge is None:
                problems.append(
                    f"stage {s.key}: advance_when_complete {s.advance_when_complete} is not an allowed move from it"
                )
            elif edge.approval is not None:
                problems.append(
                    f"stage {s.key}: advance_when_complete {edge.target} needs an approval; it cannot be automatic"
                )
            if not s.checklist:
                problems.append(f"stage {s.key}: advance_when_complete is set but the checklist is empty")

    seen_auto: set[str] = set()
    for a in p.automations:
        where = f"automation {a.key}"
        if a.key in seen_auto:
            problems.append(f"{where} is defined more than once")
        seen_auto.add(a.key)
        if a.stage not in known:
            problems.append(f"{where}: unknown stage {a.stage}")
        if a.team is not None and a.team not in {t.key for t in p.teams}:
            problems.append(f"{where}: unknown team {a.team}")
        if (a.on == "days") != (a.days is not None):
            problems.append(f'{where}: `days` goes with on = "days" (and only with it)')
        if (a.on == "signal") != (a.signal is not None):
            problems.append(f'{where}: `signal` goes with on = "signal" (and only with it)')
        if a.action in ("notify", "task") and not (a.en and a.zh):
            problems.append(f"{where}: a {a.action} needs its text in `en` and `zh`")
        if a.action == "assign" and a.team is None:
            problems.append(f"{where}: assign needs the `team` whose members take turns")
        if a.action == "move":
            if a.on == "entry":
                problems.append(f"{where}: a move on entry would chain stages; use days or signal")
            edge = next((t for t in outgoing.get(a.stage, []) if t.target == a.to), None)
            if edge is None:
                problems.append(f"{where}: move to {a.to} is not an allowed move from {a.stage}")
            elif edge.approval is not None:
                problems.append(f"{where}: move to {a.to} needs an approval; it cannot be automatic")
        elif a.to is not None:
            problems.append(f'{where}: `to` goes with action = "move" only')
    if p.initial is None or p.initial in known:
        start = p.initial or p.stages[0].key
        reached = {start}
        queue = deque([start])
        while queue:
            cur = queue.popleft()
            for t in outgoing.get(cur, []):
                if t.target in known and t.target not in reached:
                    reached.add(t.target)
                    queue.append(t.target)
        for s in p.stages:
            if s.key not in reached:
                problems.append(f"stage {s.key} cannot be reached from {start}")
    return problems


PRESETS = ("default", "aarrr", "journey")


def load_preset(name: str) -> Pipeline:
    """A built-in pipeline: `default` (seed 000), `aarrr` (seed 003), `journey` (seed 004)."""
    if name not in PRESETS:
        raise PipelineError([f'unknown preset "{name}"; presets: {", ".join(PRESETS)}'])
    raw = resources.files("lifecycle.presets").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return from_mapping(tomllib.loads(raw))


def load_file(path: str | Path) -> Pipeline:
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineError([f"cannot read pipeline file {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise PipelineError([f"{path}: not a UTF-8 text file"]) from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError([f"{path}: not valid TOML: {exc}"]) from None
    return from_mapping(data)


def load(spec: str) -> Pipeline:
    """A preset name, or a path to a TOML file (anything ending in .toml or containing a slash)."""
    if spec.endswith(".toml") or "/" in spec:
        return load_file(spec)
    return load_preset(spec)
