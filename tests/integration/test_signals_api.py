"""The signals endpoint's handler over a real core (SQLite and PostgreSQL): hostile field values are a
4xx naming the field, never a 5xx, and nothing of a refused signal is recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.signals_api import signals_handler
from lifecycle.core import Lifecycle
from lifecycle.db.models import SignalRow
from lifecycle.domain import commands as c
from tests.conftest import ADMIN, new_key

TOKEN = "signals-token-for-tests"


def post(core: Lifecycle, body: Any) -> tuple[int, dict[str, Any]]:
    handle = signals_handler(core, TOKEN)
    status, _headers, raw = handle(json.dumps(body).encode(), {"authorization": f"Bearer {TOKEN}"}, "")
    return status, json.loads(raw)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"at": "9999-12-31T23:59:59-14:00"}, "at: Value error, out of range"),
        ({"at": "0001-01-01T00:00:00+14:00"}, "at: Value error, out of range"),
        ({"signal": "test_email\u0000sent"}, "The signal contains a character that cannot be stored"),
        ({"source": "bill\u0000ing"}, "The signal source contains a character"),
        ({"id": "evt-\u0000"}, "The signal id contains a character"),
        ({"id": "e" * 129}, "id: String should have at most 128 characters"),
        ({"account": "Ac\u0000me"}, "The account contains a character"),
        ({"account": "Acme\ud800"}, "account: Input should be a valid string"),
    ],
)
def test_hostile_signal_fields_are_refused_naming_the_field(core: Lifecycle, extra: dict[str, Any], says: str) -> None:
    core.execute(c.AddAccount(actor=ADMIN, key=new_key(), name="Acme", stage="P2"))
    status, body = post(core, {"account": "Acme", "signal": "test_email_sent", **extra})
    assert status == 422, body
    assert says in body.get("error", "") + json.dumps(body.get("problems", []), ensure_ascii=False)
    with core.db.reader() as uow:
        assert uow.conn.execute(select(func.count()).select_from(SignalRow)).scalar() == 0
    status, body = post(core, {"account": "Acme", "signal": "test_email_sent", "id": "fine"})
    assert status == 200 and body["ticked"] == ["first_test"]
