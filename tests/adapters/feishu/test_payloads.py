"""Recorded Feishu request bodies (tests/fakes/payloads/feishu/, shaped as Feishu's docs show them),
encrypted and signed, each answered by the running bot as a person would expect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.feishu.conftest import VERIFICATION_TOKEN, FeishuDriver, card_texts

PAYLOADS = Path(__file__).parents[2] / "fakes" / "payloads" / "feishu"


def recorded(name: str) -> dict[str, Any]:
    """The recorded body, carrying this test's Verification Token (Feishu's is in the file)."""
    payload: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    if "header" in payload:
        payload["header"]["token"] = VERIFICATION_TOKEN
    else:
        payload["token"] = VERIFICATION_TOKEN
    return payload


def texts_to(feishu: FeishuDriver, receive_id: str, timeout: float = 10.0) -> str:
    def sent() -> list[Any]:
        return [m for m in feishu.fake.messages if m.receive_id == receive_id]

    assert feishu.fake.wait_for(lambda: bool(sent()), timeout), f"nothing sent to {receive_id}"
    return card_texts(sent()[0].content)


def test_every_recorded_payload_is_covered() -> None:
    assert {p.stem for p in PAYLOADS.glob("*.json")} == set(CASES)


def text_message(feishu: FeishuDriver) -> None:
    payload = recorded("im.message.receive_v1.text")
    assert feishu.send(payload).status == 200
    reply = feishu.wait_reply(payload["event"]["message"]["message_id"])
    assert "Added Acme Corp" in card_texts(reply.content)


def post_message(feishu: FeishuDriver) -> None:
    payload = recorded("im.message.receive_v1.post")
    assert feishu.send(payload).status == 200
    reply = feishu.wait_reply(payload["event"]["message"]["message_id"])
    assert "help" in card_texts(reply.content).lower()


def card_action(feishu: FeishuDriver) -> None:
    assert feishu.say('add "Acme Corp" --amount 50k', open_id="ou_mary").status == 200
    assert feishu.fake.wait_for(lambda: bool(feishu.fake.messages))  # the add was answered: account 1 exists
    answered = feishu.send(recorded("card.action.trigger"))
    assert answered.status == 200
    toast = answered.json["toast"]
    assert toast["type"] == "info" and "Acme Corp" in toast["i18n"]["en_us"]


def bot_menu(feishu: FeishuDriver) -> None:
    assert feishu.send(recorded("application.bot.menu_v6")).status == 200
    assert "help" in texts_to(feishu, "ou_mary").lower()


def url_verification(feishu: FeishuDriver) -> None:
    answered = feishu.send(recorded("url_verification"))
    assert answered.status == 200 and answered.json == {"challenge": "ajls384kdjx98XX"}


CASES = {
    "im.message.receive_v1.text": text_message,
    "im.message.receive_v1.post": post_message,
    "card.action.trigger": card_action,
    "application.bot.menu_v6": bot_menu,
    "url_verification": url_verification,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_recorded_payload_is_handled_by_the_real_bot(feishu: FeishuDriver, name: str) -> None:
    CASES[name](feishu)
