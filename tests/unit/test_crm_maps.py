"""The built-in CRM stage maps against the presets, `[import.stage_map]` overrides and their check
at config load, and stage values as exports write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from lifecycle.domain.crm_maps import (
    BUILT_IN,
    HUBSPOT_DEAL,
    HUBSPOT_LIFECYCLE,
    SALESFORCE_OPPORTUNITY,
    Resolved,
    StageLookup,
    UnknownValue,
    export_value,
    forward_reach,
)
from lifecycle.domain.pipeline import PRESETS, load_preset

DEFAULT = load_preset("default")


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("subscriber", "MQL"),
        ("Lead", "MQL"),
        ("marketingqualifiedlead", "MQL"),
        ("Marketing Qualified Lead", "MQL"),
        ("salesqualifiedlead", "SQL"),
        ("Sales Qualified Lead", "SQL"),
        ("Opportunity", "SQL"),
        ("Customer", "P0"),
        ("evangelist", "P5"),
        ("appointmentscheduled", "SQL"),
        ("Decision Maker Bought-In", "SQL"),
        ("closedwon", "P0"),
        ("Closed Won", "P0"),
        ("Prospecting", "SQL"),
        ("Id. Decision Makers", "SQL"),
        ("Proposal/Price Quote", "SQL"),
        ("Negotiation/Review", "SQL"),
        ("  closed   WON ", "P0"),  # case and whitespace folded
    ],
)
def test_crm_values_on_the_default_pipeline(value: str, key: str) -> None:
    assert StageLookup(DEFAULT).resolve(value) == Resolved(key, floor=True)


def test_the_pipelines_own_names_are_exact() -> None:
    look = StageLookup(DEFAULT)
    assert look.resolve("P2") == Resolved("P2", floor=False)
    assert look.resolve("签约待接入") == Resolved("P0", floor=False)
    assert look.resolve("P0 Signed") == Resolved("P0", floor=False)


def test_every_built_in_value_is_a_stage_or_says_why() -> None:
    look = StageLookup(DEFAULT)
    for e in BUILT_IN:
        for name in (e.value, e.label):
            if e.target in DEFAULT.stage_by_key:
                assert look.resolve(name).key == e.target
            else:
                with pytest.raises(UnknownValue, match=r"\[import.stage_map\]"):
                    look.resolve(name)
    assert len(HUBSPOT_LIFECYCLE) == 8 and len(HUBSPOT_DEAL) == 7 and len(SALESFORCE_OPPORTUNITY) == 10


def test_closed_lost_waits_for_a_lost_stage() -> None:
    with pytest.raises(UnknownValue) as err:
        StageLookup(DEFAULT).resolve("Closed Lost")
    assert str(err.value) == (
        '"Closed Lost" (HubSpot deal stage) maps to LOST, which this pipeline does not have; '
        "map it in [import.stage_map] (stages: MQL, SQL, PQL, P0, P1, P2, P3, P4, P5, CHURNED, ARCHIVED)"
    )
    assert StageLookup(DEFAULT, {"closed lost": "CHURNED"}).resolve("Closed Lost") == Resolved("CHURNED", True)


def test_unknown_values_list_the_stages() -> None:
    with pytest.raises(UnknownValue) as err:
        StageLookup(DEFAULT).resolve("Nowhere")
    assert str(err.value) == (
        '"Nowhere" is not a stage (stages: MQL, SQL, PQL, P0, P1, P2, P3, P4, P5, CHURNED, ARCHIVED; '
        "or a HubSpot or Salesforce stage name)"
    )


def test_the_config_wins() -> None:
    look = StageLookup(DEFAULT, {"Closed Won": "P1", "Trial": "PQL"})
    assert look.resolve("closed won") == Resolved("P1", floor=True)
    assert look.resolve("TRIAL") == Resolved("PQL", floor=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_a_pipeline_without_the_target_skips_the_entry(preset: str) -> None:
    p = load_preset(preset)
    look = StageLookup(p)
    for e in BUILT_IN:
        if e.target in p.stage_by_key:
            assert look.resolve(e.label).key == e.target or look.resolve(e.label).floor is False
            continue
        try:
            got = look.resolve(e.label)
        except UnknownValue:
            continue
        assert got == Resolved(p.resolve_stage(e.label).key, floor=False)  # a label of the pipeline itself


def test_forward_reach() -> None:
    assert forward_reach(DEFAULT, "P0") == {"P0", "P1", "P2", "P3", "P4", "P5"}
    assert "CHURNED" not in forward_reach(DEFAULT, "SQL")


def test_export_values() -> None:
    hub = [export_value(DEFAULT, "hubspot", s.key) for s in DEFAULT.stages]
    assert hub == [
        "Marketing Qualified Lead",
        "Sales Qualified Lead",
        "PQL",
        "Customer",
        "P1",
        "P2",
        "P3",
        "P4",
        "Evangelist",
        "CHURNED",
        "ARCHIVED",
    ]
    sf = [export_value(DEFAULT, "salesforce", s.key) for s in DEFAULT.stages]
    assert sf[:4] == ["MQL", "Qualification", "PQL", "Closed Won"] and sf[4:] == [s.key for s in DEFAULT.stages][4:]
    assert export_value(DEFAULT, "stagebot", "P0") == "P0"


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stagebot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_stage_map_in_the_config(tmp_path: Path) -> None:
    s = load_settings(str(config(tmp_path, '[import.stage_map]\n"Closed Lost" = "CHURNED"\n')), env={})
    assert s.config.import_.stage_map == {"Closed Lost": "CHURNED"}
    assert load_settings(str(config(tmp_path, "")), env={}).config.import_.stage_map == {}


def test_stage_map_checked_against_the_pipeline(tmp_path: Path) -> None:
    text = '[import.stage_map]\n"Closed Lost" = "LOST"\n"" = "P0"\n[import]\n'
    with pytest.raises(ConfigError) as err:
        load_settings(str(config(tmp_path, text.replace("[import]\n", ""))), env={})
    assert err.value.problems == [
        '[import.stage_map] "Closed Lost" = "LOST": LOST is not a stage '
        "(stages: MQL, SQL, PQL, P0, P1, P2, P3, P4, P5, CHURNED, ARCHIVED)",
        "[import.stage_map] an empty CRM value cannot be mapped",
    ]
    with pytest.raises(ConfigError) as err:
        load_settings(str(config(tmp_path, "[import]\nstagemap = {}\n")), env={})
    assert err.value.problems == ["[import.stagemap] unknown key"]
