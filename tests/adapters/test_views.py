"""The view model: one Card per event, outcome and account card, drawn the same by every renderer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.common import text as tx
from adapters.common import views
from adapters.common.actions import buttons_for
from adapters.common.view import Span, plain
from adapters.feishu import cards
from adapters.slack import blocks
from lifecycle.domain import events as ev
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.views import AccountCard, AccountView
from tests.adapters.slack.samples import every_event

P = load_preset("default")
EVENTS = every_event(name="<!here> *Acme*", reason="see <https://x.io|here>")


@pytest.mark.parametrize("kind", sorted(EVENTS))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_marked_sentence_reads_as_the_plain_one(kind: str, lang: str) -> None:
    e = EVENTS[kind]
    line = tx.notification_line(e, P, lang)  # type: ignore[arg-type]
    assert plain(line) == tx.notification(e, P, lang)  # type: ignore[arg-type]
    assert Span(e.account, "strong") in line  # the account is marked wherever a sentence names it


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_a_card_keeps_the_words_and_buttons_of_the_event(kind: str) -> None:
    e = EVENTS[kind]
    card = views.card_for_event(e, P, "en")
    assert card.text == tx.notification(e, P, "en")
    assert [b.value for b in card.buttons] == [b.value for b in buttons_for(e)]
    assert card.compact == (not isinstance(e, ev.ApprovalRequested))  # approvals are drawn with fields


def test_slack_escapes_user_text_and_mentions_people_from_the_same_line() -> None:
    e = EVENTS["StageChanged"]
    section = blocks.notification(e, P).blocks[0]["text"]["text"]
    assert section.startswith("&lt;!here&gt; *Acme* moved")  # not bold: an inner asterisk would break it
    assert "<@U0ALICE>" in section and "<https" not in section


def test_feishu_shows_an_approvals_facts_as_label_value_columns() -> None:
    e = EVENTS["ApprovalRequested"]
    card = cards.notification(e, P, "en")
    columns = [col for el in card["body"]["elements"] if el["tag"] == "column_set" for col in el["columns"]]
    pairs = [tuple(x["text"]["content"] for x in col["elements"]) for col in columns if len(col["elements"]) == 2]
    assert pairs[:4] == [
        ("From", tx.stage_title(P, "PQL")),
        ("To", tx.stage_title(P, "P0")),
        ("Amount", "99,999,999,999,999.99"),
        ("Requested by", "@U0ALICE"),
    ]
    assert ("Reason", "see <https://x.io|here>") in pairs
    label = columns[0]["elements"][0]["text"]
    assert label["i18n_content"] == {"en_us": "From", "zh_cn": "当前阶段"}  # labels in both languages
    assert "Approval: <!here> *Acme* → " in cards.card_text(card).en
    assert "From: " in cards.card_text(card).en  # the plain-text fallback keeps the fields


def test_an_account_card_is_fields_on_feishu_and_on_slack() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    a = AccountView(id=4, name="Globex", stage="P2", stage_entered_at=at, owner="feishu:ou_x", amount=Decimal(5))
    cd = AccountCard(account=a, checklist=(), time_in_stage_seconds=3600, sla_days=None, overdue=False)
    card = views.card_for_account(cd, P, "en")
    assert [f.label for f in card.fields][:3] == ["Stage", "Owner team", "Owner"]
    slack = blocks.reply(cd, P).blocks
    assert slack[0]["text"]["text"] == "Globex (#4)" and slack[1]["fields"][0]["text"].startswith("*Stage*\n")
    feishu = cards.reply(cd, P, "en")
    assert "Owner: @ou_x" in cards.card_text(feishu).en
