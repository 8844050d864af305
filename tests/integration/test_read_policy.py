"""`[access] read`: who may see accounts, history and reports. Under "members" (the default) a person in
no team is told how to be added; under "everyone" anyone who reaches the bot may look, but writing
still needs a team."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import NotAuthorized
from lifecycle.domain.views import AccountCard, AccountList, History, Report
from tests.conftest import ADMIN, ALICE, EVE, new_key

QUERIES = [
    c.ShowAccount(actor=EVE, account="Acme"),
    c.ShowHistory(actor=EVE, account="Acme"),
    c.ListAccounts(actor=EVE),
    c.ShowReport(actor=EVE),
    c.ListApprovals(actor=EVE),
    c.ListHandoffs(actor=EVE),
    c.ListTasks(actor=EVE, mine=True),
]


@pytest.fixture
def acme(core: Lifecycle) -> Lifecycle:
    core.execute(c.AddAccount(actor=ADMIN, key=new_key(), name="Acme", stage="SQL"))
    return core


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: type(q).__name__)
def test_a_person_in_no_team_may_not_read_by_default(acme: Lifecycle, query: c.Query) -> None:
    with pytest.raises(NotAuthorized) as err:
        acme.ask(query)
    assert "slack:U0EVE" in err.value.text("en") and "Ask an admin" in err.value.text("en")
    assert "slack:U0EVE" in err.value.text("zh")


def test_members_and_admins_read_as_before(acme: Lifecycle) -> None:
    assert isinstance(acme.ask(c.ShowAccount(actor=ALICE, account="Acme")), AccountCard)
    assert isinstance(acme.ask(c.ListAccounts(actor=ADMIN)), AccountList)


def test_everyone_may_read_when_the_config_says_so_but_not_write(acme: Lifecycle) -> None:
    open_rules = replace(acme.rules, roster=replace(acme.rules.roster, read="everyone"))
    core = Lifecycle(acme.db, open_rules, acme.clock)
    stranger = Actor("feishu", "ou_stranger")
    assert isinstance(core.ask(c.ShowHistory(actor=stranger, account="Acme")), History)
    assert isinstance(core.ask(c.ShowReport(actor=stranger)), Report)
    with pytest.raises(NotAuthorized):
        core.execute(c.MoveStage(actor=stranger, key=new_key(), account="Acme", target="PQL"))


def test_who_decided_an_approval_is_not_told_to_someone_who_may_not_decide_it(core: Lifecycle) -> None:
    from tests.conftest import BOB, CAROL

    core.execute(c.AddAccount(actor=ADMIN, key=new_key(), name="Gated", stage="PQL"))
    asked = core.execute(c.MoveStage(actor=ALICE, key=new_key(), account="Gated", target="P0", reason="test sent"))
    assert asked.approval_id is not None
    core.execute(c.DecideApproval(actor=BOB, key=new_key(), approval_id=asked.approval_id, approve=True))
    with pytest.raises(NotAuthorized) as err:
        core.execute(c.DecideApproval(actor=CAROL, key=new_key(), approval_id=asked.approval_id, approve=False))
    assert "U0BOB" not in err.value.text("en") and "approvers can decide" in err.value.text("en")
