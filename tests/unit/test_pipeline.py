"""The pipeline as data: the presets load, the default one is seed 000's table, stages resolve by any
name people type, and a broken definition is reported with every problem at once."""

from __future__ import annotations

import copy
import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lifecycle.domain.errors import LifecycleError, PipelineError, UnknownStage
from lifecycle.domain.pipeline import PRESETS, Pipeline, from_mapping, load, load_file, load_preset

DEFAULT_KEYS = ["MQL", "SQL", "PQL", "P0", "P1", "P2", "P3", "P4", "P5", "CHURNED", "ARCHIVED"]

# SPEC.md's table: key -> (zh, owner teams).
DEFAULT_TABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "MQL": ("线索", ("marketing",)),
    "SQL": ("商机", ("sales",)),
    "PQL": ("产品验证", ("sales",)),
    "P0": ("签约待接入", ("sales", "cs")),
    "P1": ("技术对接", ("cs", "support")),
    "P2": ("测试发送", ("cs", "support")),
    "P3": ("初期生产", ("cs",)),
    "P4": ("稳定发送", ("cs",)),
    "P5": ("成熟客户", ("cs", "sales")),
    "CHURNED": ("流失客户", ("cs", "sales")),
    "ARCHIVED": ("归档", ()),
}

# SPEC.md's flowchart, every allowed (source, target).
DEFAULT_EDGES = {
    ("MQL", "SQL"),
    ("SQL", "PQL"),
    ("SQL", "P0"),
    ("PQL", "P0"),
    ("PQL", "SQL"),
    ("P0", "P1"),
    ("P1", "P2"),
    ("P2", "P3"),
    ("P3", "P4"),
    ("P4", "P5"),
    ("P0", "CHURNED"),
    ("P1", "CHURNED"),
    ("P2", "CHURNED"),
    ("P3", "CHURNED"),
    ("P4", "CHURNED"),
    ("P5", "CHURNED"),
    ("CHURNED", "PQL"),
    ("CHURNED", "ARCHIVED"),
}


@pytest.fixture(scope="module")
def default() -> Pipeline:
    return load_preset("default")


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("name", ["default", "aarrr", "journey"])
def test_every_preset_loads_and_is_sound(name: str) -> None:
    assert name in PRESETS
    p = load_preset(name)
    assert p.key == name
    assert p.stages and p.transitions
    assert p.first_stage.key == (p.initial or p.stages[0].key)
    # At least one terminal stage, and every non-terminal stage has a way out.
    assert any(s.terminal for s in p.stages)
    for s in p.stages:
        assert s.terminal or p.next_stages(s.key), s.key
        for team in s.owners:
            assert team in p.team_by_key


def test_unknown_preset_is_a_pipeline_error_naming_the_presets() -> None:
    with pytest.raises(PipelineError) as info:
        load_preset("nope")
    assert "nope" in str(info.value)
    for name in PRESETS:
        assert name in str(info.value)


def test_default_has_the_eleven_stages_of_the_spec_in_order(default: Pipeline) -> None:
    assert [s.key for s in default.stages] == DEFAULT_KEYS
    assert default.first_stage.key == "MQL"
    assert {t.key for t in default.teams} == {"marketing", "sales", "cs", "support"}


@pytest.mark.parametrize("key", DEFAULT_KEYS)
def test_default_stage_labels_and_owner_teams_match_the_spec(default: Pipeline, key: str) -> None:
    zh, owners = DEFAULT_TABLE[key]
    stage = default.stage(key)
    assert stage.zh == zh
    assert set(stage.owners) == set(owners)
    assert stage.en


def test_default_transitions_are_the_seed_flowchart(default: Pipeline) -> None:
    assert {(t.source, t.target) for t in default.transitions} == DEFAULT_EDGES
    assert len(default.transitions) == len(DEFAULT_EDGES)  # no duplicates


def test_pql_to_p0_is_gated_by_a_sales_approval_rejecting_to_sql(default: Pipeline) -> None:
    edge = default.transition("PQL", "P0")
    assert edge is not None and edge.approval is not None
    assert edge.approval.team == "sales"
    assert edge.approval.reject_to == "SQL"
    # The only gate in the default pipeline.
    assert [(t.source, t.target) for t in default.transitions if t.approval] == [("PQL", "P0")]


def test_sql_to_p0_signs_directly_without_approval(default: Pipeline) -> None:
    edge = default.transition("SQL", "P0")
    assert edge is not None
    assert edge.approval is None
    assert edge.kind == "advance"


def test_transition_kinds(default: Pipeline) -> None:
    back = default.transition("PQL", "SQL")
    assert back is not None and back.kind == "back"
    winback = default.transition("CHURNED", "PQL")
    assert winback is not None and winback.kind == "winback"
    arch = default.transition("CHURNED", "ARCHIVED")
    assert arch is not None and arch.kind == "archive"
    for src in ("P0", "P1", "P2", "P3", "P4", "P5"):
        edge = default.transition(src, "CHURNED")
        assert edge is not None and edge.kind == "churn", src
    # MQL, SQL and PQL are not customers yet: they cannot churn.
    for src in ("MQL", "SQL", "PQL"):
        assert default.transition(src, "CHURNED") is None


def test_onboarding_runs_p0_to_p5_in_order(default: Pipeline) -> None:
    chain = ["P0", "P1", "P2", "P3", "P4", "P5"]
    for a, b in itertools.pairwise(chain):
        assert default.transition(a, b) is not None
    # No skipping ahead.
    assert default.transition("P0", "P2") is None
    assert default.transition("P1", "P5") is None


def test_archived_is_terminal_and_p5_is_renewable(default: Pipeline) -> None:
    archived = default.stage("ARCHIVED")
    assert archived.terminal
    assert default.next_stages("ARCHIVED") == ()
    assert [s.key for s in default.stages if s.terminal] == ["ARCHIVED"]
    assert [s.key for s in default.stages if s.renewable] == ["P5"]


# ---------------------------------------------------------------- resolving stages


@pytest.mark.parametrize(
    ("ref", "key"),
    [
        ("P2", "P2"),
        ("p2", "P2"),
        ("测试发送", "P2"),
        ("Testing", "P2"),
        ("TESTING", "P2"),
        ("testing", "P2"),
        ("  Testing  ", "P2"),
        ("P2 测试发送", "P2"),
        ("P2 Testing", "P2"),
        ("P0:签约待接入", "P0"),
        ("P0：签约待接入", "P0"),
        ("签约待接入", "P0"),
        ("Signed", "P0"),
        ("Go-Live", "P3"),
        ("go-live", "P3"),
        ("churned", "CHURNED"),
        ("流失客户", "CHURNED"),
        ("mql", "MQL"),
        ("线索", "MQL"),
    ],
)
def test_resolve_stage_by_key_label_title_any_case(default: Pipeline, ref: str, key: str) -> None:
    assert default.resolve_stage(ref).key == key


@pytest.mark.parametrize("ref", ["P9", "Nowhere", "", "测试"])
def test_unknown_stage_lists_every_valid_key(default: Pipeline, ref: str) -> None:
    with pytest.raises(UnknownStage) as info:
        default.resolve_stage(ref)
    err = info.value
    assert isinstance(err, LifecycleError)
    assert err.valid == DEFAULT_KEYS
    for key in DEFAULT_KEYS:
        assert key in err.text("en")
        assert key in err.text("zh")
    assert f'"{ref}"' in err.text("en")


# ---------------------------------------------------------------- validation


def _good_mapping() -> dict[str, Any]:
    return {
        "key": "tiny",
        "zh": "小",
        "en": "Tiny",
        "teams": [{"key": "a", "zh": "甲", "en": "Team A"}],
        "stages": [
            {"key": "START", "zh": "开始", "en": "Start", "owners": ["a"]},
            {"key": "END", "zh": "结束", "en": "End", "terminal": True},
        ],
        "transitions": [{"from": "START", "to": "END"}],
    }


def test_from_mapping_builds_a_sound_pipeline() -> None:
    p = from_mapping(_good_mapping())
    assert [s.key for s in p.stages] == ["START", "END"]
    assert p.transition("START", "END") is not None


def test_from_mapping_reports_every_structural_problem_at_once() -> None:
    data = _good_mapping()
    data["stages"] = [
        {"key": "START", "zh": "开始", "en": "Start", "owners": ["a"]},
        # Owned by a team nobody defined.
        {"key": "MID", "zh": "中间", "en": "Middle", "owners": ["ghosts"]},
        # Nothing leads here.
        {"key": "ISLAND", "zh": "孤岛", "en": "Island", "owners": ["a"]},
        # Reached, but no way out and not terminal.
        {"key": "DEADEND", "zh": "死路", "en": "Dead end", "owners": ["a"]},
        # Same English label as START.
        {"key": "TWIN", "zh": "双胞胎", "en": "start", "owners": ["a"]},
        {"key": "END", "zh": "结束", "en": "End", "terminal": True},
    ]
    data["transitions"] = [
        {"from": "START", "to": "MID"},
        {"from": "MID", "to": "END"},
        {"from": "START", "to": "DEADEND"},
        {"from": "START", "to": "TWIN"},
        {"from": "TWIN", "to": "END"},
        {"from": "ISLAND", "to": "END"},
        {"from": "MID", "to": "NOWHERE"},  # unknown stage
    ]
    with pytest.raises(PipelineError) as info:
        from_mapping(data)
    problems = info.value.problems
    joined = "\n".join(problems)

    def has(*needles: str) -> bool:
        return any(all(n in p for n in needles) for p in problems)

    assert has("MID -> NOWHERE", "unknown stage NOWHERE"), joined
    assert has("MID", "unknown owner team ghosts"), joined
    assert has("ISLAND", "cannot be reached"), joined
    assert has("DEADEND", "dead end"), joined
    assert has("start", "START", "TWIN"), joined  # the duplicate label names both stages
    assert len(problems) >= 5
    # And the user-facing message lists them all, one per line.
    for p in problems:
        assert p in info.value.text("en")
        assert p in info.value.text("zh")


def test_from_mapping_reports_gate_and_terminal_problems() -> None:
    data = _good_mapping()
    data["stages"][1]["owners"] = ["a"]
    data["stages"].append({"key": "LATER", "zh": "以后", "en": "Later", "owners": ["a"], "terminal": True})
    data["transitions"] = [
        {"from": "START", "to": "END", "approval": {"team": "bosses", "reject_to": "LATER"}},
        {"from": "END", "to": "LATER"},  # END is terminal but has a move out
        {"from": "START", "to": "START"},
        {"from": "START", "to": "END"},
    ]
    with pytest.raises(PipelineError) as info:
        from_mapping(data)
    joined = "\n".join(info.value.problems)
    assert "unknown approver team bosses" in joined
    assert "reject_to LATER is not an allowed move from START" in joined
    assert "END is terminal but has moves out" in joined
    assert "cannot move to itself" in joined
    assert "START -> END is listed more than once" in joined


def test_from_mapping_reports_schema_errors_as_pipeline_errors() -> None:
    data = _good_mapping()
    data["stages"][0]["key"] = "has space"
    data["stages"][0]["win_probability"] = 3
    data["bogus"] = 1
    with pytest.raises(PipelineError) as info:
        from_mapping(data)
    joined = "\n".join(info.value.problems)
    assert "stages.0.key" in joined
    assert "stages.0.win_probability" in joined
    assert "bogus" in joined


def test_validation_does_not_mutate_the_input() -> None:
    data = _good_mapping()
    before = copy.deepcopy(data)
    from_mapping(data)
    assert data == before


# ---------------------------------------------------------------- files

CUSTOM_TOML = """\
key = "custom"
zh = "自定义"
en = "Custom"
initial = "NEW"
teams = [{ key = "ops", zh = "运营", en = "Ops" }]

[[stages]]
key = "NEW"
zh = "新建"
en = "New"
owners = ["ops"]
require_checklist = true
checklist = [{ key = "called", zh = "已致电", en = "Called" }]

[[stages]]
key = "DONE"
zh = "完成"
en = "Done"
terminal = true

[[transitions]]
from = "NEW"
to = "DONE"
"""


def test_load_file_reads_a_custom_toml(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(CUSTOM_TOML, encoding="utf-8")
    for p in (load_file(path), load(str(path))):
        assert p.key == "custom"
        assert [s.key for s in p.stages] == ["NEW", "DONE"]
        assert p.stage("NEW").require_checklist
        assert p.resolve_stage("完成").key == "DONE"


def test_load_file_on_a_non_toml_file_is_a_pipeline_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(textwrap.dedent("this is = = not toml [[[\n"), encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        load_file(path)
    assert str(path) in info.value.problems[0]
    assert "not valid TOML" in info.value.problems[0]


def test_load_file_on_binary_garbage_is_a_pipeline_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.toml"
    path.write_bytes(b"\xff\xfe\x00\x00\x89PNG")
    with pytest.raises(PipelineError):
        load_file(path)


def test_load_file_on_a_missing_file_is_a_pipeline_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        load_file(tmp_path / "absent.toml")
    assert "cannot read" in info.value.problems[0]


def test_load_file_on_valid_toml_that_is_not_a_pipeline_lists_problems(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[database]\nurl = "sqlite://"\n', encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        load_file(path)
    assert len(info.value.problems) > 1


def test_shape_and_structure_problems_are_reported_in_one_round() -> None:
    from lifecycle.domain.errors import PipelineError
    from lifecycle.domain.pipeline import from_mapping

    data = {
        "key": "x",
        "zh": "x",
        "en": "x",
        "teams": [{"key": "sales", "zh": "销售", "en": "Sales"}],
        "stages": [
            {"key": "A", "zh": "甲", "en": "A1", "owners": ["sales"], "win_probability": 2},
            {"key": "B", "zh": "乙", "en": "B1", "owners": ["ghost"]},
            {"key": "C", "zh": "丙", "en": "C1"},
        ],
        "transitions": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "Z"},
            {"from": "B", "to": "A", "kind": "sideways"},
        ],
    }
    with pytest.raises(PipelineError) as err:
        from_mapping(data)
    problems = "\n".join(err.value.problems)
    # Shape errors (pydantic) ...
    assert "stages.0.win_probability" in problems and "transitions.2.kind" in problems
    # ... and, in the same report, the structure of what did parse; the broken stage A is still
    # known by its key, so nothing is reported as "unknown stage A".
    assert "unknown owner team ghost" in problems and "unknown stage Z" in problems
    assert "stage C is a dead end" in problems and "unknown stage A" not in problems
