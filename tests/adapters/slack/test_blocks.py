"""Slack Block Kit rendering: limits, escaping, buttons that decode to commands, both languages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from adapters.common import text as tx
from adapters.common.actions import buttons_for, decode, encode
from adapters.common.grammar import UsageError
from adapters.slack.blocks import (
    SlackMessage,
    claimed_card,
    decided_card,
    error_message,
    escape,
    help_message,
    home_view,
    notification,
    reply,
)
from lifecycle.domain import commands as c
from lifecycle.domain import events as ev
from lifecycle.domain.access import Actor
from lifecycle.domain.pipeline import Pipeline, load_preset
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    AccountView,
    ApprovalList,
    ApprovalView,
    ChecklistLine,
    HandoffView,
    History,
    HistoryLine,
    Outcome,
)

P: Pipeline = load_preset("default")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BOB = Actor("slack", "U0BOB")
LONG = "x" * 3000
EVIL = "<!channel> & <!here> <@U0EVIL> <https://evil.example|click>"


# ---------------------------------------------------------------- builders


def account(n: int = 1, name: str = "Acme", stage: str = "P2", owner: str | None = "slack:U0ALICE") -> AccountView:
    return AccountView(
        id=n,
        name=name,
        stage=stage,
        stage_entered_at=T0 - timedelta(days=20),
        owner=owner,
        amount=Decimal("50000"),
        segment="enterprise",
        contract_end=date(2027, 6, 30),
    )


def card(a: AccountView | None = None, **kw: Any) -> AccountCard:
    a = a or account()
    values: dict[str, Any] = {
        "account": a,
        "checklist": (
            ChecklistLine(
                number=1,
                key="first_test",
                en="First test email sent",
                zh="已成功发送第一封测试邮件",
                done=True,
                by="slack:U0DAVE",
                at=T0,
            ),
            ChecklistLine(number=2, key="domain_auth", en="Domain authentication", zh="域名认证", done=False),
        ),
        "time_in_stage_seconds": 20 * 86400 + 3600,
        "sla_days": 14,
        "overdue": True,
        "allowed_next": ("P3", "CHURNED"),
    }
    values.update(kw)
    return AccountCard(**values)


def approval_view(n: int = 7, name: str = "Acme", reason: str = "trial went well") -> ApprovalView:
    return ApprovalView(
        id=n,
        account_id=n,
        account=name,
        from_stage="PQL",
        to_stage="P0",
        reject_to="SQL",
        team="sales",
        status="pending",
        requested_by="slack:U0ALICE",
        requested_at=T0,
        reason=reason,
    )


def requested(name: str = "Acme", reason: str = "trial went well", n: int = 7) -> ev.ApprovalRequested:
    return ev.ApprovalRequested(
        account_id=1,
        account=name,
        at=T0,
        actor="slack:U0ALICE",
        approval_id=n,
        from_stage="PQL",
        to_stage="P0",
        reject_to="SQL",
        team="sales",
        reason=reason,
        amount=Decimal("50000"),
        owner="slack:U0ALICE",
    )


def decided(decision: str = "approved", name: str = "Acme") -> ev.ApprovalDecided:
    return ev.ApprovalDecided(
        account_id=1,
        account=name,
        at=T0 + timedelta(hours=1),
        actor="slack:U0BOB",
        approval_id=7,
        decision=decision,  # type: ignore[arg-type]
        from_stage="PQL",
        to_stage="P0",
        requested_by="slack:U0ALICE",
    )


def opened(name: str = "Acme") -> ev.HandoffOpened:
    return ev.HandoffOpened(
        account_id=1,
        account=name,
        at=T0,
        actor="slack:U0ALICE",
        handoff_id=3,
        stage="P0",
        from_teams=("sales",),
        to_team="cs",
        owner="slack:U0ALICE",
        amount=Decimal("50000"),
    )


def claimed(name: str = "Acme") -> ev.HandoffClaimed:
    return ev.HandoffClaimed(
        account_id=1,
        account=name,
        at=T0 + timedelta(hours=2),
        actor="slack:U0CAROL",
        handoff_id=3,
        stage="P0",
        to_team="cs",
    )


def every_event(name: str = "Acme", reason: str = "because") -> list[ev.Event]:
    base: dict[str, Any] = {"account_id": 1, "account": name, "at": T0, "actor": "slack:U0ALICE"}
    return [
        ev.AccountAdded(**base, stage="MQL", owner="slack:U0MARY", amount=Decimal(10)),
        ev.StageChanged(**base, from_stage="P1", to_stage="P2", transition="advance", reason=reason),
        requested(name, reason),
        decided(name=name),
        opened(name),
        claimed(name),
        ev.OwnerAssigned(**base, owner="slack:U0BOB", previous="slack:U0ALICE", stage="P2"),
        ev.ChecklistTicked(**base, stage="P2", item="first_test", done=1, total=2),
        ev.RenewalRecorded(**base, renewal="renewal", amount=Decimal(120000), contract_end="2027-06-30", stage="P5"),
    ]


def accounts_list(n: int, stages: tuple[str, ...] = ("MQL", "SQL", "PQL", "P0", "P1", "P2", "P3")) -> AccountList:
    groups = []
    per = n // len(stages)
    k = 0
    for st in stages:
        accs = []
        for _ in range(per + (1 if k < n % len(stages) else 0)):
            k += 1
            accs.append(account(k, f"Account {k}", st))
        groups.append((st, tuple(accs)))
    return AccountList(groups=tuple(groups), total=n)


def history(n: int, name: str = "Acme", reason: str = "moved on") -> History:
    lines = tuple(
        HistoryLine(
            at=T0 + timedelta(hours=i),
            actor="slack:U0ALICE",
            from_stage=None if i == 0 else "P1",
            to_stage="P2",
            kind="advance",
            reason=f"{reason} {i}",
            via="slack",
        )
        for i in range(n)
    )
    return History(account=account(name=name), lines=lines)


# ---------------------------------------------------------------- checks every message must pass


def texts(obj: Any) -> Iterator[dict[str, Any]]:
    """Every text object (plain_text or mrkdwn) anywhere in a block tree."""
    if isinstance(obj, dict):
        if obj.get("type") in ("plain_text", "mrkdwn") and "text" in obj:
            yield obj
        for v in obj.values():
            yield from texts(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from texts(v)


def elements(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    found = []
    for b in blocks:
        for e in b.get("elements", []) + ([b["accessory"]] if "accessory" in b else []):
            if e.get("type") == kind:
                found.append(e)
    return found


def check_blocks(blocks: list[dict[str, Any]], max_blocks: int) -> None:
    assert 0 < len(blocks) <= max_blocks
    for b in blocks:
        Block.parse(b).to_dict()  # type: ignore[union-attr]  # the SDK's validators, again, from the dict
        if b["type"] == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert 0 < len(b["text"]["text"]) <= 3000
            for f in b.get("fields", []):
                assert len(f["text"]) <= 2000
            assert len(b.get("fields", [])) <= 10
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and len(b["text"]["text"]) <= 150
        if "block_id" in b:
            assert len(b["block_id"]) <= 255
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids))
    for t in texts(blocks):
        assert t["text"]
        if t["type"] == "mrkdwn":
            # The only <...> tokens we emit are user mentions: nothing a user typed can ping a channel.
            for token in re.findall(r"<([^>]*)>", t["text"]):
                assert re.fullmatch(r"@[UW][A-Z0-9]+", token), t["text"]
    for button in elements(blocks, "button"):
        assert len(button["text"]["text"]) <= 75 and len(button["value"]) <= 2000
        if "confirm" in button:
            cf = button["confirm"]
            assert len(cf["title"]["text"]) <= 100 and len(cf["text"]["text"]) <= 300
            assert len(cf["confirm"]["text"]) <= 30 and len(cf["deny"]["text"]) <= 30


def check(msg: SlackMessage) -> SlackMessage:
    assert isinstance(msg, SlackMessage)
    assert msg.text.strip() and len(msg.text) <= 4000
    assert "<!" not in msg.text
    check_blocks(msg.blocks, 50)
    json.dumps(msg.blocks)  # what the Web API will be sent
    return msg


def all_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(t["text"] for t in texts(blocks))


def of_type(msg: SlackMessage | list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    blocks = msg.blocks if isinstance(msg, SlackMessage) else msg
    return [b for b in blocks if b["type"] == kind]


# ---------------------------------------------------------------- replies


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(
    "kw",
    [
        {"kind": "added"},
        {"kind": "moved", "from_stage": "P1", "to_stage": "P2", "handoff_ids": (3,)},
        {"kind": "approval_requested", "to_stage": "P0", "approval_id": 7, "approval_team": "sales"},
        {"kind": "approved", "approval_id": 7},
        {"kind": "rejected", "approval_id": 7, "replayed": True},
        {"kind": "ticked", "item": "first_test"},
        {"kind": "already_ticked", "item": "first_test"},
        {"kind": "assigned"},
        {"kind": "renewed", "renewal": "expansion"},
        {"kind": "claimed"},
    ],
)
def test_every_outcome_is_one_section_with_the_shared_sentence(kw: dict[str, Any], lang: str) -> None:
    o = Outcome(account=account(), **kw)
    msg = check(reply(o, P, lang))  # type: ignore[arg-type]
    assert msg.text == escape(tx.outcome(o, P, lang))  # type: ignore[arg-type]
    (section,) = msg.blocks
    assert section["type"] == "section" and "*Acme*" in section["text"]["text"]


def test_assigned_outcome_mentions_the_slack_owner() -> None:
    msg = check(reply(Outcome(kind="assigned", account=account()), P, "en"))
    assert "<@U0ALICE>" in msg.blocks[0]["text"]["text"]
    assert msg.text == "Acme is now owned by @U0ALICE."


def test_account_card_shows_stage_owner_sla_checklist_and_what_is_pending() -> None:
    ap = approval_view()
    h = HandoffView(id=3, account_id=1, stage="P2", to_team="support", opened_at=T0)
    msg = check(reply(card(pending_approval=ap, open_handoffs=(h,)), P, "en"))
    assert msg.text == escape(tx.card(card(pending_approval=ap, open_handoffs=(h,)), P, "en"))
    header, fields, checklist, context = msg.blocks
    assert header["type"] == "header" and header["text"]["text"] == "Acme (#1)"
    f = [x["text"] for x in fields["fields"]]
    assert "*Stage*\nP2 Testing (测试发送)" in f
    assert "*Owner team*\nCustomer Success + Tech Support" in f
    assert "*Owner*\n<@U0ALICE>" in f
    assert "*Time in stage*\n20d 1h / SLA 14d ⚠ overdue" in f
    assert "*Amount*\n50,000" in f
    assert "*Segment*\nenterprise" in f and "*Contract end*\n2027-06-30" in f
    lines = checklist["text"]["text"].splitlines()
    assert lines[0].startswith("*Checklist*")
    assert lines[1].startswith("✅ 1. First test email sent — <@U0DAVE>") and lines[2] == "⬜ 2. Domain authentication"
    note = context["elements"][0]["text"]
    assert "Next: P3 Go-Live (初期生产), Churned (流失客户)" in note
    assert "Waiting for approval #7 → P0 Signed (签约待接入)" in note and "<@U0ALICE>" in note
    assert "Handoff open for Tech Support" in note


def test_card_without_sla_or_extras_and_with_a_non_slack_owner() -> None:
    a = account(owner="feishu:ou_carol").model_copy(update={"segment": None, "contract_end": None})
    msg = check(reply(card(a, sla_days=None, overdue=False, checklist=(), allowed_next=()), P, "en"))
    assert [b["type"] for b in msg.blocks] == ["header", "section"]
    f = [x["text"] for x in msg.blocks[1]["fields"]]
    assert "*Owner*\n@ou_carol" in f and "*Time in stage*\n20d 1h" in f
    assert not any(x.startswith("*Segment*") for x in f)


def test_card_in_chinese_uses_chinese_labels() -> None:
    msg = check(reply(card(), P, "zh"))
    f = [x["text"] for x in msg.blocks[1]["fields"]]
    assert "*阶段*\nP2 测试发送 (Testing)" in f
    assert "*负责团队*\n客户成功 + 技术支持" in f
    assert "*停留时间*\n20天1小时 / SLA 14天 ⚠ 超期" in f
    assert "✅ 1. 已成功发送第一封测试邮件" in msg.blocks[2]["text"]["text"]
    assert "可推进到" in msg.blocks[3]["elements"][0]["text"]
    assert "阶段" in msg.text


def test_history_newest_last() -> None:
    msg = check(reply(history(5), P, "en"))
    body = "\n".join(b["text"]["text"] for b in of_type(msg, "section"))
    lines = body.splitlines()
    assert len(lines) == 5 and "created in *P2 Testing (测试发送)*" in lines[0]
    assert lines[-1].startswith("`2026-03-02 13:00` <@U0ALICE> via slack: P1 Integration")
    assert not of_type(msg, "context")


def test_a_300_line_history_shows_the_newest_lines_and_says_how_many_are_hidden() -> None:
    msg = check(reply(history(300).model_copy(update={"truncated": True}), P, "en"))
    body = "\n".join(b["text"]["text"] for b in of_type(msg, "section"))
    assert "moved on 299" in body and "moved on 239" not in body
    notes = all_text(of_type(msg, "context"))
    shown = len(body.splitlines())
    assert f"… {300 - shown} earlier changes not shown; `history` shows the last {shown}." in notes
    assert "Earlier changes were not loaded; these are the last 300." in notes


def test_history_with_huge_reasons_stays_within_block_limits() -> None:
    msg = check(reply(history(80, reason=LONG), P, "zh"))
    assert "更早的" in all_text(of_type(msg, "context"))


def test_a_500_account_list_is_cut_with_a_note_on_how_to_narrow_it() -> None:
    al = accounts_list(500)
    msg = check(reply(al, P, "en"))
    assert msg.blocks[0]["text"]["text"] == "Accounts — 500"
    sections = of_type(msg, "section")
    assert sections[0]["text"]["text"].startswith("*MQL Lead (线索)* — 72\n• #1 *Account 1* · <@U0ALICE> · 50,000")
    shown = sum(t.count("\n• ") for t in (s["text"]["text"] for s in sections))
    assert shown == tx.MAX_LINES
    assert msg.blocks[-1]["type"] == "context"
    assert msg.blocks[-1]["elements"][0]["text"] == f"… {500 - shown} more not shown; narrow with `/stage list MQL`."


def test_a_list_with_long_names_keeps_under_50_blocks() -> None:
    al = AccountList(
        groups=tuple((st.key, (account(i, LONG + str(i), st.key),)) for i, st in enumerate(P.stages)), total=11
    )
    check(reply(al, P, "en"))
    filtered = al.model_copy(update={"groups": al.groups[:1], "total": 300, "truncated": True, "stage_filter": "MQL"})
    msg = check(reply(filtered, P, "zh"))
    assert "`/stage list MQL --mine`" in msg.blocks[-1]["elements"][0]["text"]


def test_empty_list_and_empty_approvals() -> None:
    assert check(reply(AccountList(groups=(), total=0), P, "en")).blocks[0]["text"]["text"] == "No accounts match."
    assert "没有待处理" in check(reply(ApprovalList(approvals=()), P, "zh")).blocks[0]["text"]["text"]


def test_approval_list_reply() -> None:
    al = ApprovalList(approvals=tuple(approval_view(i, reason=LONG) for i in range(1, 120)))
    msg = check(reply(al, P, "en"))
    assert msg.blocks[0]["text"]["text"] == "Waiting approvals — 119"
    assert "*#1* *Acme*: PQL Product-qualified (产品验证) → *P0 Signed (签约待接入)*" in all_text(msg.blocks)
    assert "more not shown" in msg.blocks[-1]["elements"][0]["text"]


# ---------------------------------------------------------------- help and errors


def test_help_is_a_code_block_prefixed_with_the_slash_command() -> None:
    msg = check(help_message("en"))
    body = msg.blocks[0]["text"]["text"]
    assert body.startswith("Usage: `/stage COMMAND`\n```") and "move" in body and body.endswith("```")
    assert "/stage" in msg.text
    topic = check(help_message("zh", "move"))
    assert "move ACCOUNT STAGE" in topic.blocks[0]["text"]["text"] and "推进" in topic.text
    with pytest.raises(UsageError):
        help_message("en", "nope")


def test_error_message_is_an_escaped_warning() -> None:
    msg = check(error_message("No account <!channel> & co"))
    assert msg.blocks == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": ":warning: No account &lt;!channel&gt; &amp; co", "verbatim": True},
        }
    ]
    check(error_message(LONG + LONG))


# ---------------------------------------------------------------- notifications and cards


def test_approval_card_has_header_fields_and_two_decision_buttons() -> None:
    e = requested()
    msg = check(notification(e, P, "en"))
    assert msg.text == escape(tx.notification(e, P, "en"))
    header, fields, context, actions = msg.blocks
    assert header["text"]["text"] == "Approval: Acme → P0 Signed"
    f = [x["text"] for x in fields["fields"]]
    assert f[:4] == [
        "*From*\nPQL Product-qualified (产品验证)",
        "*To*\nP0 Signed (签约待接入)",
        "*Amount*\n50,000",
        "*Requested by*\n<@U0ALICE>",
    ]
    assert "*Reason*\ntrial went well" in f
    assert "if rejected → SQL Opportunity (商机)" in context["elements"][0]["text"]
    assert actions["type"] == "actions" and "7" in actions["block_id"]
    approve, reject = actions["elements"]
    assert (approve["action_id"], approve["style"]) == ("stagebot:approve", "primary")
    assert (reject["action_id"], reject["style"]) == ("stagebot:reject", "danger")
    assert "confirm" not in approve
    cf = reject["confirm"]
    assert cf["confirm"]["text"] == "Reject" and cf["deny"]["text"] == "Cancel" and cf["style"] == "danger"
    assert "Acme" in cf["text"]["text"]
    for button, yes in ((approve, True), (reject, False)):
        cmd = decode(button["value"], actor=BOB, key="k", via="slack")
        assert cmd == c.DecideApproval(approval_id=7, approve=yes, actor=BOB, key="k", via="slack")
    assert [b["value"] for b in (approve, reject)] == [encode(b.value) for b in buttons_for(e)]


def test_action_block_ids_change_with_each_revision_and_are_stable_for_the_same_event() -> None:
    def block_id(e: ev.Event) -> str:
        return of_type(notification(e, P, "en"), "actions")[0]["block_id"]

    assert block_id(requested()) == block_id(requested())
    assert block_id(requested()) != block_id(requested(reason="other"))
    assert block_id(requested(n=8)) != block_id(requested())
    assert ":3:" in block_id(opened())


def test_approval_card_in_chinese() -> None:
    msg = check(notification(requested(), P, "zh"))
    assert msg.blocks[0]["text"]["text"] == "审批:Acme → P0 签约待接入"
    assert "*当前阶段*\nPQL 产品验证 (Product-qualified)" in [x["text"] for x in msg.blocks[1]["fields"]]
    labels = [e["text"]["text"] for e in msg.blocks[-1]["elements"]]
    assert labels == ["批准", "驳回"]
    assert msg.blocks[-1]["elements"][1]["confirm"]["deny"]["text"] == "取消"
    assert "审批" in msg.text


def test_handoff_prompt_has_a_take_ownership_button() -> None:
    msg = check(notification(opened(), P, "en"))
    section, actions = msg.blocks
    assert section["text"]["text"].startswith("Handoff: *Acme* entered P0 Signed")
    (take,) = actions["elements"]
    assert take["action_id"] == "stagebot:claim" and take["style"] == "primary"
    assert decode(take["value"], actor=BOB, key="k") == c.ClaimHandoff(handoff_id=3, actor=BOB, key="k")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_event_renders_and_only_approvals_and_handoffs_have_buttons(lang: str) -> None:
    for e in every_event():
        msg = check(notification(e, P, lang))  # type: ignore[arg-type]
        assert msg.text == escape(tx.notification(e, P, lang))  # type: ignore[arg-type]
        assert bool(of_type(msg, "actions")) == isinstance(e, ev.ApprovalRequested | ev.HandoffOpened)


def test_stage_change_notification_mentions_the_actor() -> None:
    msg = check(notification(every_event()[1], P, "en"))
    assert msg.blocks[0]["text"]["text"] == (
        "*Acme* moved P1 Integration (技术对接) → P2 Testing (测试发送) by <@U0ALICE> — because"
    )


def test_decided_card_has_no_buttons_and_names_the_decider() -> None:
    msg = check(decided_card(decided(), P, "en"))
    assert not of_type(msg, "actions")
    assert msg.blocks[0]["text"]["text"] == "Approval: Acme → P0 Signed"
    assert msg.blocks[-1]["elements"][0]["text"] == "✅ Approved by <@U0BOB> at 2026-03-02 10:00 UTC"
    assert msg.text == escape(tx.notification(decided(), P, "en"))
    rejected = check(decided_card(decided("rejected"), P, "zh", requested=requested()))
    assert not of_type(rejected, "actions")
    assert rejected.blocks[-1]["elements"][0]["text"] == "❌ 已由 <@U0BOB> 于 2026-03-02 10:00 UTC 驳回"
    assert "*金额*\n50,000" in [x["text"] for x in rejected.blocks[1]["fields"]]
    # Same header and fields as the card it replaces.
    card_blocks = notification(requested(), P, "zh").blocks
    assert rejected.blocks[:2] == card_blocks[:2]


def test_claimed_card_has_no_button_and_names_who_took_it() -> None:
    msg = check(claimed_card(claimed(), P, "en"))
    assert not of_type(msg, "actions")
    assert msg.blocks[-1]["elements"][0]["text"] == "✅ Taken by <@U0CAROL> at 2026-03-02 11:00 UTC"
    with_prompt = check(claimed_card(claimed(), P, "zh", opened=opened()))
    assert with_prompt.blocks[0]["text"]["text"].startswith("交接:*Acme*")
    assert "接手" in with_prompt.blocks[-1]["elements"][0]["text"]


# ---------------------------------------------------------------- hostile input


def test_3000_character_names_and_reasons_do_not_raise() -> None:
    for e in every_event(LONG, LONG):
        check(notification(e, P, "en"))
    long_decision = decided(name=LONG).model_copy(update={"note": LONG})
    check(decided_card(long_decision, P, "en", requested=requested(LONG, LONG)))
    check(claimed_card(claimed(LONG), P, "en", opened=opened(LONG)))
    a = account(name=LONG).model_copy(update={"segment": LONG})
    msg = check(reply(card(a), P, "en"))
    assert msg.blocks[0]["text"]["text"].endswith("… (#1)")
    check(reply(Outcome(kind="moved", account=a, from_stage="P1", to_stage="P2"), P, "zh"))
    check(reply(history(3, name=LONG, reason=LONG), P, "en"))
    header = notification(requested(LONG), P, "en").blocks[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("→ P0 Signed")


def test_user_text_cannot_ping_a_channel() -> None:
    msgs = [notification(e, P, "en") for e in every_event(EVIL, EVIL)]
    a = account(name=EVIL, owner="slack:U1> <!channel").model_copy(update={"segment": EVIL})
    msgs += [
        reply(card(a), P, "en"),
        reply(Outcome(kind="assigned", account=a), P, "en"),
        reply(history(2, name=EVIL, reason=EVIL), P, "en"),
        reply(AccountList(groups=(("P2", (a,)),), total=1), P, "en"),
        reply(ApprovalList(approvals=(approval_view(name=EVIL, reason=EVIL),)), P, "en"),
        error_message(EVIL),
    ]
    for msg in msgs:
        check(msg)  # includes: every <...> in mrkdwn is a user mention we made
        assert "&lt;!channel&gt;" in all_text(msg.blocks) + msg.text
    owner_field = [x["text"] for x in msgs[-6].blocks[1]["fields"] if x["text"].startswith("*Owner*")]
    assert owner_field == ["*Owner*\n@U1&gt; &lt;!channel"]


# ---------------------------------------------------------------- App Home


def handoff_pairs(n: int) -> list[tuple[AccountView, HandoffView]]:
    return [
        (account(i, f"Handed {i}", "P0"), HandoffView(id=i, account_id=i, stage="P0", to_team="cs", opened_at=T0))
        for i in range(1, n + 1)
    ]


def test_home_view_has_three_parts_with_buttons_matching_the_card() -> None:
    view = home_view(
        mine=accounts_list(5),
        waiting=ApprovalList(approvals=(approval_view(),)),
        stale=accounts_list(2),
        pipeline=P,
        lang="en",
        handoffs=handoff_pairs(1),
    )
    assert view["type"] == "home"
    View(**view).to_dict()  # the SDK's view validation (1..100 blocks)
    check_blocks(view["blocks"], 100)
    headers = [b["text"]["text"] for b in of_type(view["blocks"], "header")]
    assert headers == ["My accounts by stage", "Waiting on you", "Stale (past SLA)"]
    (actions,) = of_type(view["blocks"], "actions")
    card_actions = of_type(notification(requested(), P, "en"), "actions")[0]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (e["action_id"], e["value"]) for e in card_actions["elements"]
    ]
    (take,) = [b["accessory"] for b in view["blocks"] if "accessory" in b]
    assert take["action_id"] == "stagebot:claim"
    assert decode(take["value"], actor=BOB, key="k") == c.ClaimHandoff(handoff_id=1, actor=BOB, key="k")
    assert "since 2026-02-10 09:00" in all_text(view["blocks"])


def test_home_view_stays_within_100_blocks_and_says_what_it_left_out() -> None:
    for lang in ("en", "zh"):
        view = home_view(
            mine=accounts_list(500),
            waiting=ApprovalList(approvals=tuple(approval_view(i, reason=LONG) for i in range(1, 200))),
            stale=accounts_list(300),
            pipeline=P,
            lang=lang,  # type: ignore[arg-type]
            handoffs=handoff_pairs(50),
        )
        check_blocks(view["blocks"], 100)
        notes = [b["elements"][0]["text"] for b in of_type(view["blocks"], "context")]
        assert len(notes) == 3
        if lang == "en":
            assert notes[1].startswith("… and ") and "`/stage approvals`" in notes[1]
        # Every part got some room.
        assert len(of_type(view["blocks"], "actions")) >= 5


def test_empty_home_view() -> None:
    view = home_view(
        mine=AccountList(groups=(), total=0),
        waiting=[],  # the filtered approvals, as the App Home listener passes them
        stale=AccountList(groups=(), total=0),
        pipeline=P,
        lang="zh",
    )
    check_blocks(view["blocks"], 100)
    assert "你名下还没有客户。" in all_text(view["blocks"])


def test_a_notice_on_top_of_a_full_home_view_still_fits_in_100_blocks() -> None:
    notice = error_message("Only Sales approvers can decide this.").blocks
    for handoffs in (50, 51):  # an odd and an even count of one-block units left over
        view = home_view(
            mine=accounts_list(500),
            waiting=ApprovalList(approvals=tuple(approval_view(i) for i in range(1, 200))),
            stale=accounts_list(300),
            pipeline=P,
            handoffs=handoff_pairs(handoffs),
            notice=notice,
        )
        check_blocks(view["blocks"], 100)
        View(**view).to_dict()
        assert view["blocks"][0]["text"]["text"] == notice[0]["text"]["text"]
        assert view["blocks"][1]["type"] == "divider"
        assert len(of_type(view["blocks"], "context")) == 3  # every part still says what it left out
