"""The rules the use cases obey: the pipeline, who is in which team, where events go."""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.domain.access import Roster
from lifecycle.domain.pipeline import Pipeline


@dataclass(frozen=True)
class Rules:
    """The configuration the use cases obey: the pipeline, who is in which team, where events go."""

    pipeline: Pipeline
    roster: Roster
    targets: tuple[str, ...] = ("console",)
    usage_signals: tuple[str, ...] = ("daily_send_volume",)  # recorded for churn risk; tick nothing

    @property
    def known_signals(self) -> frozenset[str]:
        named = {i.signal for st in self.pipeline.stages for i in st.checklist if i.signal}
        return frozenset(named | set(self.usage_signals))
