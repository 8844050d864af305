"""CRM stage values (HubSpot lifecycle and deal stages, Salesforce opportunity stages) onto stages.

A CRM value names the earliest stage it implies: "Customer" means signed, P0, but an account that
stagebot has since moved on to P3 is still a customer. So an import treats a CRM value as a floor
(see `StageLookup.resolve`): an account already at or past the target along the pipeline's forward
moves keeps its stage. The pipeline's own keys and labels are exact.

A target the pipeline does not have (LOST until issue 17 adds it; any stage of a custom pipeline)
skips the entry: the value is then a row error that says so. `[import.stage_map]` in the config
overrides and extends these maps; README "Import and export" has the tables.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from lifecycle.domain.errors import UnknownStage
from lifecycle.domain.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class CrmStage:
    """One CRM value: its internal value, the label the CRM's UI and exports show, and our stage."""

    source: str
    value: str
    label: str
    target: str | None  # None: known to the CRM, no stage of ours (a row error that says so)


def _entries(source: str, rows: tuple[tuple[str, str, str | None], ...]) -> tuple[CrmStage, ...]:
    return tuple(CrmStage(source, v, lbl, t) for v, lbl, t in rows)


HUBSPOT_LIFECYCLE = _entries(
    "HubSpot lifecycle stage",
    (
        ("subscriber", "Subscriber", "MQL"),
        ("lead", "Lead", "MQL"),
        ("marketingqualifiedlead", "Marketing Qualified Lead", "MQL"),
        ("salesqualifiedlead", "Sales Qualified Lead", "SQL"),
        ("opportunity", "Opportunity", "SQL"),
        ("customer", "Customer", "P0"),
        ("evangelist", "Evangelist", "P5"),
        ("other", "Other", None),
    ),
)
# The stages of HubSpot's default deal pipeline ("Sales Pipeline"). Before the close every stage is
# SQL: PQL is product validation, which the product's own signals decide, not the CRM.
HUBSPOT_DEAL = _entries(
    "HubSpot deal stage",
    (
        ("appointmentscheduled", "Appointment Scheduled", "SQL"),
        ("qualifiedtobuy", "Qualified To Buy", "SQL"),
        ("presentationscheduled", "Presentation Scheduled", "SQL"),
        ("decisionmakerboughtin", "Decision Maker Bought-In", "SQL"),
        ("contractsent", "Contract Sent", "SQL"),
        ("closedwon", "Closed Won", "P0"),
        ("closedlost", "Closed Lost", "LOST"),
    ),
)
# Salesforce's default opportunity stages (the picklist of a new org).
SALESFORCE_OPPORTUNITY = _entries(
    "Salesforce opportunity stage",
    (
        ("Prospecting", "Prospecting", "SQL"),
        ("Qualification", "Qualification", "SQL"),
        ("Needs Analysis", "Needs Analysis", "SQL"),
        ("Value Proposition", "Value Proposition", "SQL"),
        ("Id. Decision Makers", "Id. Decision Makers", "SQL"),
        ("Perception Analysis", "Perception Analysis", "SQL"),
        ("Proposal/Price Quote", "Proposal/Price Quote", "SQL"),
        ("Negotiation/Review", "Negotiation/Review", "SQL"),
        ("Closed Won", "Closed Won", "P0"),
        ("Closed Lost", "Closed Lost", "LOST"),
    ),
)
BUILT_IN: tuple[CrmStage, ...] = (*HUBSPOT_LIFECYCLE, *HUBSPOT_DEAL, *SALESFORCE_OPPORTUNITY)

# What an export in a CRM's format writes for a stage: one canonical value (the label, as the CRM's
# own exports write it) from that CRM's map. Stages missing here keep their stagebot key.
EXPORT_VALUES: dict[str, tuple[CrmStage, ...]] = {
    "hubspot": tuple(
        e
        for e in HUBSPOT_LIFECYCLE
        if e.value in ("marketingqualifiedlead", "salesqualifiedlead", "customer", "evangelist")
    ),
    "salesforce": tuple(e for e in SALESFORCE_OPPORTUNITY if e.value in ("Qualification", "Closed Won", "Closed Lost")),
}


def fold(text: str) -> str:
    """How values are matched: case-insensitive, runs of whitespace as one space."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, slots=True)
class Resolved:
    key: str
    floor: bool  # a CRM value: an account at or past `key` keeps its stage


class UnknownValue(ValueError):
    """A stage value that names no stage; the message lists what is accepted."""


class StageLookup:
    """Stage values of an import file: `[import.stage_map]` first (the operator's explicit word),
    then the pipeline's own keys and labels, then the built-in CRM maps."""

    def __init__(self, pipeline: Pipeline, overrides: dict[str, str] | None = None) -> None:
        self.pipeline = pipeline
        known = set(pipeline.stage_by_key)
        self._crm: dict[str, str] = {}
        self._missing: dict[str, CrmStage] = {}  # known CRM values without a stage here
        for e in BUILT_IN:
            for name in (e.value, e.label):
                if e.target in known and e.target is not None:
                    self._crm.setdefault(fold(name), e.target)
                else:
                    self._missing.setdefault(fold(name), e)
        self._config = {fold(k): v for k, v in (overrides or {}).items()}

    def resolve(self, value: str) -> Resolved:
        """The stage a value names. Raises UnknownValue with what is accepted."""
        f = fold(value)
        if f in self._config:
            return Resolved(self._config[f], floor=True)
        crm = self._crm.get(f)
        try:
            key = self.pipeline.resolve_stage(value).key
        except UnknownStage:
            pass
        else:
            # "Opportunity" is both SQL's label and a HubSpot value: a CRM floor when they agree.
            return Resolved(key, floor=crm == key)
        if crm is not None:
            return Resolved(crm, floor=True)
        keys = ", ".join(s.key for s in self.pipeline.stages)
        missing = self._missing.get(f)
        if missing is not None:
            why = f"maps to {missing.target}, which this pipeline does not have" if missing.target else "has no stage"
            raise UnknownValue(f'"{value}" ({missing.source}) {why}; map it in [import.stage_map] (stages: {keys})')
        raise UnknownValue(f'"{value}" is not a stage (stages: {keys}; or a HubSpot or Salesforce stage name)')


def forward_reach(pipeline: Pipeline, source: str) -> set[str]:
    """Stages reachable from `source` by forward ("advance") moves, `source` included."""
    seen = {source}
    queue = deque([source])
    while queue:
        cur = queue.popleft()
        for t in pipeline.next_stages(cur):
            if t.kind == "advance" and t.target not in seen:
                seen.add(t.target)
                queue.append(t.target)
    return seen


def export_value(pipeline: Pipeline, fmt: str, stage: str) -> str:
    """The stage as a file in `fmt` writes it: the CRM's canonical value, else the stagebot key."""
    hit = next((e.label for e in EXPORT_VALUES.get(fmt, ()) if e.target == stage), None)
    return hit if hit is not None and stage in pipeline.stage_by_key else stage


def config_problems(pipeline: Pipeline, stage_map: dict[str, str]) -> list[str]:
    """`[import.stage_map]` checked against the pipeline: every value must be a stage key."""
    keys = list(pipeline.stage_by_key)
    out = []
    for crm, target in stage_map.items():
        if not crm.strip():
            out.append("[import.stage_map] an empty CRM value cannot be mapped")
        elif target not in pipeline.stage_by_key:
            out.append(f'[import.stage_map] "{crm}" = "{target}": {target} is not a stage (stages: {", ".join(keys)})')
    return out
