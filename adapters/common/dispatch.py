"""One command line in, one answer out: parse, run on the core, and catch every error.

Every platform calls `answer(...)` and renders what comes back in its own way (console text,
Slack Block Kit, Feishu cards), so the same line gets the same answer everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.common import telemetry
from adapters.common import text as render
from adapters.common.errors import user_text
from adapters.common.grammar import Help, help_text, parse
from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import LifecycleError, UnknownStage
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    ApprovalList,
    HandoffList,
    History,
    Outcome,
    ReadModel,
    Report,
    TaskList,
)


@dataclass(frozen=True)
class Failure:
    """The command was refused or failed; `message` (in the asked language) is safe to show as is."""

    message: str
    text: Text | None = None  # both languages, for platforms whose readers pick their own


@dataclass(frozen=True)
class NotAvailable:
    """A command this version does not provide yet (`report`)."""

    message: str
    text: Text | None = None


Answer = Outcome | ReadModel | Help | NotAvailable | Failure


def is_stage_of(core: Lifecycle) -> Callable[[str], bool]:
    def is_stage(word: str) -> bool:
        try:
            core.pipeline.resolve_stage(word)
        except UnknownStage:
            return False
        return True

    return is_stage


def is_account_of(core: Lifecycle, actor: Actor) -> Callable[[str], bool] | None:
    """Exact account names, for the grammar to split `churn Pied Piper lost to competitor`; None for
    someone who may not read accounts (the split would tell them which names exist).

    The grammar asks about the longest run of words first, then shorter ones of the same words; the
    first question looks all of them up in one query, and the rest are answered from it."""
    if not core.rules.roster.may_read(actor):
        return None
    asked: set[str] = set()
    known: set[str] = set()

    def is_account(name: str) -> bool:
        if name not in asked:
            words = name.split(" ")
            prefixes = {" ".join(words[:n]) for n in range(1, len(words) + 1)}
            known.update(core.account_names_among(prefixes))
            asked.update(prefixes)
        return name in known

    return is_account


def asks_for_report(core: Lifecycle, line: str, actor: Actor) -> bool:
    """Whether the line asks for the report, the one command that reads the whole history (most
    of a second over a million rows): adapters with a reply deadline run it off the request thread.
    A line that does not parse is not a report; `answer` explains what is wrong with it."""
    try:
        return isinstance(parse(line, actor=actor, key="-", is_stage=is_stage_of(core)), c.ShowReport)
    except Exception:
        return False


def run_command(obj: c.Command | c.Query, core: Lifecycle) -> Outcome | ReadModel:
    return core.execute(obj) if isinstance(obj, c.Command) else core.ask(obj)


def answer(core: Lifecycle, line: str, *, actor: Actor, key: str, via: str = "", lang: Lang = "en") -> Answer:
    """The answer to one command line; never raises for bad input."""
    try:
        parsed = parse(
            line, actor=actor, key=key, via=via, is_stage=is_stage_of(core), is_account=is_account_of(core, actor)
        )
        if isinstance(parsed, Help):
            help_text(parsed.topic, lang)  # raises UsageError for an unknown topic
            telemetry.answered(via, "command", parsed)
            return parsed
        result = run_command(parsed, core)
    except Exception as exc:  # the boundary: known errors as messages, bugs as a ref id
        t = user_text(exc, context=f"command from {actor.ref}")
        telemetry.answered(via, "command", None, failed=True, bug=not isinstance(exc, LifecycleError))
        return Failure(t(lang), t)
    telemetry.answered(via, "command", result)
    return result


def render_text(ans: Answer, core: Lifecycle, lang: Lang = "en") -> str:
    p = core.pipeline
    if isinstance(ans, Failure | NotAvailable):
        return ans.message
    if isinstance(ans, Help):
        return help_text(ans.topic, lang)
    if isinstance(ans, Outcome):
        return render.outcome(ans, p, lang)
    if isinstance(ans, AccountCard):
        return render.card(ans, p, lang)
    if isinstance(ans, History):
        return render.history(ans, p, lang)
    if isinstance(ans, AccountList):
        return render.account_list(ans, p, lang)
    if isinstance(ans, ApprovalList):
        return render.approval_list(ans, p, lang)
    if isinstance(ans, HandoffList):
        return render.handoff_list(ans, p, lang)
    if isinstance(ans, TaskList):
        return render.task_list(ans, p, lang)
    if isinstance(ans, Report):
        return render.report(ans, p, lang)
    raise AssertionError(f"no text rendering for {type(ans).__name__}")  # pragma: no cover


def handle_text(core: Lifecycle, line: str, *, actor: Actor, key: str, via: str = "", lang: Lang = "en") -> str:
    """The plain-text reply to one command line (the console's whole job)."""
    return render_text(answer(core, line, actor=actor, key=key, via=via, lang=lang), core, lang)
