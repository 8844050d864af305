"""JSON as stagebot reads what others send it: an object with the same key twice is refused.

Python's json keeps the last of duplicate keys, other parsers the first; a value that reads one
way here and another way elsewhere (a proxy, a log, the platform itself) is not accepted.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """An object in the JSON has `key` twice."""

    def __init__(self, key: str) -> None:
        # The key is someone else's text: shown escaped and cut short.
        super().__init__(f"duplicate key {json.dumps(key[:40])} in the JSON")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def loads(text: str | bytes) -> Any:
    """json.loads, refusing an object with a duplicate key (DuplicateKey, a ValueError)."""
    return json.loads(text, object_pairs_hook=_unique)
