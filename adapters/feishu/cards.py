"""Feishu rendering: card JSON 2.0 (zh_cn and en_us in every card) for replies, notifications and decisions.

Pure functions returning plain dicts (lark-oapi wants plain dicts in card-callback responses).
Every text comes from adapters/common/text.py in both languages; the reader's Feishu client
picks `zh_cn` or `en_us`. Customer text goes into `plain_text` elements only, so an account named
`<at id=all></at>` or `**x**` is shown as typed and can neither mention anyone nor format.
Buttons carry the shared button schema (adapters/common/actions.py) as JSON *objects*.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from adapters.common import text as tx
from adapters.common.actions import Button, buttons_for
from adapters.common.grammar import help_text
from lifecycle import events as ev
from lifecycle.i18n import Lang, Text
from lifecycle.pipeline import Pipeline
from lifecycle.views import AccountCard, AccountList, ApprovalList, HandoffList, History, Outcome, Report, TaskList

Card = dict[str, Any]

# Feishu limits (research/feishu.md §3.3): 30 KB per card body, 200 elements. Each text is
# clipped so that both languages together stay far below: zh is 3 bytes per character.
TEXT_LIMIT = 3000
TITLE_LIMIT = 100
LOCALES = {"en": "en_us", "zh": "zh_cn"}


def clip(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _i18n(en: str, zh: str, limit: int, lang: Lang) -> dict[str, Any]:
    en, zh = clip(en, limit), clip(zh, limit)
    return {"content": zh if lang == "zh" else en, "i18n_content": {"en_us": en, "zh_cn": zh}}


def plain(t: Text, lang: Lang = "en", limit: int = TEXT_LIMIT) -> dict[str, Any]:
    return {"tag": "plain_text", **_i18n(t.en, t.zh, limit, lang)}


def both(render: Callable[[Lang], str]) -> Text:
    """A renderer run in both languages."""
    return Text(render("en"), render("zh"))


def _div(t: Text, lang: Lang) -> dict[str, Any]:
    return {"tag": "div", "text": plain(t, lang)}


def button(b: Button, lang: Lang = "en") -> dict[str, Any]:
    out: dict[str, Any] = {
        "tag": "button",
        "text": plain(b.label, lang, 40),
        "type": b.style,
        # The value must be an object: lark-oapi cannot read a string value (research §0.8).
        "behaviors": [{"type": "callback", "value": dict(b.value)}],
    }
    if b.confirm is not None:
        out["confirm"] = {"title": plain(b.label, lang, 40), "text": plain(b.confirm, lang, 300)}
    return out


def _buttons(buttons: Sequence[Button], lang: Lang) -> list[dict[str, Any]]:
    if not buttons:
        return []
    columns = [{"tag": "column", "width": "auto", "elements": [button(b, lang)]} for b in buttons]
    return [{"tag": "column_set", "flex_mode": "none", "columns": columns}]


def card(
    title: Text,
    body: Sequence[Text],
    *,
    lang: Lang = "en",
    template: str = "blue",
    buttons: Sequence[Button] = (),
    note: Text | None = None,
) -> Card:
    """A card 2.0: header, text sections, buttons in a row, an optional grey note."""
    elements: list[dict[str, Any]] = [_div(t, lang) for t in body if t.en or t.zh]
    elements += _buttons(buttons, lang)
    if note is not None:
        elements.append({"tag": "div", "text": {**plain(note, lang), "text_size": "notation", "text_color": "grey"}})
    return {
        "schema": "2.0",
        "config": {
            "update_multi": True,  # one card for everyone in the chat, updated in place for everyone
            "locales": ["zh_cn", "en_us"],
            "summary": plain(title, lang, TITLE_LIMIT),
        },
        "header": {"title": plain(title, lang, TITLE_LIMIT), "template": template},
        "body": {"elements": elements},
    }


def content(c: Card) -> str:
    """The `content` string of an interactive message."""
    return json.dumps(c, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- replies to a command


def reply(ans: object, pipeline: Pipeline, lang: Lang = "en") -> Card:
    """The card answering one command: an outcome, a read model, help, or a refusal."""
    p = pipeline
    if isinstance(ans, Outcome):
        a = ans.account
        return card(
            Text(f"{a.name}: {_stage(p, a.stage, 'en')}", f"{a.name}:{_stage(p, a.stage, 'zh')}"),
            [both(lambda lg: tx.outcome(ans, p, lg))],
            lang=lang,
            template="orange" if ans.kind == "approval_requested" else "green",
        )
    if isinstance(ans, AccountCard):
        a = ans.account
        return card(
            Text(f"{a.name} · {_stage(p, a.stage, 'en')}", f"{a.name} · {_stage(p, a.stage, 'zh')}"),
            [both(lambda lg: tx.card(ans, p, lg))],
            lang=lang,
            template="red" if ans.overdue else "blue",
        )
    if isinstance(ans, History):
        name = ans.account.name
        return card(Text(f"History: {name}", f"历史:{name}"), [both(lambda lg: tx.history(ans, p, lg))], lang=lang)
    if isinstance(ans, AccountList):
        return card(Text("Accounts", "客户列表"), [both(lambda lg: tx.account_list(ans, p, lg))], lang=lang)
    if isinstance(ans, ApprovalList):
        return card(Text("Approvals", "审批"), [both(lambda lg: tx.approval_list(ans, p, lg))], lang=lang)
    if isinstance(ans, HandoffList):
        return card(Text("Handoffs", "交接"), [both(lambda lg: tx.handoff_list(ans, p, lg))], lang=lang)
    if isinstance(ans, Report):
        return report_card(ans, p, lang)
    if isinstance(ans, TaskList):
        buttons = [
            Button(Text(f"Done #{t.id}", f"完成 #{t.id}"), {"v": 1, "op": "done", "task": t.id}, "primary")
            for t in ans.tasks[:10]
        ]
        return card(Text("Tasks", "待办任务"), [both(lambda lg: tx.task_list(ans, p, lg))], lang=lang, buttons=buttons)
    raise TypeError(f"no card for {type(ans).__name__}")


def report_card(r: Report, pipeline: Pipeline, lang: Lang = "en", *, image_key: str | None = None) -> Card:
    """The report: the chart (an image uploaded beforehand) above the figures as a table.

    Without an image (the upload failed, or charts are not installed) the table stands alone with a
    note saying so; the figures are never held back for the picture.
    """
    title = Text(f"Report · team {r.team}", f"报表 · {r.team} 团队") if r.team else Text("Report", "报表")
    note = None if image_key else Text("The chart could not be attached this time.", "本次未能附上图表。")
    c = card(title, [both(lambda lg: tx.report(r, pipeline, lg))], lang=lang, template="indigo", note=note)
    if image_key:
        alt = plain(Text("Funnel and time in stage", "漏斗与阶段停留时间"), lang, TITLE_LIMIT)
        c["body"]["elements"].insert(
            0, {"tag": "img", "img_key": image_key, "alt": alt, "scale_type": "fit_horizontal", "preview": True}
        )
    return c


def help_card(topic: str | None = None, lang: Lang = "en", *, extra: Text | None = None) -> Card:
    """Usage; in Feishu the commands are typed to the bot in a direct chat, or after @bot in a group."""
    intro = Text(
        "Type a command to me in a direct chat, or after @stagebot in a group, e.g. `move Acme P2 first test sent`.",
        "在私聊中直接发命令给我,或在群里 @stagebot 后输入,例如 `推进 Acme P2 已发送首次测试`。",
    )
    body = [intro, both(lambda lg: help_text(topic, lg))]
    if extra is not None:
        body.append(extra)
    return card(Text("stagebot help", "stagebot 帮助"), body, lang=lang, template="grey")


def error_card(message: Text, lang: Lang = "en") -> Card:
    return card(Text("Not done", "未执行"), [message], lang=lang, template="red")


# ---------------------------------------------------------------- notifications and decisions


def _stage(p: Pipeline, key: str | None, lang: Lang) -> str:
    st = p.stage_by_key.get(key or "")
    return st.title(lang) if st else (key or "-")


def _title(e: ev.Event, p: Pipeline) -> Text:
    if isinstance(e, ev.StageChanged):
        return Text(
            f"{e.account}: {_stage(p, e.from_stage, 'en')} → {_stage(p, e.to_stage, 'en')}",
            f"{e.account}:{_stage(p, e.from_stage, 'zh')} → {_stage(p, e.to_stage, 'zh')}",
        )
    if isinstance(e, ev.ApprovalRequested | ev.ApprovalDecided):
        return Text(
            f"Approval: {e.account} → {_stage(p, e.to_stage, 'en')}",
            f"审批:{e.account} → {_stage(p, e.to_stage, 'zh')}",
        )
    if isinstance(e, ev.HandoffOpened | ev.HandoffClaimed):
        return Text(f"Handoff: {e.account}", f"交接:{e.account}")
    return Text(e.account, e.account)


_TEMPLATE = {"ApprovalRequested": "orange", "HandoffOpened": "purple", "StageChanged": "blue"}


def notification(e: ev.Event, pipeline: Pipeline, lang: Lang = "en") -> Card:
    """The card posted to an owner team's group chat; approvals and handoffs carry their buttons."""
    p = pipeline
    body = [both(lambda lg: tx.notification(e, p, lg))]
    note = None
    if isinstance(e, ev.ApprovalRequested):
        back = e.reject_to or e.from_stage
        team = p.team_by_key.get(e.team)
        en_team, zh_team = (team.label("en"), team.label("zh")) if team else (e.team, e.team)
        note = Text(
            f"Approval #{e.approval_id} · only {en_team} approvers may decide · if rejected → {_stage(p, back, 'en')}",
            f"审批 #{e.approval_id} · 仅{zh_team}审批人可操作 · 驳回后退回 {_stage(p, back, 'zh')}",
        )
    return card(
        _title(e, p), body, lang=lang, template=_TEMPLATE.get(e.kind, "blue"), buttons=buttons_for(e), note=note
    )


def decided(e: ev.ApprovalDecided, pipeline: Pipeline, lang: Lang = "en", *, requested: ev.Event | None = None) -> Card:
    """The approval card after the decision: no buttons; who decided and when, for everyone in the chat."""
    p = pipeline
    body = [both(lambda lg: tx.notification(requested, p, lg))] if isinstance(requested, ev.ApprovalRequested) else []
    who, at = tx.person(e.actor), tx.when(e.at)
    line = (
        Text(f"✅ Approved by {who} at {at} UTC", f"✅ 已由 {who} 于 {at} (UTC) 批准")
        if e.decision == "approved"
        else Text(f"❌ Rejected by {who} at {at} UTC", f"❌ 已由 {who} 于 {at} (UTC) 驳回")
    )
    body.append(line)
    return card(_title(e, p), body, lang=lang, template="green" if e.decision == "approved" else "red")


def claimed(e: ev.HandoffClaimed, pipeline: Pipeline, lang: Lang = "en", *, opened: ev.Event | None = None) -> Card:
    """The handoff prompt after someone took it: no button; who took it and when."""
    p = pipeline
    body = [both(lambda lg: tx.notification(opened, p, lg))] if isinstance(opened, ev.HandoffOpened) else []
    who, at = tx.person(e.actor), tx.when(e.at)
    body.append(Text(f"✅ Taken by {who} at {at} UTC", f"✅ 已由 {who} 于 {at} (UTC) 接手"))
    return card(_title(e, p), body, lang=lang, template="green")


def decision_from_outcome(o: Outcome, pipeline: Pipeline, lang: Lang = "en", *, by: str) -> Card:
    """The card shown right after a button press (by `by`) decided an approval or took a handoff."""
    p = pipeline
    a = o.account
    who = tx.person(by)
    if o.kind == "claimed":
        title = Text(f"Handoff: {a.name}", f"交接:{a.name}")
        line = Text(f"✅ Taken by {who}", f"✅ 已由 {who} 接手")
    else:
        title = Text(
            f"Approval: {a.name} → {_stage(p, o.to_stage, 'en')}", f"审批:{a.name} → {_stage(p, o.to_stage, 'zh')}"
        )
        line = (
            Text(f"✅ Approved by {who}", f"✅ 已由 {who} 批准")
            if o.kind == "approved"
            else Text(f"❌ Rejected by {who}", f"❌ 已由 {who} 驳回")
        )
    body = [both(lambda lg: tx.outcome(o.model_copy(update={"replayed": False}), p, lg)), line]
    return card(title, body, lang=lang, template="red" if o.kind == "rejected" else "green")


def toast(kind: str, message: Text, lang: Lang = "en") -> dict[str, Any]:
    """A card-callback toast: info, success, error or warning."""
    en, zh = clip(message.en, 300), clip(message.zh, 300)
    return {"type": kind, "content": zh if lang == "zh" else en, "i18n": {"en_us": en, "zh_cn": zh}}


def text_message(t: Text) -> str:
    """The `content` of a plain-text fallback message (used when Feishu refuses a card)."""
    return json.dumps({"text": clip(t.zh + "\n\n" + t.en, 4000)}, ensure_ascii=False)
