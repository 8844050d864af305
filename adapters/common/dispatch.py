"""Text in, text out: parse a command line, run it on the core, render the answer.

Shared by the console and by the text replies of the chat adapters, so every platform answers the
same line the same way.
"""

from __future__ import annotations

from adapters.common import text as render
from adapters.common.errors import user_message
from adapters.common.grammar import Help, Report, help_text, parse
from lifecycle import commands as c
from lifecycle.access import Actor
from lifecycle.core import Lifecycle
from lifecycle.errors import UnknownStage
from lifecycle.i18n import Lang
from lifecycle.views import AccountCard, AccountList, ApprovalList, History, Outcome, ReadModel


def is_stage_of(core: Lifecycle):
    def is_stage(word: str) -> bool:
        try:
            core.pipeline.resolve_stage(word)
        except UnknownStage:
            return False
        return True

    return is_stage


def render_answer(answer: Outcome | ReadModel, core: Lifecycle, lang: Lang) -> str:
    p = core.pipeline
    if isinstance(answer, Outcome):
        return render.outcome(answer, p, lang)
    if isinstance(answer, AccountCard):
        return render.card(answer, p, lang)
    if isinstance(answer, History):
        return render.history(answer, p, lang)
    if isinstance(answer, AccountList):
        return render.account_list(answer, p, lang)
    if isinstance(answer, ApprovalList):
        return render.approval_list(answer, p, lang)
    raise AssertionError(f"no text rendering for {type(answer).__name__}")  # pragma: no cover


def run_command(obj: c.Command | c.Query, core: Lifecycle) -> Outcome | ReadModel:
    return core.execute(obj) if isinstance(obj, c.Command) else core.ask(obj)


def handle_text(core: Lifecycle, line: str, *, actor: Actor, key: str, via: str = "", lang: Lang = "en") -> str:
    """The reply to one command line; never raises for bad input."""
    try:
        parsed = parse(line, actor=actor, key=key, via=via, is_stage=is_stage_of(core))
        if isinstance(parsed, Help):
            return help_text(parsed.topic, lang)
        if isinstance(parsed, Report):
            return (
                "报表功能尚未在此版本中提供。"
                if lang == "zh"
                else "Reports (funnel, time in stage, forecast) are not available in this version yet."
            )
        return render_answer(run_command(parsed, core), core, lang)
    except Exception as exc:  # the boundary: known errors as messages, bugs as a ref id
        return user_message(exc, lang, context=f"command from {actor.ref}")
