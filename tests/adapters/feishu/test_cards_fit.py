"""The fit step of the Feishu renderer: what a shortened card keeps, what it says about the rest, and that the
running bot's biggest replies and notifications now get past a fake Feishu as strict as the real one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.feishu import cards
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.i18n import Text
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.views import AccountList, AccountView, History, HistoryLine, TaskList, TaskView
from tests.adapters.feishu.conftest import FeishuDriver, card_buttons, card_texts
from tests.fakes import feishu_card_rules as rules

P = load_preset("default")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
EMOJI_NAME = "😀" * 196  # 784 bytes, under the core's 200 characters with room for a number


def body_text(card: cards.Card) -> str:
    return str(card["body"]["elements"][0]["text"]["content"])


def account(n: int, stage: str) -> AccountView:
    return AccountView(
        id=n, name=f"{EMOJI_NAME}{n}", stage=stage, stage_entered_at=NOW, owner="feishu:ou_x", amount=Decimal(1)
    )


def judged(card: cards.Card) -> None:
    """The card as a create body (content as a JSON string, serialised as lark-oapi does) passes the rule book."""
    content = cards.content(card)
    body = {"receive_id": "oc_" + "a" * 32, "msg_type": "interactive", "content": content, "uuid": "u" * 50}
    size = len(json.dumps(body, ensure_ascii=False).encode())
    assert rules.check_message("interactive", content, size) is None


# ---------------------------------------------------------------------------------------------------- unit


def test_clip_bytes_cuts_at_a_character_boundary() -> None:
    assert cards.clip_bytes("abc", 3) == "abc"
    clipped = cards.clip_bytes("😀" * 10, 15)  # 3 bytes are kept for the ellipsis: 12 bytes of emoji
    assert clipped == "😀😀😀…" and len(clipped.encode()) <= 15


def test_short_strings_carry_both_languages_and_body_texts_one() -> None:
    card = cards.card(Text("Title", "标题"), [Text("body en", "正文")], lang="zh", buttons=[])
    assert card["config"]["summary"] == {"content": "标题", "i18n_content": {"en_us": "Title", "zh_cn": "标题"}}
    assert card["header"]["title"]["i18n_content"] == {"en_us": "Title", "zh_cn": "标题"}
    assert card["body"]["elements"][0]["text"] == {"tag": "plain_text", "content": "正文"}
    assert rules.check_card(card) is None


@pytest.mark.parametrize(
    ("stages", "mine", "command"),
    [
        (("SQL", "P0"), False, "list SQL"),  # several stages: one stage at a time
        (("SQL", "P0"), True, "list SQL --mine"),
        (("SQL",), False, "list SQL"),
        (("SQL",), True, "list SQL --mine"),
    ],
)
def test_a_list_too_big_says_how_many_more_and_which_command_narrows_it(
    stages: tuple[str, ...], mine: bool, command: str
) -> None:
    per = 30 if len(stages) > 1 else 60
    groups = tuple((st, tuple(account(i + 100 * k, st) for i in range(per))) for k, st in enumerate(stages))
    al = AccountList(groups=groups, total=250, mine=mine)
    card = cards.reply(al, P, "en")
    judged(card)
    text = body_text(card)
    shown = text.count(EMOJI_NAME)
    assert 0 < shown < 60
    last = text.rsplit("\n", 1)[-1]
    assert last == f"… {250 - shown} more not shown; narrow with `{command}`."  # the words Slack says, unprefixed
    # The Chinese card says the same in Chinese.
    assert body_text(cards.reply(al, P, "zh")).rsplit("\n", 1)[-1].startswith("…还有 ")


def test_a_list_cut_at_60_rows_counts_the_rest_under_their_stages() -> None:
    def group(stage: str, first: int) -> tuple[str, tuple[AccountView, ...]]:
        return stage, tuple(account(n, stage).model_copy(update={"name": f"a{n}"}) for n in range(first, first + 50))

    groups = (group("SQL", 0), group("P0", 100), group("P1", 200))
    text = body_text(cards.reply(AccountList(groups=groups, total=150), P, "en"))
    assert text.count("\n• #") == 60
    assert text.splitlines()[0] == "SQL Opportunity (商机) — 50" and "\nP0 " in text and "\nP1 " not in text
    assert text.endswith("… 90 more not shown; narrow with `list SQL`.")


def test_a_long_history_keeps_the_newest_changes() -> None:
    lines = tuple(
        HistoryLine(
            at=NOW,
            actor="feishu:ou_x",
            from_stage="MQL",
            to_stage="SQL",
            kind="advance",
            reason=f"r{n}" + "😀" * 900,
            via="feishu",
        )
        for n in range(40)
    )
    h = History(account=account(1, "SQL"), lines=lines)
    card = cards.reply(h, P, "en")
    judged(card)
    text = body_text(card)
    kept = [n for n in range(40) if f"r{n}😀" in text]
    assert kept == list(range(40 - len(kept), 40)) and 0 < len(kept) < 40
    assert f"… {40 - len(kept)} earlier changes not shown; `history` shows the last {len(kept)}." in text
    cut_by_core = cards.reply(History(account=account(1, "SQL"), lines=lines[:2], truncated=True), P, "en")
    assert "not shown" not in body_text(cut_by_core)  # no "0 earlier"
    assert "(Earlier changes were not loaded; these are the last 2.)" in cards.card_text(cut_by_core).en


def test_tasks_not_shown_lose_their_done_buttons_too() -> None:
    # A control character is 7 bytes on the wire (\\u0000 inside the content string): about 3.5 KB a row.
    tasks = tuple(
        TaskView(
            id=n,
            account_id=1000 + n,
            account="\x00" * 200,
            title_en="\x00" * 300,
            title_zh="中" * 300,
            team=None,
            assignee=None,
            status="open",
            opened_at=NOW,
        )
        for n in range(1, 41)
    )
    card = cards.reply(TaskList(tasks=tasks), P, "en")
    judged(card)
    text = body_text(card)
    lines = text.splitlines()
    shown = [t.id for t in tasks if any(line.startswith(f"#{t.id} ") for line in lines)]
    assert shown == list(range(1, len(shown) + 1)) and 0 < len(shown) < 10
    assert [b["behaviors"][0]["value"]["task"] for b in card_buttons(card)] == shown
    assert [b["text"]["content"] for b in card_buttons(card)] == [f"Done #{n}" for n in shown]
    assert text.endswith(f"… {40 - len(shown)} more not shown; `tasks ACCOUNT` shows one account's.")


# ---------------------------------------------------------------------------------------------------- the bot


ADMIN = Actor("feishu", "ou_admin")


def add_accounts(feishu: FeishuDriver, n: int, stage: str, first: int = 0) -> list[int]:
    core = feishu.running.app.core
    return [
        core.execute(c.AddAccount(name=f"{EMOJI_NAME}{i}", stage=stage, actor=ADMIN, key=str(uuid.uuid4()))).account.id
        for i in range(first, first + n)
    ]


def reply_to(feishu: FeishuDriver, text: str) -> Any:
    message_id = f"om_{uuid.uuid4().hex[:16]}"
    assert feishu.say(text, open_id="ou_admin", message_id=message_id).status == 200
    return feishu.wait_reply(message_id)


def test_a_list_of_hundreds_of_emoji_names_is_answered_not_refused(feishu: FeishuDriver) -> None:
    add_accounts(feishu, 150, "SQL")
    add_accounts(feishu, 150, "P0", first=150)
    got = reply_to(feishu, "list")  # the fake refuses what Feishu refuses: a refused card is never recorded
    assert got.msg_type == "interactive"
    [call] = [
        k for k in feishu.fake.calls_of("reply") if k.status == 200 and json.loads(k.json["content"]) == got.content
    ]
    assert len(call.raw) <= rules.CARD_BODY_LIMIT
    text = card_texts(got.content)
    shown = text.count(EMOJI_NAME)
    assert f"… {300 - shown} more not shown; narrow with `list " in text


def test_a_move_with_the_longest_name_and_reason_posts_a_card(feishu: FeishuDriver) -> None:
    [account_id] = add_accounts(feishu, 1, "MQL")
    reason = "😀" * 1000
    said = card_texts(reply_to(feishu, f"move #{account_id} SQL {reason}").content)
    assert "SQL" in said
    assert feishu.fake.wait_for(lambda: any(m.msg_type == "interactive" for m in feishu.to_chat("oc_sales")))
    posted = next(m for m in feishu.to_chat("oc_sales") if m.msg_type == "interactive")
    assert reason in card_texts(posted.content)
    assert [m.msg_type for m in feishu.to_chat("oc_sales")] == ["interactive"]  # no text fallback was needed
