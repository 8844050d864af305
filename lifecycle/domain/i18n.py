"""Bilingual (en / zh) user-facing text: one value type so every message can be shown in either language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["en", "zh"]


@dataclass(frozen=True, slots=True)
class Text:
    """A message in English and Chinese; adapters pick the language of their audience."""

    en: str
    zh: str

    def __call__(self, lang: Lang = "en") -> str:
        return self.zh if lang == "zh" else self.en

    def __str__(self) -> str:
        return self.en
