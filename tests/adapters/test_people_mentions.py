"""Each platform names a person its own way: Slack `<@U…>`, Feishu `<at id=ou_…></at>`, or their name
where they have no account on that platform; never another platform's internal id."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from adapters.common import text as tx
from adapters.feishu import cards
from adapters.slack import blocks
from lifecycle.domain import events as ev
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.views import Who
from tests.fakes.feishu_card_rules import check_card

P = load_preset("default")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALICE = Who(name="Alice Wang", refs=("slack:U0ALICE", "feishu:ou_alice"))
SAM = Who(name="Sam Chen", refs=("feishu:ou_sam",))  # on Feishu only


def assigned(owner: str, people: dict[str, Who], actor: str = "system:automation") -> ev.OwnerAssigned:
    return ev.OwnerAssigned(
        account_id=1, account="Acme", at=T0, actor=actor, owner=owner, stage="PQL", audience=("sales",), people=people
    )


def test_slack_mentions_a_person_by_their_slack_id_whichever_ref_is_stored() -> None:
    for stored in ("slack:U0ALICE", "feishu:ou_alice"):
        msg = blocks.notification(assigned(stored, {stored: ALICE}), P)
        shown = json.dumps(msg.blocks)
        assert "<@U0ALICE>" in shown and "ou_alice" not in shown and "ou_alice" not in msg.text


def test_slack_names_someone_with_no_slack_account_never_their_feishu_id() -> None:
    msg = blocks.notification(assigned("feishu:ou_sam", {"feishu:ou_sam": SAM}), P)
    shown = json.dumps(msg.blocks) + msg.text
    assert "Sam Chen" in shown and "ou_sam" not in shown


def test_feishu_notifications_mention_people_with_a_feishu_account() -> None:
    card = cards.notification(assigned("slack:U0ALICE", {"slack:U0ALICE": ALICE}), P)
    assert check_card(card) is None
    mentions = [e for e in card["body"]["elements"] if e["tag"] == "markdown"]
    assert mentions == [{"tag": "markdown", "content": "<at id=ou_alice></at>"}]
    body = json.dumps([e for e in card["body"]["elements"] if e["tag"] != "markdown"], ensure_ascii=False)
    assert "Alice Wang" in body and "U0ALICE" not in body  # the text names her; no Slack id


def test_feishu_names_someone_with_no_feishu_account_and_mentions_nobody() -> None:
    bob = Who(name="Bob Li", refs=("slack:U0BOB",))
    card = cards.notification(assigned("slack:U0BOB", {"slack:U0BOB": bob}), P)
    assert not [e for e in card["body"]["elements"] if e["tag"] == "markdown"]
    assert "Bob Li" in json.dumps(card, ensure_ascii=False) and "U0BOB" not in json.dumps(card)


def test_a_feishu_mention_never_carries_anything_but_an_open_id() -> None:
    evil = Who(name="x", refs=("feishu:ou_x></at><at id=all",))
    card = cards.notification(assigned("feishu:ou_x></at><at id=all", {"feishu:ou_x></at><at id=all": evil}), P)
    assert "<at id=all>" not in json.dumps([e for e in card["body"]["elements"] if e["tag"] == "markdown"])


def test_plain_text_names_people_from_the_directory() -> None:
    line = tx.notification_line(assigned("slack:U0ALICE", {"slack:U0ALICE": ALICE}), P)
    assert tx.notification(assigned("slack:U0ALICE", {"slack:U0ALICE": ALICE}), P) == "Acme is now owned by Alice Wang"
    assert any(not isinstance(s, str) and s.refs == ALICE.refs for s in line)
    unknown = assigned("feishu:ou_zed", {})
    assert "@ou_zed" in tx.notification(unknown, P)  # nobody in the directory: the id as before
