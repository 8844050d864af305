"""Slack rendering: Block Kit messages and the App Home view for outcomes, read models and events.

Pure functions over slack_sdk's Block Kit models; the plain-text fallback always comes from
adapters/common/text.py and the button values from adapters/common/actions.py.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from adapters.common import text as tx
from adapters.common import views
from adapters.common.actions import Button, encode
from adapters.common.view import Card, Line, Row, Segment
from lifecycle.domain import events as ev
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    AccountView,
    ApprovalList,
    ApprovalView,
    HandoffList,
    HandoffView,
    History,
    Outcome,
    Report,
    TaskList,
)

# Block Kit limits (research/platform-limits.md), all in this one table. The builders below cut
# their texts to them at natural places (whole lines, whole entities); fit() then holds every
# rendered message and view to them, whatever a builder did, before it leaves this module.
MAX_BLOCKS = 50  # per message
MAX_VIEW_BLOCKS = 100  # per Home tab
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
ID_TEXT = 255  # block_id, action_id
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
# The text of all of a message's blocks together. Slack answers chat.postMessage with
# msg_blocks_too_long somewhere around 12,000-13,300 characters (undocumented; slackapi/bolt-js
# #2509, #2867), and nobody knows the count for a response_url or chat.postEphemeral, so every
# message keeps below it. Lists budget LIST_TEXT for their items, leaving room for header and notes.
MESSAGE_TEXT = 11_000
LIST_TEXT = MESSAGE_TEXT - 1_000
# views.publish answers view_too_large for a view over 250 kB (its method reference). slack_sdk
# sends JSON with \u escapes, 6 bytes per UTF-16 unit of non-ASCII text, so the Home's text is
# budgeted in those units with room to spare for the blocks' own structure.
VIEW_TEXT = 30_000
FALLBACK_TEXT = 4000  # Slack's advice for the top-level `text`; it hard-truncates at 40,000
NAME_IN_LINE = 200  # an account name inside a list line; the card header shows the rest
MAX_ITEMS = tx.MAX_LINES  # accounts, approvals or history lines per reply, as on every platform

COMMAND = "/stage "  # what a command a reader may type starts with on Slack

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


@dataclass(frozen=True)
class SlackMessage:
    """What chat.postMessage / respond / chat.update take: a fallback `text` and the `blocks`."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- text helpers


def escape(s: str) -> str:
    """User text made inert for mrkdwn: `<!channel>` shows as text and pings nobody."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def size(s: str) -> int:
    """A text's length as Slack's limits count it, erring on the safe side. Slack documents its
    limits in characters; counted as JavaScript would (UTF-16 code units) an emoji outside the
    Basic Multilingual Plane is 2, so that is how it is counted here. Bytes do not matter."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


def _head(s: str, units: int) -> str:
    """The longest start of `s` of at most `units` UTF-16 code units."""
    if s.isascii():
        return s[:units]
    n = 0
    for i, ch in enumerate(s):
        n += 2 if ord(ch) > 0xFFFF else 1
        if n > units:
            return s[:i]
    return s


def clip(s: str, limit: int) -> str:
    """`s` cut to `limit` characters with an ellipsis, never through an entity or a <…> token."""
    if size(s) <= limit:
        return s
    cut = _head(s, limit - 1)
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut + "…"


def mention(ref: str | None, refs: tuple[str, ...] = (), text: str | None = None) -> str:
    """A person as a <@U0ALICE> mention when they have a Slack account (`ref` or one of `refs`),
    else as escaped plain text: their name, never another platform's id."""
    for r in (ref, *refs) if ref else refs:
        platform, _, user = r.partition(":")
        if platform == "slack" and _SLACK_USER.fullmatch(user):
            return f"<@{user}>"
    return escape(text if text is not None else tx.person(ref))


def _name(s: str, limit: int = NAME_IN_LINE) -> str:
    return escape(clip(s, limit))


def _bold(s: str) -> str:
    # mrkdwn bold breaks on surrounding spaces or an inner asterisk; show such names plain.
    return f"*{s}*" if s and s == s.strip() and "*" not in s else s


def _stage(p: Pipeline, key: str | None, lang: Lang) -> str:
    return escape(tx.stage_title(p, key, lang))


def _team(p: Pipeline, key: str, lang: Lang) -> str:
    return escape(tx.team_label(p, key, lang))


def _fallback(s: str) -> str:
    # The top-level text is mrkdwn too, so it is escaped like the blocks.
    text = clip(escape(s), FALLBACK_TEXT)
    return text if text.strip() else "-"  # a blank fallback shows as an empty notification


# ---------------------------------------------------------------- block builders


def _md(s: str, limit: int = SECTION_TEXT) -> MarkdownTextObject:
    # verbatim: no auto-linking of channel names or bare @mentions in what users typed.
    return MarkdownTextObject(text=clip(s, limit) or "-", verbatim=True)


def _plain(s: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=clip(" ".join(s.split()), limit) or "-", emoji=True)


def _section(s: str, *, block_id: str | None = None, accessory: ButtonElement | None = None) -> SectionBlock:
    return SectionBlock(text=_md(s), block_id=block_id, accessory=accessory)


def _fields(pairs: Iterable[tuple[str, str]]) -> SectionBlock:
    items = [_md(f"*{k}*\n{v}", FIELD_TEXT) for k, v in pairs][:MAX_FIELDS]
    return SectionBlock(fields=items)


def _context(lines: Sequence[str]) -> ContextBlock:
    return ContextBlock(elements=[_md("\n".join(lines), CONTEXT_TEXT)])


def _header(s: str) -> HeaderBlock:
    return HeaderBlock(text=_plain(s, HEADER_TEXT))


def _button(b: Button, lang: Lang) -> ButtonElement:
    confirm = None
    if b.confirm is not None:
        confirm = ConfirmObject(
            title=_plain(_CONFIRM_TITLE(lang), CONFIRM_TITLE),
            text=_plain(b.confirm(lang), CONFIRM_TEXT),
            confirm=_plain(b.label(lang), CONFIRM_BUTTON),
            deny=_plain(_CANCEL(lang), CONFIRM_BUTTON),
            style="danger" if b.style == "danger" else None,
        )
    return ButtonElement(
        text=_plain(b.label(lang), BUTTON_TEXT),
        action_id=_action_id(b.value),
        value=encode(b.value),
        style=None if b.style == "default" else b.style,
        confirm=confirm,
    )


def _action_id(value: dict[str, Any]) -> str:
    """`stagebot:<op>`, which app.py's listener routes by its prefix; the two snooze buttons of an SLA
    reminder share a block, and Slack refuses a block whose elements repeat an action_id."""
    if value.get("op") == "snooze":
        return f"stagebot:snooze:{value.get('days')}d"
    return f"stagebot:{value['op']}"


def _actions(buttons: Sequence[Button], lang: Lang, block_id: str) -> ActionsBlock:
    return ActionsBlock(block_id=block_id[:ID_TEXT], elements=[_button(b, lang) for b in buttons])


def _dicts(blocks: Iterable[Block]) -> list[dict[str, Any]]:
    return fit([b.to_dict() for b in blocks], MAX_BLOCKS, MESSAGE_TEXT)  # to_dict() runs the SDK's validators


def text_size(obj: Any) -> int:
    """The summed size of every text object in a block tree (dicts or SDK models)."""
    if isinstance(obj, Block):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        own = (
            size(obj["text"]) if obj.get("type") in ("plain_text", "mrkdwn") and isinstance(obj.get("text"), str) else 0
        )
        return own + sum(text_size(v) for k, v in obj.items() if isinstance(v, dict | list))
    if isinstance(obj, list):
        return sum(text_size(v) for v in obj)
    return 0


# ---------------------------------------------------------------- fit to Block Kit limits


def _fit_text(obj: dict[str, Any], limit: int) -> None:
    obj["text"] = clip(obj.get("text") or "-", limit) or "-"


def _unique(wanted: str, seen: set[str]) -> str:
    """`wanted` cut to ID_TEXT, with a `:n` suffix if an earlier block or element took it."""
    ident, n = wanted[:ID_TEXT], 1
    while ident in seen:
        n += 1
        tail = f":{n}"
        ident = wanted[: ID_TEXT - len(tail)] + tail
    seen.add(ident)
    return ident


def _fit_button(el: dict[str, Any], action_ids: set[str]) -> None:
    if el.get("type") != "button":
        return
    _fit_text(el["text"], BUTTON_TEXT)
    if "action_id" in el:
        el["action_id"] = _unique(el["action_id"], action_ids)
    if "confirm" in el:
        cf = el["confirm"]
        _fit_text(cf["title"], CONFIRM_TITLE)
        _fit_text(cf["text"], CONFIRM_TEXT)
        _fit_text(cf["confirm"], CONFIRM_BUTTON)
        _fit_text(cf["deny"], CONFIRM_BUTTON)
    # a value is never cut: actions.encode refuses one over Slack's 2,000 characters


def fit(
    blocks: list[dict[str, Any]], max_blocks: int = MAX_BLOCKS, max_text: int | None = MESSAGE_TEXT
) -> list[dict[str, Any]]:
    """`blocks` held to Block Kit's limits: at most `max_blocks`, texts clipped with an ellipsis,
    fields and elements capped, block_ids unique in the message and action_ids unique in their block,
    and (for a message) at most `max_text` of text in all, dropping blocks from the end.
    Builders budget for the limits themselves (and say what they left out); this is the guarantee."""
    out = copy.deepcopy(blocks[:max_blocks])
    block_ids: set[str] = set()
    for b in out:
        if "block_id" in b:
            b["block_id"] = _unique(b["block_id"], block_ids)
        kind = b.get("type")
        if kind == "section":
            if "text" in b:
                _fit_text(b["text"], SECTION_TEXT)
            if "fields" in b:
                b["fields"] = b["fields"][:MAX_FIELDS]
                for f in b["fields"]:
                    _fit_text(f, FIELD_TEXT)
            if "accessory" in b:
                _fit_button(b["accessory"], set())
        elif kind == "header":
            _fit_text(b["text"], HEADER_TEXT)
        elif kind == "context":
            b["elements"] = b["elements"][:MAX_CONTEXT_ELEMENTS]
            for el in b["elements"]:
                if el.get("type") in ("mrkdwn", "plain_text"):
                    _fit_text(el, CONTEXT_TEXT)
        elif kind == "actions":
            b["elements"] = b["elements"][:MAX_ACTIONS_ELEMENTS]
            action_ids: set[str] = set()
            for el in b["elements"]:
                _fit_button(el, action_ids)
    if max_text is not None:
        while len(out) > 1 and text_size(out) > max_text:
            out.pop()
    return out


def _pack(items: Sequence[str], limit: int = SECTION_TEXT) -> list[tuple[str, int]]:
    """Items (one or more lines each) packed into section texts of at most `limit`; (text, items)."""
    out: list[tuple[str, int]] = []
    cur: list[str] = []
    used = 0
    for item in items:
        item = clip(item, limit)
        if cur and used + 1 + size(item) > limit:
            out.append(("\n".join(cur), len(cur)))
            cur, used = [], 0
        used += size(item) + (1 if cur else 0)
        cur.append(item)
    if cur:
        out.append(("\n".join(cur), len(cur)))
    return out


@dataclass
class _Unit:
    """Blocks that belong together (a section and its buttons) and how many items they show."""

    blocks: list[Block]
    items: int


def _take(head: list[Block], units: Sequence[_Unit], budget: int, text: int = LIST_TEXT) -> tuple[list[Block], int]:
    """`head` plus the leading units that fit in `budget` blocks and `text` of text; also how many
    items they show."""
    blocks, shown = list(head), 0
    used = text_size(head)
    for u in units:
        more = text_size(u.blocks)
        if len(blocks) + len(u.blocks) > budget or used + more > text:
            break
        blocks += u.blocks
        shown += u.items
        used += more
    return blocks, shown


# ---------------------------------------------------------------- wording

_T = Text
_CONFIRM_TITLE = _T("Are you sure?", "确定吗?")
_CANCEL = _T("Cancel", "取消")


# ---------------------------------------------------------------- replies to commands


def reply(
    answer: Outcome | AccountCard | History | AccountList | ApprovalList | HandoffList | TaskList | Report,
    pipeline: Pipeline,
    lang: Lang = "en",
) -> SlackMessage:
    """The ephemeral reply to a command: an outcome sentence or a read model, within 50 blocks."""
    return message(views.card_for(answer, pipeline, lang), lang)


def _report_section(r: Report, p: Pipeline, lang: Lang) -> SectionBlock:
    """One team's report in one section: the table, cut at whole lines to fit."""
    lines = escape(tx.report(r, p, lang)).splitlines()
    hint = mrkdwn(tx.report_chart_hint(lang))
    while lines and sum(size(x) + 1 for x in lines) > SECTION_TEXT - size(hint) - 10:
        lines.pop()
    return _section("```" + "\n".join(lines) + "```\n" + hint)


# ---------------------------------------------------------------- help and errors


def help_message(lang: Lang = "en", topic: str | None = None) -> SlackMessage:
    """Usage of `/stage`; raises grammar.UsageError for an unknown topic, like help_text."""
    card = views.card_for_help(topic, lang)
    text = "\n".join(_plain_line(line) for line in (card.lead, *card.lines))
    return SlackMessage(_fallback(text), _dicts(draw(card, lang)))


def error_message(message: str) -> SlackMessage:
    """A user-safe error (already in the user's language) as one warning section."""
    card = views.card_for_error(message)
    return SlackMessage(_fallback(card.text), _dicts(draw(card, "en")))


# ---------------------------------------------------------------- notifications


def _segment(seg: Segment) -> str:
    if isinstance(seg, str):
        return escape(seg)
    if seg.kind == "person":
        return mention(seg.ref, seg.refs, seg.text)
    if seg.kind == "code":
        return f"`{escape(seg.text)}`"
    if seg.kind == "command":
        return f"`{COMMAND}{escape(seg.text)}`"
    return _bold(_name(seg.text, 1000))


def _plain_line(line: Line) -> str:
    """A view-model line as plain text, a command with Slack's prefix."""
    return "".join(
        seg if isinstance(seg, str) else (COMMAND if seg.kind == "command" else "") + seg.text for seg in line
    )


def mrkdwn(line: Line) -> str:
    """A view-model line as mrkdwn: user text escaped, account names bold, people as mentions."""
    return "".join(_segment(seg) for seg in line)


def _title(line: Line) -> str:
    """A card title for a header; an account name in it gives way so the rest stays readable."""
    rest = size("".join(seg for seg in line if isinstance(seg, str)))
    room = max(HEADER_TEXT - rest, 10)
    return "".join(seg if isinstance(seg, str) else clip(seg.text, room) for seg in line)


def _rows(chunks: list[tuple[str, int]], used: int, budget: int, newest_last: bool) -> tuple[list[Block], int]:
    """The sections of a list that fit in `budget` blocks and LIST_TEXT; the newest when `newest_last`."""
    kept: list[tuple[str, int]] = []
    for chunk in reversed(chunks) if newest_last else chunks:
        if len(kept) == budget or used + size(chunk[0]) > LIST_TEXT:
            break
        kept.append(chunk)
        used += size(chunk[0])
    if newest_last:
        kept.reverse()
    return [_section(c) for c, _ in kept], sum(n for _, n in kept)


def _row_units(rows: Sequence[Row], lang: Lang) -> list[_Unit]:
    """A list's rows as units: rows without a button packed into sections under their group's heading,
    a row with a button as its own section and the button's block."""
    units: list[_Unit] = []
    run: list[str] = []
    heading = False

    def flush() -> None:
        for n, (chunk, count) in enumerate(_pack(run)):
            units.append(_Unit([_section(chunk)], count - (1 if n == 0 and heading else 0)))
        run.clear()

    group: Line | None = None
    for row in rows:
        item = "\n".join(mrkdwn(line) for line in row.lines)
        if row.group is not None and row.group != group:
            flush()
            run.append(mrkdwn(row.group))
            heading, group = True, row.group
        if row.buttons and row.beside:
            flush()
            heading = False
            beside = _button(row.buttons[0], lang)
            units.append(_Unit([_section(item, block_id=f"stagebot:{row.key}", accessory=beside)], 1))
        elif row.buttons:
            flush()
            heading = False
            units.append(_Unit([_section(item), _actions(row.buttons, lang, f"stagebot:{row.key}")], 1))
        elif row.lines:
            run.append(item)
    flush()
    return units


def _list(card: Card, head: list[Block], lang: Lang) -> list[Block]:
    """A list's rows, as many as fit in a message, then its notes and a line on the rows not shown."""
    blocks, shown = _take(head, _row_units(card.rows, lang), MAX_BLOCKS - 1)  # and one note
    notes = [mrkdwn(line) for line in card.notes]
    hidden = card.hidden + sum(1 for r in card.rows if r.lines) - shown
    if hidden and card.more:
        notes.append(escape(card.more.format(n=hidden, shown=shown, command=COMMAND + card.command)))
    if notes:
        blocks.append(_context(notes))
    return blocks


def draw(card: Card, lang: Lang) -> list[Block]:
    """A view-model card as blocks: header, fields, lines (a list cut to fit, saying so), context notes
    and the buttons."""
    blocks: list[Block] = [] if card.compact else [_header(_title(card.title))]
    if card.rows:
        return _list(card, blocks, lang)
    if card.fields:
        blocks.append(_fields((f.label, mrkdwn(f.value)) for f in card.fields))
    if card.table:  # monospace, each section a whole number of rows; the lead above the first
        lead = mrkdwn(card.lead)
        chunks = _pack([mrkdwn(line) for line in card.lines], SECTION_TEXT - size(lead) - 10)
        return blocks + [
            _section((lead + "\n" if n == 0 and lead else "") + f"```{chunk}```") for n, (chunk, _) in enumerate(chunks)
        ]
    items = [mrkdwn(line) for line in card.lines]
    if items and card.tone == "warn":
        items[0] = ":warning: " + items[0]
    chunks = _pack(items)
    if card.more is None:
        blocks += [_section(chunk) for chunk, _ in chunks]
    else:  # a list: room is kept for two notes
        rows, shown = _rows(chunks, text_size(blocks), MAX_BLOCKS - len(blocks) - 2, card.newest_last)
        blocks += rows
        hidden = card.hidden + len(card.lines) - shown
        if hidden:
            blocks.append(_context([escape(card.more.format(n=hidden, shown=shown))]))
    if card.notes:
        blocks.append(_context([mrkdwn(line) for line in card.notes]))
    if card.buttons:
        blocks.append(_actions(card.buttons, lang, f"stagebot:{card.key}"))
    return blocks


def message(card: Card, lang: Lang = "en") -> SlackMessage:
    """A view-model card as a message, with its plain text as the fallback."""
    return SlackMessage(_fallback(card.text), _dicts(draw(card, lang)))


def notification(e: ev.Event, pipeline: Pipeline, lang: Lang = "en") -> SlackMessage:
    """A message for an owner-team channel; approvals and handoffs carry their buttons."""
    return message(views.card_for_event(e, pipeline, lang), lang)


def decided_card(
    event: ev.ApprovalDecided,
    pipeline: Pipeline,
    lang: Lang = "en",
    *,
    requested: ev.ApprovalRequested | None = None,
) -> SlackMessage:
    """The approval card after the decision (for chat.update): no buttons, who decided and when.

    Pass the original `requested` event to keep the amount, owner and reason fields of the card.
    """
    return message(views.decided_card(event, pipeline, lang, requested=requested), lang)


def claimed_card(
    event: ev.HandoffClaimed,
    pipeline: Pipeline,
    lang: Lang = "en",
    *,
    opened: ev.HandoffOpened | None = None,
) -> SlackMessage:
    """The handoff prompt after someone took it (for chat.update): no button, who took it and when.

    Pass the original `opened` event to keep the prompt's sentence; otherwise the claim is shown.
    """
    return message(views.claimed_card(event, pipeline, lang, opened=opened), lang)


# ---------------------------------------------------------------- App Home


def _more_line(card: Card) -> Callable[[int], str]:
    """The line under a Home part cut short, for `n` not shown."""
    return lambda n: escape((card.more or "").format(n=n, command=COMMAND + card.command))


@dataclass
class _Part:
    title: str
    units: list[_Unit]
    total: int
    empty: str
    more: Callable[[int], str]
    taken: list[_Unit] = field(default_factory=list)


def home_view(
    *,
    mine: AccountList,
    waiting: ApprovalList | Sequence[ApprovalView],
    stale: AccountList,
    pipeline: Pipeline,
    lang: Lang = "en",
    handoffs: Sequence[tuple[AccountView, HandoffView]] = (),
    reports: Sequence[Report] = (),
    notice: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The App Home tab (for views.publish) as a dict, at most 100 blocks.

    `mine`: the viewer's accounts (list_accounts with mine=True).
    `waiting`: approvals the viewer may decide (an ApprovalList or its filtered approvals), shown
    with Approve / Reject buttons carrying the same values as the channel card.
    `handoffs`: (account, open handoff) pairs the viewer's team may take, each with a Take
    ownership button; listed under "Waiting on you" after the approvals.
    `stale`: accounts past their stage's SLA (list_accounts with overdue=True).
    `reports`: the figures of the viewer's teams (adapters/common/team_reports.py), each as the
    same table `/stage report` answers with.
    `notice`: blocks shown first, above a divider (what a button pressed in the Home just did).
    Each list shows at most text.MAX_LINES items; the 100 blocks are shared round robin between
    the parts, and a cut part ends with "… and N more".
    """
    p = pipeline
    approvals = waiting.approvals if isinstance(waiting, ApprovalList) else tuple(waiting)
    people = {**mine.people, **stale.people, **(waiting.people if isinstance(waiting, ApprovalList) else {})}
    parts = [
        _Part(
            _plain_line(c.title),
            _row_units(c.rows, lang),
            c.hidden + sum(1 for r in c.rows if r.lines),
            c.text,
            _more_line(c),
        )
        for c in views.home_cards(mine, approvals, handoffs, stale, p, lang, people)
    ]
    if reports:
        figures = views.home_part("reports", (), len(reports), lang)
        units = [_Unit([_report_section(r, p, lang)], 1) for r in reports]
        parts.append(_Part(_plain_line(figures.title), units, len(reports), figures.text, _more_line(figures)))
    # Fixed blocks: a header per part, a divider between parts, and one note per part.
    budget = MAX_VIEW_BLOCKS - len(parts) * 2 - (len(parts) - 1) - (len(notice) + 1 if notice else 0)
    text_left = VIEW_TEXT - sum(size(part.title) + 300 for part in parts)  # 300: room for each part's note
    text_left -= text_size(list(notice)) if notice else 0
    progress = True
    while progress:  # round robin, so one long part cannot crowd out the others
        progress = False
        for part in parts:
            nxt = len(part.taken)
            if nxt >= len(part.units):
                continue
            unit = part.units[nxt]
            used = text_size(unit.blocks)
            if len(unit.blocks) <= budget and used <= text_left:
                part.taken.append(unit)
                budget -= len(unit.blocks)
                text_left -= used
                progress = True

    blocks: list[Block | dict[str, Any]] = [*notice, DividerBlock()] if notice else []
    for n, part in enumerate(parts):
        if n:
            blocks.append(DividerBlock())
        blocks.append(_header(part.title))
        for u in part.taken:
            blocks += u.blocks
        shown = sum(u.items for u in part.taken)
        if part.total == 0:
            blocks.append(_context([part.empty]))
        elif part.total > shown:
            blocks.append(_context([part.more(part.total - shown)]))
    view = View(type="home", blocks=blocks).to_dict()
    view["blocks"] = fit(view["blocks"], MAX_VIEW_BLOCKS, VIEW_TEXT)
    return view
