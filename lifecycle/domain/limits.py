"""What the core accepts in a text field: at most as long as storage holds, and only real text.

Every command and query is checked here before a use case runs, so a value the database would refuse
(PostgreSQL rejects NUL characters, and strings longer than their column) is a short message naming
the field, never a database error. Idempotency keys are not people's words: one that does not fit is
replaced by its digest, which identifies the delivery just as well.
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Any

from lifecycle.domain.errors import InvalidInput
from lifecycle.domain.i18n import Text

MAX_NAME = 200  # an account's name, and any reference to an account
MAX_REASON = 1000  # a reason or note, once its whitespace is folded
MAX_PERSON = 120  # `platform:user_id`, as an owner, an actor or a decider
MAX_SEGMENT = 64
MAX_EXTERNAL_ID = 128
MAX_SIGNAL = 64  # a signal's name and its source
MAX_SIGNAL_ID = 128
MAX_KEY = 200  # an idempotency key, as stored
MAX_REF = 64  # a stage, team or checklist item as typed (keys and labels are short)

# The longest each command or query field may be, by field name. Reasons, notes and titles are
# checked by their use cases after whitespace folding; they get a generous raw bound here.
LIMITS: dict[str, int] = {
    "name": MAX_NAME,
    "account": MAX_NAME,
    "owner": MAX_PERSON,
    "segment": MAX_SEGMENT,
    "external_id": MAX_EXTERNAL_ID,
    "signal": MAX_SIGNAL,
    "source": MAX_SIGNAL,
    "signal_id": MAX_SIGNAL_ID,
    "target": MAX_REF,
    "stage": MAX_REF,
    "team": MAX_REF,
    "item": MAX_REF,
    "via": 16,
}
RAW_TEXT = 10_000  # reasons, notes, titles before folding: anything longer is not typed by a person

_ALLOWED_CONTROLS = {"\n", "\t", "\r"}
_FIELD_WORDS: dict[str, Text] = {
    "name": Text("The account name", "客户名称"),
    "account": Text("The account", "客户"),
    "owner": Text("The owner", "负责人"),
    "segment": Text("The segment", "细分市场"),
    "external_id": Text("The external id", "外部编号"),
    "target": Text("The stage", "阶段"),
    "stage": Text("The stage", "阶段"),
    "team": Text("The team", "团队"),
    "reason": Text("The reason", "原因"),
    "note": Text("The note", "备注"),
    "title": Text("The task", "任务"),
    "actor": Text("Your user id", "你的用户编号"),
    "signal": Text("The signal", "信号"),
    "source": Text("The signal source", "信号来源"),
    "signal_id": Text("The signal id", "信号编号"),
}


def _words(name: str) -> Text:
    return _FIELD_WORDS.get(name) or Text(f"The field {name}", f"字段 {name}")


def problem(value: str) -> str | None:
    """Why `value` is not text the core stores ("control character", "not valid Unicode"), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, as JSON's "\ud800" produces
        return "not valid Unicode"
    for ch in value:
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc":
            return "control character"
    return None


def check_text(name: str, value: str, limit: int | None = None) -> None:
    """Refuse `value` for field `name` when it is too long or holds what storage cannot keep."""
    most = limit if limit is not None else LIMITS.get(name, RAW_TEXT)
    words = _words(name)
    if len(value) > most:
        raise InvalidInput(
            Text(
                f"{words.en} is {len(value)} characters; at most {most} are allowed.",
                f"{words.zh}共 {len(value)} 个字符,最多允许 {most} 个。",
            )
        )
    if problem(value) is not None:
        raise InvalidInput(
            Text(
                f"{words.en} contains a character that cannot be stored (a control character or broken text).",
                f"{words.zh}包含无法保存的字符(控制字符或损坏的文本)。",
            )
        )


def check_instant(name: str, value: datetime) -> None:
    """Refuse an instant that has no UTC equivalent (year 9999 at UTC-14 is in year 10000)."""
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(
            Text(
                f"The time {name} ({value.isoformat()}) is out of range.", f"时间 {name}({value.isoformat()})超出范围。"
            )
        ) from None


def delivery_key(key: str) -> str:
    """`key` as stored: unchanged when it fits, else a digest (same key, same digest)."""
    if len(key) <= MAX_KEY and problem(key) is None:
        return key
    # Keep the platform and kind ("slack:cmd") readable in front of the digest, when they are clean.
    head = ":".join(p for p in key.split(":", 2)[:2] if p and problem(p) is None and len(p) <= 24)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{head}:sha256:{digest}" if head else f"sha256:{digest}"


def checked(obj: Any) -> Any:
    """`obj` (a command or query dataclass) with its text fields checked and its key made storable."""
    actor = getattr(obj, "actor", None)
    if actor is not None:
        check_text("actor", actor.ref, MAX_PERSON)
    for f in dataclasses.fields(obj):
        if f.name in ("actor", "key"):
            continue
        value = getattr(obj, f.name)
        if isinstance(value, str):
            check_text(f.name, value)
        elif isinstance(value, datetime):
            check_instant(f.name, value)
    key = getattr(obj, "key", None)
    if isinstance(key, str):
        stored = delivery_key(key)
        if stored != key:
            return dataclasses.replace(obj, key=stored)
    return obj
