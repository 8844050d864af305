"""The local console: one command per stdin line, replies and team-channel notifications on stdout.

Notifications print as `[#team] text`; buttons print with the typed command that presses them,
e.g. `[Approve → approve 7]`, so the whole flow (approval included) runs without a chat platform.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TextIO

from adapters.common import text as render
from adapters.common.actions import buttons_for
from adapters.common.dispatch import handle_text
from lifecycle.core import Lifecycle
from lifecycle.delivery.outbox import Delivery, Dispatcher, Posted
from lifecycle.domain.access import Actor
from lifecycle.domain.i18n import Lang
from lifecycle.domain.pipeline import Pipeline

TARGET = "console"


class ConsoleNotifier:
    """Prints each notification once per audience team, as the bot would post it in that channel."""

    target = TARGET

    def __init__(
        self, out: TextIO, pipeline: Pipeline, channels: Mapping[str, str] | None = None, lang: Lang = "en"
    ) -> None:
        self.out = out
        self.pipeline = pipeline
        self.channels = dict(channels or {})
        self.lang = lang

    def deliver(self, delivery: Delivery) -> Iterable[Posted]:
        e = delivery.event
        line = render.notification(e, self.pipeline, self.lang)
        buttons = buttons_for(e)
        if buttons:
            line += "  " + " ".join(f"[{b.label(self.lang)} → {b.typed}]" for b in buttons)
        for team in e.audience or ("stagebot",):
            self.out.write(f"[#{self.channels.get(team, team)}] {line}\n")
        self.out.flush()
        return ()


class Console:
    def __init__(
        self,
        core: Lifecycle,
        dispatcher: Dispatcher,
        *,
        actor: Actor,
        out: TextIO,
        lang: Lang = "en",
    ) -> None:
        self.core = core
        self.dispatcher = dispatcher
        self.actor = actor
        self.out = out
        self.lang = lang

    def handle(self, line: str) -> str:
        reply = handle_text(self.core, line, actor=self.actor, key=f"console:{uuid.uuid4().hex}", lang=self.lang)
        self.out.write(reply + "\n")
        self.out.flush()
        # Deliver what the command emitted right away, so replies and notifications interleave.
        self.dispatcher.drain()
        return reply

    def run(self, lines: Iterable[str], *, prompt: bool = False) -> int:
        if prompt:
            self.out.write("stagebot console — type `help`, Ctrl-D to quit.\n> ")
            self.out.flush()
        for raw in lines:
            line = raw.strip()
            if line and not line.startswith("#"):
                if line in ("quit", "exit"):
                    break
                self.handle(line)
            if prompt:
                self.out.write("> ")
                self.out.flush()
        self.dispatcher.drain()
        return 0
