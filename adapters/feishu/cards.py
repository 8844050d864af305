"""Feishu rendering: card JSON 2.0 for replies, notifications and decisions, fitted to Feishu's limits.

Pure functions returning plain dicts (lark-oapi wants plain dicts in card-callback responses).
Short strings (title, summary, button labels, confirmations, notes) carry `content` plus
`i18n_content` in zh_cn and en_us, so the reader's Feishu client picks the language; the body
texts (lists, history, notifications: where customer text and hundreds of rows live) are sent
once, in the bot's language. Customer text goes into `plain_text` elements only, so an account
named `<at id=all></at>` or `**x**` is shown as typed and can neither mention anyone nor format.
Buttons carry the shared button schema (adapters/common/actions.py) as JSON *objects*.

Every card is built by `card()`, whose `_fit` step is the one place Feishu's limits are kept: it
measures the request body as lark-oapi sends it and drops list rows (saying how many more there
are and which command shows them) or clips texts by UTF-8 bytes until the body fits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from adapters.common import text as tx
from adapters.common import view as vw
from adapters.common import views
from adapters.common.actions import Button
from adapters.common.view import Tone
from lifecycle.domain import events as ev
from lifecycle.domain.i18n import Lang, Text
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.views import (
    Outcome,
    Report,
)

Card = dict[str, Any]

# Feishu's limits (research/platform-limits.md): a card message's request body is at most 30 KB
# (30,720 bytes, error 230025) and a card holds at most 200 elements (230099). The body is the
# card's JSON as a string inside {"receive_id", "msg_type", "content", "uuid", ...}: `ENVELOPE`
# bytes are kept for the fields around `content` (ids are under 100 bytes, the uuid 50).
BODY_LIMIT = 30 * 1024
ENVELOPE = 512
MAX_ELEMENTS = 200
TEXT_BYTES = 12_000  # one body text at most, before fitting (a tenth of a screenful of emoji is 4 KB)
MIN_TEXT_BYTES = 200  # what fitting leaves of a text at least
TITLE_LIMIT = 100  # characters of a title or summary
LABEL_LIMIT = 40  # characters of a button label
CONFIRM_LIMIT = 300  # characters of a confirmation
MAX_ROW_BUTTONS = 10  # a list's buttons (one per row, for its first rows) in the row under it
OPEN_ID = re.compile(r"ou_[A-Za-z0-9_\-]{1,100}")  # a Feishu user's open_id, safe inside <at id=…>
COMMAND = ""  # what a command a reader may type starts with: a direct chat, or after @stagebot in a group


def clip(s: str, limit: int) -> str:
    """At most `limit` characters."""
    return s if len(s) <= limit else s[: limit - 1] + "…"


def clip_bytes(s: str, limit: int) -> str:
    """At most `limit` bytes in UTF-8, cut at a character boundary (Feishu counts the body in bytes)."""
    raw = s.encode("utf-8", "replace")  # a lone surrogate counts as one byte here; content() replaces it
    if len(raw) <= limit:
        return s
    return raw[: max(0, limit - 3)].decode("utf-8", "ignore") + "…"


def plain(t: Text, lang: Lang = "en", limit: int = TITLE_LIMIT) -> dict[str, Any]:
    """A short text in both languages: `content` in the bot's language, `i18n_content` for the reader's client."""
    en, zh = clip(t.en, limit), clip(t.zh, limit)
    return {"tag": "plain_text", "content": zh if lang == "zh" else en, "i18n_content": {"en_us": en, "zh_cn": zh}}


def both(render: Callable[[Lang], str]) -> Text:
    """A renderer run in both languages."""
    return Text(render("en"), render("zh"))


def button(b: Button, lang: Lang = "en") -> dict[str, Any]:
    out: dict[str, Any] = {
        "tag": "button",
        "text": plain(b.label, lang, LABEL_LIMIT),
        "type": b.style,
        # The value must be an object: lark-oapi cannot read a string value (research §0.8).
        "behaviors": [{"type": "callback", "value": dict(b.value)}],
    }
    if b.confirm is not None:
        out["confirm"] = {"title": plain(b.label, lang, LABEL_LIMIT), "text": plain(b.confirm, lang, CONFIRM_LIMIT)}
    return out


def _buttons(buttons: Sequence[Button], lang: Lang) -> list[dict[str, Any]]:
    if not buttons:
        return []
    columns = [{"tag": "column", "width": "auto", "elements": [button(b, lang)]} for b in buttons]
    return [{"tag": "column_set", "flex_mode": "none", "columns": columns}]


@dataclass(frozen=True)
class Listing:
    """A list body that `_fit` may shorten: the rows, each under its group's line, if any.

    `more(n)` is the line for `n` rows not shown, naming the command that shows more; `hidden` rows
    were already left out before drawing. With `newest_last`, the first rows are the ones dropped.
    """

    rows: tuple[tuple[str, str], ...]  # (group line or "", row)
    more: Callable[[int], str]  # rows not shown -> the line
    hidden: int = 0
    newest_last: bool = False

    def render(self, keep: int, limit: int) -> str:
        n = len(self.rows)
        keep = min(keep, n)
        kept = self.rows[n - keep :] if self.newest_last else self.rows[:keep]
        lines: list[str] = []
        missing = self.hidden + n - keep
        if missing and self.newest_last:
            lines.append(self.more(missing))
        group = None
        for g, row in kept:
            if g and g != group:
                lines.append(g)
            group = g
            lines.append(row)
        if missing and not self.newest_last:
            lines.append(self.more(missing))
        # Each row is clipped on its own so one long name cannot push the others out.
        return "\n".join(clip_bytes(line, limit) for line in lines)


Body = Text | Listing


def _div(s: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": s}}


def _fields(fields: Sequence[tuple[Text, str]], lang: Lang, text_bytes: int) -> list[dict[str, Any]]:
    """Label/value pairs as columns, two to a row: a grey label above its value."""
    grey = {"text_size": "notation", "text_color": "grey"}

    def column(label: Text, value: str) -> dict[str, Any]:
        top = {"tag": "div", "text": {**plain(label, lang, LABEL_LIMIT), **grey}}
        return {
            "tag": "column",
            "width": "weighted",
            "weight": 1,
            "elements": [top, _div(clip_bytes(value, text_bytes))],
        }

    rows = [fields[n : n + 2] for n in range(0, len(fields), 2)]
    return [
        {"tag": "column_set", "flex_mode": "none", "columns": [column(label, value) for label, value in row]}
        for row in rows
    ]


def card(
    title: Text,
    body: Sequence[Body],
    *,
    lang: Lang = "en",
    template: str = "blue",
    buttons: Sequence[Button] = (),
    note: Text | None = None,
    image: dict[str, Any] | None = None,
    row_buttons: bool = False,
    fields: Sequence[tuple[Text, str]] = (),
    mentions: Sequence[str] = (),
) -> Card:
    """A card 2.0: header, an optional image, label/value fields, text sections, the people it
    mentions, buttons in a row, an optional grey note.

    `Text` sections are shown in `lang`; a `Listing` is shortened to what fits. With `row_buttons`,
    button n belongs to the listing's row n and goes when its row does.
    """
    sections = [b for b in body if isinstance(b, Listing) or b.en or b.zh]

    def build(keep: int, text_bytes: int, n_buttons: int) -> Card:
        elements: list[dict[str, Any]] = [image] if image else []
        elements += _fields(fields, lang, text_bytes)
        for b in sections:
            s = b.render(keep, text_bytes) if isinstance(b, Listing) else clip_bytes(b(lang), text_bytes)
            elements.append(_div(s))
        if mentions:
            elements.append(_mentions(mentions))
        elements += _buttons(buttons[: min(n_buttons, keep) if row_buttons else n_buttons], lang)
        if note is not None:
            grey = {"text_size": "notation", "text_color": "grey"}
            elements.append({"tag": "div", "text": {**plain(note, lang, CONFIRM_LIMIT), **grey}})
        return {
            "schema": "2.0",
            "config": {
                "update_multi": True,  # one card for everyone in the chat, updated in place for everyone
                "locales": ["zh_cn", "en_us"],
                "summary": _summary(plain(title, lang, TITLE_LIMIT)),
            },
            "header": {"title": plain(title, lang, TITLE_LIMIT), "template": template},
            "body": {"elements": elements},
        }

    rows = max((len(b.rows) for b in sections if isinstance(b, Listing)), default=0)
    return _fit(build, rows, len(buttons))


def _mentions(open_ids: Sequence[str]) -> dict[str, Any]:
    """The people a notification names, as Feishu mentions (card markdown `<at id=ou_…></at>`: shown
    as their Feishu name, and they are notified). Kept apart from the body, which is plain text, so
    no customer text is ever read as markdown; only well-formed open_ids get here."""
    return {"tag": "markdown", "content": " ".join(f"<at id={oid}></at>" for oid in open_ids)}


def people_mentioned(cards: Sequence[vw.Card]) -> list[str]:
    """The Feishu open_ids of the people named in the cards' lines, fields and notes, in order."""
    out: list[str] = []
    for c in cards:
        lines = [c.title, c.lead, *c.lines, *c.notes, *(f.value for f in c.fields)]
        lines += [line for r in c.rows for line in (*r.lines, r.group or ())]
        for line in lines:
            for seg in line:
                if isinstance(seg, str) or seg.kind != "person":
                    continue
                for ref in (seg.ref, *seg.refs):
                    platform, _, oid = (ref or "").partition(":")
                    if platform == "feishu" and OPEN_ID.fullmatch(oid) and oid not in out:
                        out.append(oid)
    return out


def _summary(title: dict[str, Any]) -> dict[str, Any]:
    # card-json-v2-structure: config.summary has `content` and `i18n_content` only (no `tag`).
    return {"content": title["content"], "i18n_content": title["i18n_content"]}


def _fit(build: Callable[[int, int, int], Card], rows: int, n_buttons: int) -> Card:
    """The one place Feishu's limits are kept: the fullest card whose request body and element count fit.

    First as many list rows as fit (binary search on the measured body), then, if even no rows fit,
    every body text clipped to half its bytes until the card fits.
    """
    while n_buttons and element_count(build(0, MIN_TEXT_BYTES, n_buttons)) > MAX_ELEMENTS:
        n_buttons -= 1
    text_bytes = TEXT_BYTES
    while True:
        c = build(rows, text_bytes, n_buttons)
        if fits(c):
            return c
        if fits(build(0, text_bytes, n_buttons)):
            lo, hi = 0, rows  # build(lo) fits, build(hi) does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if fits(build(mid, text_bytes, n_buttons)):
                    lo = mid
                else:
                    hi = mid
            return build(lo, text_bytes, n_buttons)
        if text_bytes <= MIN_TEXT_BYTES:
            return build(0, MIN_TEXT_BYTES, n_buttons)  # unreachable with our texts: titles and labels are short
        text_bytes = max(MIN_TEXT_BYTES, text_bytes // 2)


def request_bytes(c: Card) -> int:
    """The card's share of a message request body, in bytes: `content` as the JSON string lark-oapi sends."""
    return len(json.dumps({"content": content(c)}, ensure_ascii=False).encode("utf-8")) + ENVELOPE


def fits(c: Card) -> bool:
    return request_bytes(c) <= BODY_LIMIT and element_count(c) <= MAX_ELEMENTS


def element_count(c: Card) -> int:
    """Components of the card, nested ones included (what Feishu counts against its 200)."""

    def walk(elements: list[Any]) -> Iterator[Any]:
        for el in elements:
            yield el
            for key in ("elements", "columns"):
                yield from walk(el.get(key) or [])

    return sum(1 for _ in walk(c["body"]["elements"]))


def content(c: Card) -> str:
    """The `content` string of an interactive message."""
    raw = json.dumps(c, ensure_ascii=False, separators=(",", ":"))
    # JSON may carry a lone surrogate ("\\ud800") into a name; UTF-8 cannot, so it is sent as U+FFFD.
    return raw.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


# ---------------------------------------------------------------- replies to a command


def reply(ans: object, pipeline: Pipeline, lang: Lang = "en") -> Card:
    """The card answering one command: an outcome, a read model, help, or a refusal."""
    if isinstance(ans, Report):
        return report_card(ans, pipeline, lang)
    return draw(lambda lg: views.card_for(ans, pipeline, lg), lang)


def report_card(r: Report, pipeline: Pipeline, lang: Lang = "en", *, image_key: str | None = None) -> Card:
    """The report: the chart (an image uploaded beforehand) above the figures as a table.

    Without an image (the upload failed, or charts are not installed) the table stands alone with a
    note saying so; the figures are never held back for the picture.
    """
    note = None if image_key else Text("The chart could not be attached this time.", "本次未能附上图表。")
    image = None
    if image_key:
        alt = plain(Text("Funnel and time in stage", "漏斗与阶段停留时间"), lang, TITLE_LIMIT)
        image = {"tag": "img", "img_key": image_key, "alt": alt, "scale_type": "fit_horizontal", "preview": True}
    return draw(lambda lg: views.card_for_report(r, pipeline, lg), lang, image=image, note=note)


def help_card(topic: str | None = None, lang: Lang = "en", *, extra: Text | None = None) -> Card:
    """Usage; in Feishu the commands are typed to the bot in a direct chat, or after @bot in a group."""
    return draw(lambda lg: views.card_for_help(topic, lg, intro=tx.help_chat_intro(lg)), lang, extra=extra)


def error_card(message: Text, lang: Lang = "en") -> Card:
    return draw(lambda lg: views.card_for_error(message.zh if lg == "zh" else message.en, lg), lang)


# ---------------------------------------------------------------- notifications and decisions


_TEMPLATE: dict[Tone, str] = {
    "info": "blue",
    "ask": "orange",
    "handoff": "purple",
    "good": "green",
    "bad": "red",
    "figures": "indigo",
    "quiet": "grey",
    "warn": "red",
}


def _plain(line: vw.Line) -> str:
    """A view-model line as plain text, a command in backticks (typed as is: Feishu has no prefix)."""
    return "".join(s if isinstance(s, str) else f"`{COMMAND}{s.text}`" if s.kind == "command" else s.text for s in line)


def _lines(lines: Sequence[vw.Line]) -> str:
    return "\n".join(_plain(line) for line in lines)


def _tagged(b: Button, tag: str) -> Button:
    """A row's button named after its row (`Done #12`): Feishu shows a list's buttons in one row below it."""
    return replace(b, label=Text(f"{b.label.en} {tag}", f"{b.label.zh} {tag}")) if tag else b


def draw(
    build: Callable[[Lang], vw.Card],
    lang: Lang = "en",
    *,
    image: dict[str, Any] | None = None,
    note: Text | None = None,
    extra: Text | None = None,
    mention: bool = False,
) -> Card:
    """A view-model card, built in both languages, as a card 2.0: its short texts in both, its body in
    `lang`; an `image` above the body, a section of Feishu's own (`extra`) below it, and a `note` of
    Feishu's own replace the card's notes. With `mention` (a notification in a group chat) the people
    it names who are on Feishu are mentioned below the body."""
    en, zh = build("en"), build("zh")
    shown = zh if lang == "zh" else en
    fields = [
        (Text(f_en.label, f_zh.label), vw.plain(f.value))
        for f_en, f_zh, f in zip(en.fields, zh.fields, shown.fields, strict=True)
    ]
    body: list[Body] = [Text(_plain(en.lead), _plain(zh.lead))] if shown.lead else []
    buttons = shown.buttons
    listed = [r for r in shown.rows if r.lines]  # a heading alone is left out: its rows say their stage
    if shown.rows:  # items, each under its group's line; a row's button is in the row of buttons below
        rows = tuple((vw.plain(r.group or ()), _lines(r.lines)) for r in listed)
        buttons = tuple(_tagged(b, r.tag) for r in listed for b in r.buttons)[:MAX_ROW_BUTTONS]
    elif shown.more is not None:  # lines of a list
        rows = tuple(("", _plain(line)) for line in shown.lines)
    else:
        rows = ()
        body.append(Text(*(_lines(c.lines) for c in (en, zh))))
    if extra is not None:
        body.append(extra)
    if shown.more is not None:  # as many rows as fit, then a line saying how many more
        total, more, command = len(rows) + shown.hidden, shown.more, COMMAND + shown.command
        body.append(
            Listing(
                rows,
                lambda n: more.format(n=n, shown=total - n, command=command),
                hidden=shown.hidden,
                newest_last=shown.newest_last,
            )
        )
    return card(
        Text(vw.plain(en.title), vw.plain(zh.title)),
        body,
        lang=lang,
        template=_TEMPLATE[shown.tone],
        buttons=buttons,
        row_buttons=bool(shown.rows),
        note=note if note is not None or not shown.notes else Text(*(_lines(c.notes) for c in (en, zh))),
        image=image,
        fields=fields,
        mentions=people_mentioned([shown]) if mention else (),
    )


def notification(e: ev.Event, pipeline: Pipeline, lang: Lang = "en") -> Card:
    """The card posted to an owner team's group chat; approvals and handoffs carry their buttons."""
    return draw(lambda lg: views.card_for_event(e, pipeline, lg), lang, mention=True)


def decided(e: ev.ApprovalDecided, pipeline: Pipeline, lang: Lang = "en", *, requested: ev.Event | None = None) -> Card:
    """The approval card after the decision: no buttons; who decided and when, for everyone in the chat."""
    req = requested if isinstance(requested, ev.ApprovalRequested) else None
    return draw(lambda lg: views.decided_card(e, pipeline, lg, requested=req), lang, mention=True)


def claimed(e: ev.HandoffClaimed, pipeline: Pipeline, lang: Lang = "en", *, opened: ev.Event | None = None) -> Card:
    """The handoff prompt after someone took it: no button; who took it and when."""
    first = opened if isinstance(opened, ev.HandoffOpened) else None
    return draw(lambda lg: views.claimed_card(e, pipeline, lg, opened=first), lang, mention=True)


def decision_from_outcome(o: Outcome, pipeline: Pipeline, lang: Lang = "en", *, by: str) -> Card:
    """The card shown right after a button press (by `by`) decided an approval or took a handoff."""
    return draw(lambda lg: views.decision_card(o, pipeline, lg, by=by), lang)


def toast(kind: str, message: Text, lang: Lang = "en") -> dict[str, Any]:
    """A card-callback toast: info, success, error or warning."""
    en, zh = clip(message.en, 300), clip(message.zh, 300)
    return {"type": kind, "content": zh if lang == "zh" else en, "i18n": {"en_us": en, "zh_cn": zh}}


def _as_text(t: dict[str, Any]) -> Text:
    """A card's text object in both languages (body texts carry one, in the bot's language)."""
    i18n = t.get("i18n_content")
    return Text(i18n["en_us"], i18n["zh_cn"]) if i18n else Text(t["content"], t["content"])


def card_text(c: Card) -> Text:
    """Everything a card says, as text: its title, then each field and text section (the plain-text
    form sent where Feishu refuses the card)."""
    parts = [_as_text(c["header"]["title"])]
    for e in c["body"]["elements"]:
        if e.get("tag") == "div":
            parts.append(_as_text(e["text"]))
        for col in e.get("columns") or []:
            texts = [_as_text(x["text"]) for x in col["elements"] if x.get("tag") == "div"]
            if len(texts) == 2:  # a field: label above value
                parts.append(Text(f"{texts[0].en}: {texts[1].en}", f"{texts[0].zh}:{texts[1].zh}"))
    return Text("\n".join(t.en for t in parts), "\n".join(t.zh for t in parts))


def card_summary(c: Card) -> Text:
    """What a card is about in a line or two (a toast, a log line): its title, then the first line
    of its first text section. Fields are columns, not text sections, so the title carries the name."""
    title = c.get("header", {}).get("title")
    texts = [e["text"] for e in c["body"]["elements"] if e.get("tag") == "div"]
    parts = [_as_text(title)] if title else []
    if texts:
        first = _as_text(texts[0])
        parts.append(Text(first.en.split("\n", 1)[0], first.zh.split("\n", 1)[0]))
    return Text("\n".join(p.en for p in parts), "\n".join(p.zh for p in parts))


def text_message(t: Text) -> str:
    """The `content` of a plain-text fallback message (used when Feishu refuses a card)."""
    return json.dumps({"text": clip(t.zh + "\n\n" + t.en, 4000)}, ensure_ascii=False)
