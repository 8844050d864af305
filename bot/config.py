"""Configuration: one TOML file plus environment variables for secrets, validated in one place.

Where the file comes from: `--config PATH`, else `$STAGEBOT_CONFIG`, else `./stagebot.toml` if it
exists, else built-in defaults (SQLite at ./stagebot.db, the default pipeline). Every problem is
collected and reported at once. Secret values are read from the environment and never printed.

Relative paths written in a config file (the SQLite database, a pipeline file) are relative to that
file's directory, so `stagebot` finds the same database from any directory. The built-in default
and `$STAGEBOT_DATABASE_URL` are not in a file: their relative paths are relative to the current
directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from lifecycle.domain import crm_maps
from lifecycle.domain.access import Person, Roster
from lifecycle.domain.errors import PipelineError
from lifecycle.domain.pipeline import Pipeline, load
from lifecycle.usecases.scheduling import Schedule

USER_REF = re.compile(r"^(slack|feishu|console):[A-Za-z0-9_.\-]+$")
PERSON_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\".]+$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
FEISHU_USER = re.compile(r"^ou_[A-Za-z0-9_\-]{1,100}$")
SLACK_SECRETS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
FEISHU_SECRETS = ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY")
SECRET_NAMES = (*SLACK_SECRETS, "SLACK_APP_TOKEN", *FEISHU_SECRETS, "STAGEBOT_API_TOKEN")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSection(_Section):
    url: str = "sqlite:///stagebot.db"


class ServerSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (logged at start)
    # Request threads. Much of a request's time is waiting for the database's commit: with too few
    # threads, one slow disk flush holds them all and every request queues behind it (measured:
    # p99 95-430 ms with 16 threads, 34-57 ms with 32, bench/bench_load.py). Each holds at most one
    # database connection (the pool has room for 32 + 8).
    threads: int = Field(default=32, ge=1, le=256)
    # Connections held open at once, idle and slow ones included. When they are all taken, new
    # ones (GET /healthz too) wait in the kernel's listen backlog, so this is well above what
    # Slack and Feishu need; each is a file descriptor, and serve raises its open-file limit to fit.
    connection_limit: int = Field(default=1000, ge=10, le=10_000, strict=True)
    # Seconds a client may take: a connection with nothing arriving for this long is closed, and a
    # request must arrive whole (headers and body) within this long of its first byte, however
    # slowly it trickles. Behind a load balancer that keeps idle connections open, set it above
    # the balancer's idle timeout (AWS ALB: 60 s).
    channel_timeout: int = Field(default=30, ge=1, le=3600, strict=True)
    # The largest request body taken, in bytes: a bigger one is answered 413 as soon as its
    # Content-Length is read, before any of it is (a chunked one once what arrived passes the
    # limit, chunk framing included). Slack and Feishu payloads are a few kB, big modals tens of kB.
    max_body_bytes: int = Field(default=1_000_000, ge=65_536, le=100_000_000, strict=True)


class SlackSection(_Section):
    enabled: bool = False
    command: str = Field(default="/stage", pattern=r"^/[a-z0-9_\-]{1,31}$")
    api_url: str = "https://slack.com/api/"


class FeishuSection(_Section):
    enabled: bool = False
    mode: Literal["webhook", "websocket"] = "webhook"
    domain: str = "https://open.feishu.cn"
    # Long connection: reconnect when no frame (event or pong) has arrived for this long.
    liveness_seconds: float = Field(default=360.0, ge=1.0)

    @field_validator("domain")
    @classmethod
    def _origin(cls, v: str) -> str:
        from urllib.parse import urlsplit

        u = urlsplit(v)
        local = u.hostname in ("localhost", "127.0.0.1", "::1")
        if u.scheme not in ("https", "http") or (u.scheme == "http" and not local) or not u.hostname:
            raise ValueError("use https://open.feishu.cn, https://open.larksuite.com (Lark) or another https origin")
        if u.path not in ("", "/") or u.query or u.username:
            raise ValueError("give only the origin (scheme, host and port), no path or query")
        return v.rstrip("/")


class SchedulerSection(_Section):
    enabled: bool = True
    timezone: str = "Asia/Shanghai"
    tick_seconds: int = Field(default=60, ge=1)  # how often `serve` asks what is due
    sla_repeat_days: int = Field(default=3, ge=1)
    handoff_escalate_hours: int = Field(default=24, ge=1)
    renewal_days: list[int] = [90, 60, 30]
    working_days: list[int] = [1, 2, 3, 4, 5]  # ISO weekdays (1 = Monday)
    working_hours: tuple[int, int] = (9, 19)  # local hours, [start, end)

    @field_validator("renewal_days")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if any(d <= 0 for d in v):
            raise ValueError("renewal reminders are days before the contract end: positive numbers")
        return sorted(set(v), reverse=True)

    @field_validator("working_days")
    @classmethod
    def _weekdays(cls, v: list[int]) -> list[int]:
        if not v or any(d < 1 or d > 7 for d in v):
            raise ValueError("ISO weekdays 1 (Monday) to 7 (Sunday), at least one")
        return v

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (0 <= v[0] < v[1] <= 24):
            raise ValueError("[start, end) local hours with 0 <= start < end <= 24, e.g. [9, 19]")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like Asia/Shanghai)") from None
        return v


class SignalsSection(_Section):
    # Usage signals are recorded for churn risk; a checklist item's `signal` names the others.
    usage: list[str] = ["daily_send_volume"]
    churn_risk_days: int = Field(default=7, ge=1)


class PipelineSection(_Section):
    preset: str = "default"


class ImportSection(_Section):
    # CRM stage values onto stage keys, over the built-in HubSpot and Salesforce maps:
    # [import.stage_map] "Closed Won" = "P0". Matched case-insensitively; checked against the pipeline.
    stage_map: dict[str, str] = {}


def _people(v: list[str]) -> list[str]:
    bad = [r for r in v if not (USER_REF.match(r) or PERSON_KEY.match(r))]
    if bad:
        raise ValueError(
            f"write people as a key of [people] (alice) or platform:user_id (slack:U0ALICE, feishu:ou_xxx); got {bad}"
        )
    return v


class PersonSection(_Section):
    """One person of the directory: `[people.alice]`. Teams name them by key."""

    name: str = Field(default="", max_length=100)
    email: str | None = None
    slack: str | None = None  # Slack user id (U…/W…): profile, ⋮, Copy member ID
    feishu: str | None = None  # Feishu open_id of the bot's app (ou_…)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not EMAIL.match(v):
            raise ValueError(f"{v!r} is not an email address (name@example.com)")
        return v

    @field_validator("slack")
    @classmethod
    def _slack(cls, v: str | None) -> str | None:
        if v is not None and not SLACK_USER.match(v):
            raise ValueError(f"{v!r} is not a Slack user id (U0ALICE: U or W, then capitals and digits)")
        return v

    @field_validator("feishu")
    @classmethod
    def _feishu(cls, v: str | None) -> str | None:
        if v is not None and not FEISHU_USER.match(v):
            raise ValueError(f"{v!r} is not a Feishu open_id (ou_…)")
        return v

    def person(self, key: str) -> Person:
        return Person.build(key, self.name, self.email, slack=self.slack, feishu=self.feishu)


class TeamSection(_Section):
    slack_channel: str | None = None
    feishu_chat: str | None = None
    members: list[str] = []
    approvers: list[str] = []

    _check_people = field_validator("members", "approvers")(_people)


class AccessSection(_Section):
    admins: list[str] = []
    # Who may see accounts, history and reports: people in a team (and admins), or anyone who can
    # reach the bot. People in no team are told how to be added.
    read: Literal["members", "everyone"] = "members"

    _check_people = field_validator("admins")(_people)


class BotSection(_Section):
    language: Literal["en", "zh"] = "en"


class LoggingSection(_Section):
    # STAGEBOT_LOG_FORMAT / STAGEBOT_LOG_LEVEL in the environment win (handy in a systemd unit).
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "warning"


class Config(_Section):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    database: DatabaseSection = DatabaseSection()
    server: ServerSection = ServerSection()
    slack: SlackSection = SlackSection()
    feishu: FeishuSection = FeishuSection()
    scheduler: SchedulerSection = SchedulerSection()
    signals: SignalsSection = SignalsSection()
    pipeline: PipelineSection = PipelineSection()
    people: dict[str, PersonSection] = {}
    import_: ImportSection = Field(default=ImportSection(), alias="import")  # `import` is a keyword
    teams: dict[str, TeamSection] = {}
    access: AccessSection = AccessSection()
    bot: BotSection = BotSection()
    logging: LoggingSection = LoggingSection()


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Settings:
    """The validated configuration with its pipeline, roster and where it came from."""

    config: Config
    pipeline: Pipeline
    source: str
    env: Mapping[str, str] = field(repr=False, default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Problems `check-config` fails on that `serve` and `console` still run with: a team that owns
    # stages but has no channel on an enabled platform (its notifications there are dropped).
    channel_problems: list[str] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.env.get("STAGEBOT_DATABASE_URL") or self.config.database.url

    @property
    def database_url_safe(self) -> str:
        return make_url(self.database_url).render_as_string(hide_password=True)

    def roster(self, *, extra_admins: tuple[str, ...] = ()) -> Roster:
        teams = self.config.teams
        return Roster.build(
            members={k: t.members for k, t in teams.items()},
            approvers={k: t.approvers for k, t in teams.items()},
            admins=[*self.config.access.admins, *extra_admins],
            read=self.config.access.read,
            people=self.people(),
        )

    def people(self) -> list[Person]:
        return [p.person(key) for key, p in self.config.people.items()]

    def schedule(self) -> Schedule:
        sc = self.config.scheduler
        return Schedule(
            sla_repeat_days=sc.sla_repeat_days,
            handoff_escalate_hours=sc.handoff_escalate_hours,
            renewal_days=tuple(sc.renewal_days),
            timezone=sc.timezone,
            working_days=tuple(sc.working_days),
            working_hours=sc.working_hours,
            churn_risk_days=self.config.signals.churn_risk_days,
        )

    def secret(self, name: str) -> str | None:
        return self.env.get(name) or None

    def secrets(self) -> list[str]:
        """Every secret value configured (for masking in logs): tokens, and the database password."""
        values = [v for n in SECRET_NAMES if (v := self.secret(n))]
        password = make_url(self.database_url).password
        return [*values, str(password)] if password else values

    @property
    def log_format(self) -> str:
        fmt = (self.env.get("STAGEBOT_LOG_FORMAT") or self.config.logging.format).lower()
        return fmt if fmt in ("text", "json") else "text"

    @property
    def log_level(self) -> str:
        level = (self.env.get("STAGEBOT_LOG_LEVEL") or self.config.logging.level).lower()
        return level if level in ("debug", "info", "warning", "error") else "warning"

    def channels(self, platform: Literal["slack", "feishu"]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, team in self.config.teams.items():
            ch = team.slack_channel if platform == "slack" else team.feishu_chat
            if ch:
                out[key] = ch
        return out


_FIELD_OF_SECTION = {f.alias: n for n, f in Config.model_fields.items() if f.alias}


def _validate_sections(data: dict[str, Any], problems: list[str]) -> Config:
    """Validate each section on its own so one bad section does not hide the others' problems."""
    good: dict[str, Any] = {}
    for name, value in data.items():
        f = Config.model_fields.get(_FIELD_OF_SECTION.get(name, name))
        if f is None or f.annotation is None:
            problems.append(f"[{name}] unknown section")
            continue
        try:
            good[name] = TypeAdapter(f.annotation).validate_python(value)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in (name, *err["loc"]))
                msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"[{where}] {msg}")
    return Config.model_validate(good)


def _check_people(config: Config, problems: list[str], warnings: list[str]) -> None:
    """The people directory against itself and the teams: keys that name nobody, an account or an
    email claimed by two people, people nobody can reach on a chat platform."""
    people = config.people
    for key in people:
        if not PERSON_KEY.match(key):
            problems.append(f"[people.{key}] a person's key is letters, digits, _ . - (e.g. alice)")
    named = [
        (f"[teams.{t}.{field}]", entry)
        for t, team in config.teams.items()
        for field, entries in (("members", team.members), ("approvers", team.approvers))
        for entry in entries
    ] + [("[access.admins]", entry) for entry in config.access.admins]
    for where, entry in named:
        if ":" not in entry and entry not in people:
            known = ", ".join(sorted(people)) or "none yet; add [people.KEY] sections"
            problems.append(f"{where} {entry!r} is not a person of [people] (people: {known})")
    owners: dict[str, list[str]] = {}
    for key, p in people.items():
        for platform, uid in (("slack", p.slack), ("feishu", p.feishu)):
            if uid:
                owners.setdefault(f"{platform}:{uid}", []).append(key)
        if p.email:
            owners.setdefault(f"email:{p.email.casefold()}", []).append(key)
        if not p.slack and not p.feishu:
            warnings.append(
                f"[people.{key}] has no slack or feishu id: they cannot use the bot (they can still own "
                "accounts, named by key or email)"
            )
    for ref, keys in owners.items():
        if len(keys) > 1:
            kind, _, value = ref.partition(":")
            what = "email" if kind == "email" else f"{kind} id"
            problems.append(f"[people] {what} {value} belongs to more than one person: {', '.join(keys)}")


def anchor_sqlite_url(url: str, base: Path) -> str:
    """`url` with a relative SQLite file path made absolute against `base` (a config file's
    directory). Anything else is returned as written: other databases, absolute paths, memory
    (`sqlite://`, `sqlite:///:memory:`), `file:` URIs, and what is not a URL (reported elsewhere)."""
    try:
        u = make_url(url)
    except ArgumentError:
        return url
    db = u.database
    if u.get_backend_name() != "sqlite" or db in (None, "", ":memory:") or db.startswith("file:"):
        return url
    if Path(db).is_absolute():
        return url
    return u.set(database=str(base.resolve() / db)).render_as_string(hide_password=False)


def find_config_path(explicit: str | None, env: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get("STAGEBOT_CONFIG"):
        return Path(env["STAGEBOT_CONFIG"])
    local = (cwd or Path.cwd()) / "stagebot.toml"
    return local if local.exists() else None


def load_settings(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and cross-check everything; ConfigError lists every problem found."""
    env = dict(os.environ if env is None else env)
    path = find_config_path(explicit, env)
    problems: list[str] = []
    data: dict[str, Any] = {}
    source = "built-in defaults (no config file)"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file {path} does not exist"]) from None
        except OSError as exc:
            raise ConfigError([f"cannot read config file {path}: {exc.strerror}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    config = _validate_sections(data, problems)
    if path is not None:  # relative to the config file; the built-in default stays relative to the cwd
        url = anchor_sqlite_url(config.database.url, path.parent)
        config.database = config.database.model_copy(update={"url": url})

    preset = config.pipeline.preset
    if (preset.endswith(".toml") or "/" in preset) and path is not None and not Path(preset).is_absolute():
        preset = str(path.parent / preset)  # a pipeline file sits next to the config that names it
    pipeline: Pipeline | None = None
    try:
        pipeline = load(preset)
    except PipelineError as exc:
        problems += [f"[pipeline] {p}" for p in exc.problems]

    url = env.get("STAGEBOT_DATABASE_URL") or config.database.url
    try:
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            problems.append(f"[database] url: {backend} is not supported; use sqlite:/// or postgresql+psycopg://")
    except ArgumentError:
        problems.append("[database] url: not a database URL (e.g. sqlite:///stagebot.db)")

    warnings: list[str] = []
    channel_problems: list[str] = []
    if pipeline is not None:
        known = set(pipeline.team_by_key)
        owning = {o for stage in pipeline.stages for o in stage.owners}
        for key, team in config.teams.items():
            if key not in known:
                problems.append(f"[teams.{key}] is not a team of the pipeline; teams: {', '.join(sorted(known))}")
            for enabled, name, setting, channel in (
                (config.slack.enabled, "Slack", "slack_channel", team.slack_channel),
                (config.feishu.enabled, "Feishu", "feishu_chat", team.feishu_chat),
            ):
                if not enabled or channel:
                    continue
                if key in owning:
                    channel_problems.append(
                        f"[teams.{key}] has no {setting}: {name} notifications of its stages have nowhere to go; "
                        f"set {setting} in [teams.{key}]"
                    )
                else:
                    warnings.append(
                        f"[teams.{key}] has no {setting} (it owns no stage of the pipeline); "
                        f"set {setting} in [teams.{key}] if it should get {name} notifications"
                    )
        problems += crm_maps.config_problems(pipeline, config.import_.stage_map)
        gated = {t.approval.team for t in pipeline.transitions if t.approval is not None}
        for gate_team in sorted(gated):
            if not config.teams.get(gate_team, TeamSection()).approvers and not config.access.admins and config.teams:
                warnings.append(
                    f"[teams.{gate_team}] has no approvers: its approval gates can only be decided by admins"
                )
    _check_people(config, problems, warnings)
    if config.slack.enabled:
        # Socket Mode (SLACK_APP_TOKEN set) receives over a WebSocket: no request signatures to check.
        needed = ("SLACK_BOT_TOKEN",) if env.get("SLACK_APP_TOKEN") else SLACK_SECRETS
        problems += [f"[slack] enabled, but the environment variable {n} is not set" for n in needed if not env.get(n)]
    if config.feishu.enabled:
        problems += [
            f"[feishu] enabled, but the environment variable {n} is not set" for n in FEISHU_SECRETS if not env.get(n)
        ]
    if problems or pipeline is None:
        raise ConfigError(problems)
    return Settings(
        config=config,
        pipeline=pipeline,
        source=source,
        env=env,
        warnings=warnings,
        channel_problems=channel_problems,
    )
