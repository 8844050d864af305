"""The neutral view model every reply, notification and card is built as, before a renderer draws it.

Renderers: adapters/common/text.py (plain text), adapters/slack/blocks.py, adapters/feishu/cards.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapters.common.actions import Button

SpanKind = Literal["strong", "person", "code", "command"]
Tone = Literal["info", "ask", "handoff", "good", "bad", "figures", "quiet", "warn"]  # warn: a refusal


@dataclass(frozen=True)
class Span:
    """A piece of a line a renderer may draw specially: an account or stage name (strong), a person
    (a mention), a time (code), or a command a reader may type (command: drawn as code after the
    platform's prefix, `/stage ` on Slack)."""

    text: str  # as plain text shows it
    kind: SpanKind = "strong"
    ref: str | None = None  # a person's `platform:user` ref as stored
    refs: tuple[str, ...] = ()  # every platform ref of the person: a renderer mentions the one of its platform


Segment = str | Span
Line = tuple[Segment, ...]


@dataclass(frozen=True)
class Field:
    """A label/value pair (Slack section fields, Feishu columns, `label: value` in text)."""

    label: str
    value: Line


@dataclass(frozen=True)
class Row:
    """One item of a list: its lines, the heading of the group it is in, and buttons of its own.

    A row without lines is a group's heading alone (its items were left out). `key`: a stable id for the
    buttons' block; `tag`: what the row goes by (`#12`), for a button drawn away from its row; `beside`:
    the one button is drawn beside the row where the platform can (Slack's accessory).
    """

    lines: tuple[Line, ...]
    group: Line | None = None
    buttons: tuple[Button, ...] = ()
    key: str = ""
    tag: str = ""
    beside: bool = False


@dataclass(frozen=True)
class Card:
    """One message as what it says, not how a platform draws it.

    `compact`: a one-sentence message; chat platforms draw no header for it. `key`: a stable id of
    what the card shows (for block ids). `text`: the message as plain text (console, fallbacks).
    `lines` (or `rows`, for a list of items) are cut to what a platform's limits allow; `more` then says
    how many are left out and names `command`, which the renderer prefixes for its platform.
    """

    title: Line
    text: str
    fields: tuple[Field, ...] = ()
    lines: tuple[Line, ...] = ()
    notes: tuple[Line, ...] = ()  # small print under the body (Slack context, Feishu grey note)
    buttons: tuple[Button, ...] = ()
    more: str | None = None  # the line under a cut list: `{n}` not shown, `{shown}` shown, `{command}`
    hidden: int = 0  # rows left out before drawing (beyond text.MAX_LINES)
    newest_last: bool = False  # the lines are oldest first: a cut drops the oldest
    tone: Tone = "info"
    compact: bool = False
    table: bool = False  # the lines are a fixed-width table, drawn monospace
    lead: Line = ()  # a sentence above the lines (outside a table's monospace)
    key: str = ""
    rows: tuple[Row, ...] = ()
    command: str = ""


def strong(s: str) -> Span:
    return Span(s, "strong")


def plain(line: Line) -> str:
    """A line as plain text."""
    return "".join(s if isinstance(s, str) else s.text for s in line)


def joined(parts: list[Line], sep: str) -> Line:
    """Lines joined into one by `sep`."""
    out: list[Segment] = []
    for n, part in enumerate(parts):
        if n:
            out.append(sep)
        out += part
    return tuple(out)
