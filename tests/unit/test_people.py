"""The people directory: one person across Slack, Feishu and email, from the config to the roster."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from lifecycle.domain.access import Actor, Person, Roster, join_hint

ALICE = Person.build("alice", "Alice Wang", "alice@acme.example", slack="U0ALICE", feishu="ou_alice")
BOB = Person.build("bob", "Bob Li", feishu="ou_bob")  # Feishu only: his canonical ref is his Feishu one
ZOE = Person.build("zoe", "Zoe", "zoe@acme.example")  # no chat account yet

ROSTER = Roster.build(
    members={"sales": ["alice", "feishu:ou_bob", "slack:U0DAVE"], "cs": ["zoe"]},
    approvers={"sales": ["slack:U0ALICE"]},
    admins=["feishu:ou_boss"],
    people=[ALICE, BOB, ZOE],
)


def test_a_person_is_one_identity_whatever_platform_they_write_from() -> None:
    on_slack, on_feishu = Actor("slack", "U0ALICE"), Actor("feishu", "ou_alice")
    assert ALICE.ref == "slack:U0ALICE"  # canonical: the Slack ref, so rows written before stay hers
    assert ROSTER.canonical(on_feishu) == Actor("slack", "U0ALICE", "Alice Wang")
    assert ROSTER.canonical(on_slack).ref == "slack:U0ALICE"
    assert ROSTER.teams_of(on_feishu) == ROSTER.teams_of(on_slack) == {"sales"}
    assert ROSTER.may_approve(on_feishu, "sales") and ROSTER.known(on_feishu)
    assert ROSTER.same("feishu:ou_alice", "slack:U0ALICE") and ROSTER.same("person:alice", "slack:U0ALICE")
    assert ROSTER.refs_of("feishu:ou_alice") == ("slack:U0ALICE", "feishu:ou_alice", "person:alice")


def test_people_named_by_key_or_platform_ref_are_the_same_members() -> None:
    assert ROSTER.members["sales"] == {"slack:U0ALICE", "feishu:ou_bob", "slack:U0DAVE"}
    assert ROSTER.members["cs"] == {"person:zoe"}
    assert BOB.ref == "feishu:ou_bob" and ZOE.ref == "person:zoe"
    unknown = Actor("slack", "U0NEW")
    assert ROSTER.canonical(unknown) is unknown and not ROSTER.known(unknown)
    assert ROSTER.is_admin(Actor("feishu", "ou_boss"))
    with pytest.raises(ValueError, match="'carol' is neither a person"):
        Roster.build(members={"sales": ["carol"]}, approvers={})


@pytest.mark.parametrize(
    ("typed", "platform", "ref"),
    [
        ("alice", "slack", "slack:U0ALICE"),
        ("@Alice", "feishu", "slack:U0ALICE"),
        ("slack:Alice", "slack", "slack:U0ALICE"),  # `@Alice` as the grammar writes it
        ("alice@acme.example", "slack", "slack:U0ALICE"),
        ("slack:ALICE@ACME.EXAMPLE", "slack", "slack:U0ALICE"),
        ("AliceWang", "slack", "slack:U0ALICE"),
        ("slack:U0ALICE", "feishu", "slack:U0ALICE"),  # a Slack mention <@U0ALICE>
        ("feishu:ou_alice", "feishu", "slack:U0ALICE"),  # a Feishu mention
        ("U0ALICE", "slack", "slack:U0ALICE"),
        ("zoe@acme.example", "slack", "person:zoe"),
        ("slack:U0DAVE", "slack", "slack:U0DAVE"),  # a member by ref, in no [people] section
        ("slack:U0NEW", "slack", None),
        ("carol", "slack", None),
        ("", "slack", None),
    ],
)
def test_find_names_a_person_by_key_email_name_or_mention(typed: str, platform: str, ref: str | None) -> None:
    assert ROSTER.find(typed, platform) == ref


def test_who_can_own_lists_people_then_members_by_ref() -> None:
    assert ROSTER.owners() == ["alice", "bob", "zoe", "slack:U0DAVE"]
    assert not Roster().configured and ROSTER.configured


def test_someone_unknown_is_told_the_config_line_with_their_id() -> None:
    assert '[people.you] slack = "U0XYZ"' in join_hint(Actor("slack", "U0XYZ")).en
    assert '[people.you] feishu = "ou_xyz"' in join_hint(Actor("feishu", "ou_xyz")).zh


CONFIG = """
[people.alice]
name = "Alice Wang"
email = "alice@acme.example"
slack = "U0ALICE"
feishu = "ou_alice"

[people.bob]
feishu = "ou_bob"

[teams.sales]
members = ["alice", "slack:U0DAVE"]
approvers = ["bob"]

[access]
admins = ["feishu:ou_alice"]
"""


def settings_problems(tmp_path: Path, toml: str) -> list[str]:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(str(cfg), {})
    return err.value.problems


def test_config_people_build_the_roster(tmp_path: Path) -> None:
    cfg = tmp_path / "stagebot.toml"
    cfg.write_text(CONFIG + '\n[people.zoe]\nemail = "zoe@acme.example"\n')
    settings = load_settings(str(cfg), {})
    roster = settings.roster()
    assert roster.members["sales"] == {"slack:U0ALICE", "slack:U0DAVE", "feishu:ou_bob"}
    assert roster.admins == {"slack:U0ALICE"}  # a platform ref of a person counts as that person
    assert roster.people["alice"] == ALICE
    assert settings.warnings == [
        "[people.zoe] has no slack or feishu id: they cannot use the bot (they can still own accounts, "
        "named by key or email)"
    ]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            '[teams.cs]\nmembers = ["carol"]\n',
            "[teams.cs.members] 'carol' is not a person of [people] (people: alice, bob)",
        ),
        ('[people.al]\nslack = "U0ALICE"\n', "[people] slack id U0ALICE belongs to more than one person: alice, al"),
        (
            '[people.al]\nemail = "Alice@acme.example"\n',
            "[people] email alice@acme.example belongs to more than one person",
        ),
        (
            '[people.x]\nemail = "not-an-email"\n',
            "[people.x.email] Value error, 'not-an-email' is not an email address",
        ),
        ('[people.x]\nslack = "alice"\n', "[people.x.slack] Value error, 'alice' is not a Slack user id"),
        ('[people.x]\nfeishu = "U0X"\n', "[people.x.feishu] Value error, 'U0X' is not a Feishu open_id"),
        ('[people.x]\nphone = "1"\n', "[people.x.phone] unknown key"),
        ('[teams.cs]\nmembers = ["bad ref"]\n', "[teams.cs.members] Value error, write people as a key of [people]"),
    ],
)
def test_config_people_problems_are_named(tmp_path: Path, extra: str, says: str) -> None:
    found = settings_problems(tmp_path, CONFIG + extra)
    assert any(p.startswith(says) for p in found), found
