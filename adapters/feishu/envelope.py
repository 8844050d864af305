"""What a Feishu request must look like before stagebot or lark-oapi reads it (issue 19).

The checks here run on requests that passed the token and the signature: they are authentic, and
may still be wrong (a proxy, a replay tool, a bug, a stolen key). A wrong one is `Malformed`,
which the webhook answers 400 naming the field, with no traceback anywhere:

- JSON with a duplicate key anywhere is refused (`loads`): which of the two counts is a guess.
- The header: `event_id` and `event_type` non-empty, and every id a sane string: at most
  MAX_ID characters, no control characters or spaces; `create_time` a number.
- The event: an object, of the shape lark-oapi's model of that event type reads (the SDK's own
  constructor is run on it, so the dispatcher never fails on our input); and the ids stagebot
  reads or keeps (message, chat, sender, operator) sane strings as above.

Message text, mentions' ids and button values are left to the code that reads them, which
answers a person whatever they hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from lark_oapi.core.exception import UnmarshalException

from adapters.common import strict_json

# Feishu's ids are 16-35 characters ("ou_" + 32 hex). 100 is generous and keeps whatever stagebot
# derives from one inside its columns: an actor "feishu:" + open_id in String(120), an idempotency
# key "feishu:message:" + message_id in String(200). A longer id is refused, never cut or dropped.
MAX_ID = 100
MAX_TIME = 20  # digits: milliseconds (13) or microseconds (16) since 1970
MAX_CHALLENGE = 1024  # Feishu's challenges are UUID-like, about 36 characters

HEADER_IDS = ("event_id", "event_type", "tenant_key", "app_id")
REQUIRED = frozenset({"header.event_id", "header.event_type", "event", "event.message.message_id"})

# The ids each event type carries that stagebot reads or keeps, as dotted paths from the payload.
_USER = ("open_id", "union_id", "user_id")
IDS: Mapping[str, tuple[str, ...]] = {
    "im.message.receive_v1": (
        "event.message.message_id",
        "event.message.chat_id",
        "event.message.root_id",
        "event.message.parent_id",
        "event.message.thread_id",
        *(f"event.sender.sender_id.{k}" for k in _USER),
        "event.sender.tenant_key",
    ),
    "card.action.trigger": (
        *(f"event.operator.{k}" for k in _USER),
        "event.operator.tenant_key",
        "event.context.open_message_id",
        "event.context.open_chat_id",
    ),
    "application.bot.menu_v6": tuple(f"event.operator.operator_id.{k}" for k in _USER),
    "im.chat.member.bot.added_v1": ("event.chat_id", *(f"event.operator_id.{k}" for k in _USER)),
}
TIMES: Mapping[str, tuple[str, ...]] = {
    "im.message.receive_v1": ("event.message.create_time", "event.message.update_time"),
    "application.bot.menu_v6": ("event.timestamp",),
}


class Malformed(ValueError):
    """A request stagebot refuses: `field` (a dotted path, or "body") and what is wrong with it.

    The message never carries the field's value (it may hold anything, control characters included),
    so it can be logged and answered as it is."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


def loads(text: str | bytes, what: str) -> Any:
    """The JSON in `text`; Malformed(`what`) for a duplicate key, ValueError for anything not JSON."""
    try:
        return strict_json.loads(text)
    except strict_json.DuplicateKey as exc:
        raise Malformed(what, f"has a {exc}") from None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _clean(text: str) -> bool:
    """No control, format, separator, surrogate or unassigned characters, and no spaces."""
    return text.isprintable() and not any(ch.isspace() for ch in text)


def check_id(value: Any, field: str) -> None:
    """An id: absent or a string of at most MAX_ID printable characters without spaces."""
    required = field in REQUIRED
    if value is None:
        if required:
            raise Malformed(field, "is missing")
        return
    if not isinstance(value, str):
        raise Malformed(field, f"must be a string, not {_kind(value)}")
    if not value and required:
        raise Malformed(field, "is empty")
    if len(value) > MAX_ID:
        raise Malformed(field, f"is too long ({len(value)} characters, at most {MAX_ID})")
    if not _clean(value):
        raise Malformed(field, "contains control characters or spaces")


def check_time(value: Any, field: str) -> None:
    """A time: absent, or a number of seconds/milliseconds/microseconds, as an integer or digits."""
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**MAX_TIME:
        return
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_TIME:
        return
    raise Malformed(field, f"must be a time in digits, not {_kind(value)}")


def check_header(header: Mapping[str, Any]) -> str:
    """The header's fields checked; its event type."""
    for key in HEADER_IDS:
        check_id(header.get(key), f"header.{key}")
    check_time(header.get("create_time"), "header.create_time")
    event_type: str = header["event_type"]
    return event_type


def _at(payload: Mapping[str, Any], path: str) -> Any:
    """The value at dotted `path`; None when it or a parent is absent. A parent that is there but not
    an object is Malformed (lark-oapi's model of the event would not have read it either)."""
    node: Any = payload
    keys = path.split(".")
    for depth, key in enumerate(keys):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise Malformed(".".join(keys[:depth]), f"must be an object, not {_kind(node)}")
        node = node.get(key)
    return node


def check_event(event_type: str, payload: Mapping[str, Any], model: Callable[[dict[str, Any]], Any]) -> None:
    """The event of a handled type checked: an object; the ids stagebot reads sane; and the whole of
    it readable by lark-oapi's model of the type (`model`, the class the SDK's dispatcher builds)."""
    event = payload.get("event")
    if not isinstance(event, dict):
        raise Malformed("event", "is missing" if event is None else f"must be an object, not {_kind(event)}")
    for path in IDS.get(event_type, ()):
        check_id(_at(payload, path), path)
    for path in TIMES.get(event_type, ()):
        check_time(_at(payload, path), path)
    mentions = _at(payload, "event.message.mentions") if event_type == "im.message.receive_v1" else None
    if mentions is not None and not (isinstance(mentions, list) and all(isinstance(m, dict) for m in mentions)):
        raise Malformed("event.message.mentions", "must be a list of objects")
    try:
        model(dict(payload))  # what lark-oapi's dispatcher does with it (JSON.unmarshal)
    except UnmarshalException as exc:
        # The SDK names the field but not where it is.
        raise Malformed(f"event field {json.dumps(str(exc.field)[:40])}", "has the wrong type") from None


def check_challenge(challenge: Any) -> str:
    """The URL-verification challenge: a non-empty string of printable characters, at most MAX_CHALLENGE."""
    if not isinstance(challenge, str):
        raise Malformed("challenge", "is missing" if challenge is None else f"must be a string, not {_kind(challenge)}")
    if not challenge:
        raise Malformed("challenge", "is empty")
    if len(challenge) > MAX_CHALLENGE:
        raise Malformed("challenge", f"is too long ({len(challenge)} characters, at most {MAX_CHALLENGE})")
    if not challenge.isprintable():
        raise Malformed("challenge", "contains control characters")
    return challenge
