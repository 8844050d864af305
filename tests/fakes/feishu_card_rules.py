"""What Feishu refuses in a message create / reply / patch: the rule book of the fake Open API.

One function, `check_message`, judges a request the way Feishu does and returns the refusal (HTTP status,
``code``, ``msg``) or None. `FakeFeishu` answers with it, and the renderer's property tests check every card
kind against the same function, so the fake and the tests cannot drift apart. Each rule cites its source.
Card JSON 1.0 (no ``schema``) ignores unknown properties, so only the size and element rules apply to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Source: im/v1/messages create, error table (卡片及富文本消息请求体最大不能超过30KB; 文本消息请求体最大不能超过150KB).
CARD_BODY_LIMIT = 30 * 1024
TEXT_BODY_LIMIT = 150 * 1024
# Source: open.feishu.cn feishu-cards card-json-v2-structure (a card holds at most 200 elements).
MAX_ELEMENTS = 200
# Source: im/v1/messages create, request body (uuid: 不超过 50 字符).
MAX_UUID = 50
SIZED_TYPES = frozenset({"interactive", "post"})  # the 30 KB types; everything else gets the text limit


@dataclass(frozen=True)
class Refusal:
    """Feishu's answer to a refused request: HTTP `status` and body ``{"code": code, "msg": msg}``."""

    status: int
    code: int
    msg: str

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def invalid_content(why: str) -> Refusal:
    # Source: im/v1/messages create, content is a JSON *string* (message-content-description create_json);
    # the error table's 230001 "Your request contains an invalid request parameter".
    return Refusal(400, 230001, f"Your request contains an invalid request parameter, ext=param is invalid: {why}")


def too_long(size: int, limit: int) -> Refusal:
    # Source: im/v1/messages create, error table: 230025 "The length of the message content reaches its limit".
    return Refusal(400, 230025, f"The length of the message content reaches its limit ({size} > {limit} bytes)")


def card_json_error(why: str) -> Refusal:
    # Source: im/v1/messages 230099 sub-codes: "Failed to create card content, ext=ErrCode: 200621; ErrMsg: parse
    # card json err"; card-json-v2-breaking-changes-release-notes: in 2.0 "传入不支持的属性将报错".
    return Refusal(
        400,
        230099,
        "Failed to create card content, ext=ErrCode: 200621; ErrMsg: parse card json err, please check whether "
        f"the card json is correct; ErrorValue: {why}",
    )


def too_many_elements(count: int) -> Refusal:
    # Source: im/v1/messages 230099 sub-code 11310 ("ErrCode: 11310; ErrMsg: %v; code:230099"), raised for cards
    # over the 200-element limit (research/feishu.md §3.3).
    return Refusal(
        400,
        230099,
        f"Failed to create card content, ext=ErrCode: 11310; ErrMsg: card has {count} elements, "
        f"more than {MAX_ELEMENTS}; code:230099",
    )


def invalid_uuid(uuid: object) -> Refusal:
    # Source: im/v1/messages create: uuid at most 50 characters; Feishu's field validation answers 99992402.
    return Refusal(400, 99992402, f"field validation failed: uuid (at most {MAX_UUID} characters): {uuid!r}")


# ---------------------------------------------------------------------------------------------------- card JSON 2.0
# The properties each object may carry. Source: open.feishu.cn feishu-cards card-json-v2-structure and the
# card-json-v2-components pages (div, button, column-set, image, divider, rich-text); unsupported properties
# are errors in 2.0 (card-json-v2-breaking-changes-release-notes).

CARD_KEYS = frozenset({"schema", "config", "card_link", "header", "body"})
CONFIG_KEYS = frozenset(
    {
        "streaming_mode",
        "streaming_config",
        "summary",
        "locales",
        "enable_forward",
        "update_multi",
        "width_mode",
        "use_custom_translation",
        "enable_forward_interaction",
        "style",
    }
)
SUMMARY_KEYS = frozenset({"content", "i18n_content"})  # card-json-v2-structure: config.summary
HEADER_KEYS = frozenset(
    {"title", "subtitle", "text_tag_list", "i18n_text_tag_list", "template", "icon", "ud_icon", "padding"}
)
BODY_KEYS = frozenset(
    {"direction", "padding", "horizontal_spacing", "horizontal_align", "vertical_spacing", "vertical_align", "elements"}
)
# A text object (header title, div text, button text, confirm title/text).
TEXT_KEYS = frozenset({"tag", "content", "i18n_content", "text_size", "text_color", "text_align", "lines"})
TEXT_TAGS = frozenset({"plain_text", "lark_md"})
CONFIRM_KEYS = frozenset({"title", "text"})
BEHAVIOR_KEYS = {
    "callback": frozenset({"type", "value"}),
    "open_url": frozenset({"type", "default_url", "pc_url", "ios_url", "android_url"}),
}
_COMMON = frozenset({"tag", "element_id", "margin"})
ELEMENT_KEYS: dict[str, frozenset[str]] = {
    "div": _COMMON | {"width", "text", "icon", "fields"},
    "markdown": _COMMON | {"content", "i18n_content", "text_align", "text_size", "icon"},
    "hr": _COMMON,
    "img": _COMMON
    | {"img_key", "alt", "title", "transparent", "preview", "corner_radius", "scale_type", "size", "mode"},
    "button": _COMMON
    | {
        "type",
        "size",
        "width",
        "text",
        "icon",
        "hover_tips",
        "disabled",
        "disabled_tips",
        "confirm",
        "behaviors",
        "name",
        "form_action_type",
    },
    "column_set": _COMMON
    | {"flex_mode", "horizontal_spacing", "horizontal_align", "background_style", "columns", "action"},
    "column": frozenset(
        {
            "tag",
            "element_id",
            "background_style",
            "width",
            "weight",
            "vertical_align",
            "vertical_spacing",
            "horizontal_align",
            "horizontal_spacing",
            "direction",
            "padding",
            "margin",
            "elements",
            "action",
        }
    ),
}
# The properties that hold a text object, per element tag.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "div": ("text",),
    "button": ("text", "hover_tips", "disabled_tips"),
    "img": ("alt", "title"),
}


def check_message(
    msg_type: object, content: object, body_size: int, uuid: object = None, *, patch: bool = False
) -> Refusal | None:
    """Feishu's verdict on a message create / reply (or a card `patch`): None if it would be accepted.

    `content` is the request's ``content`` field as sent (it must be a JSON string), `body_size` the request
    body's length in bytes. A patch updates a card, so its content is judged as one.
    """
    if uuid is not None and (not isinstance(uuid, str) or len(uuid) > MAX_UUID):
        return invalid_uuid(uuid)
    if not isinstance(content, str):
        return invalid_content("content must be a string of JSON")
    try:
        decoded = json.loads(content)
    except ValueError:
        return invalid_content("content is not JSON")
    kind = "interactive" if patch else msg_type
    limit = CARD_BODY_LIMIT if kind in SIZED_TYPES else TEXT_BODY_LIMIT
    if body_size > limit:
        return too_long(body_size, limit)
    if kind == "interactive":
        return check_card(decoded)
    return None


def check_card(card: object) -> Refusal | None:
    """A card's JSON (decoded `content`) as Feishu judges it."""
    if not isinstance(card, dict):
        return card_json_error("the card is not a JSON object")
    count = sum(1 for _ in _components(card))
    if count > MAX_ELEMENTS:
        return too_many_elements(count)
    if "schema" not in card and "body" not in card:
        return None  # JSON 1.0: unknown properties are ignored (card-json-v2-breaking-changes-release-notes)
    # Source: card-json-v2-structure: "schema" must be declared as "2.0" to use the 2.0 structure (and its body).
    if card.get("schema") != "2.0":
        return card_json_error(f'schema must be "2.0" for a card with a body, got {card.get("schema")!r}')
    problem = _unknown(card, CARD_KEYS, "") or _v2_card(card)
    return card_json_error(problem) if problem else None


def _unknown(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> str | None:
    extra = sorted(set(obj) - allowed)
    return f"unknown property `{extra[0]}` at {where or '/'}" if extra else None


def _v2_card(card: Mapping[str, Any]) -> str | None:
    config = card.get("config", {})
    if not isinstance(config, dict):
        return "config must be an object"
    problem = _unknown(config, CONFIG_KEYS, "config")
    if problem:
        return problem
    # Source: card-json-v2-breaking-changes-release-notes: update_multi "仅支持设为 true" in 2.0.
    if config.get("update_multi", True) is not True:
        return "config.update_multi must be true in schema 2.0"
    summary = config.get("summary")
    if summary is not None:
        if not isinstance(summary, dict):
            return "config.summary must be an object"
        problem = _unknown(summary, SUMMARY_KEYS, "config.summary")
        if problem:
            return problem
    header = card.get("header")
    if header is not None:
        if not isinstance(header, dict):
            return "header must be an object"
        problem = _unknown(header, HEADER_KEYS, "header") or _text(header.get("title"), "header.title")
        if problem:
            return problem
    body = card.get("body", {})
    if not isinstance(body, dict):
        return "body must be an object"
    problem = _unknown(body, BODY_KEYS, "body")
    if problem:
        return problem
    return _elements(body.get("elements", []), "body.elements")


def _text(obj: object, where: str) -> str | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        return f"{where} must be a text object"
    if obj.get("tag") not in TEXT_TAGS:
        return f"{where}.tag must be plain_text or lark_md"
    if not isinstance(obj.get("content", ""), str):
        return f"{where}.content must be a string"
    return _unknown(obj, TEXT_KEYS, where)


def _elements(elements: object, where: str) -> str | None:
    if not isinstance(elements, list):
        return f"{where} must be an array"
    for n, el in enumerate(elements):
        problem = _element(el, f"{where}[{n}]")
        if problem:
            return problem
    return None


def _element(el: object, where: str) -> str | None:
    if not isinstance(el, dict):
        return f"{where} must be an object"
    tag = el.get("tag")
    allowed = ELEMENT_KEYS.get(tag) if isinstance(tag, str) else None
    if not isinstance(tag, str) or allowed is None or tag == "column":  # a column only inside a column_set
        return f"unknown element tag {tag!r} at {where}"
    return _element_body(el, tag, allowed, where)


def _element_body(el: Mapping[str, Any], tag: str, allowed: frozenset[str], where: str) -> str | None:
    problem = _unknown(el, allowed, where)
    if problem:
        return problem
    for name in TEXT_FIELDS.get(tag, ()):
        problem = _text(el.get(name), f"{where}.{name}")
        if problem:
            return problem
    if tag == "button":
        return _button(el, where)
    if tag == "column_set":
        columns = el.get("columns", [])
        if not isinstance(columns, list):
            return f"{where}.columns must be an array"
        for n, col in enumerate(columns):
            at = f"{where}.columns[{n}]"
            if not isinstance(col, dict) or col.get("tag") != "column":
                return f"{at} must be a column"
            problem = _unknown(col, ELEMENT_KEYS["column"], at) or _elements(col.get("elements", []), f"{at}.elements")
            if problem:
                return problem
    return None


def _button(el: Mapping[str, Any], where: str) -> str | None:
    confirm = el.get("confirm")
    if confirm is not None:
        if not isinstance(confirm, dict):
            return f"{where}.confirm must be an object"
        problem = (
            _unknown(confirm, CONFIRM_KEYS, f"{where}.confirm")
            or _text(confirm.get("title"), f"{where}.confirm.title")
            or _text(confirm.get("text"), f"{where}.confirm.text")
        )
        if problem:
            return problem
    behaviors = el.get("behaviors", [])
    if not isinstance(behaviors, list):
        return f"{where}.behaviors must be an array"
    for n, b in enumerate(behaviors):
        at = f"{where}.behaviors[{n}]"
        allowed = BEHAVIOR_KEYS.get(str(b.get("type"))) if isinstance(b, dict) else None
        if allowed is None:
            return f"unknown behavior type at {at}"
        problem = _unknown(b, allowed, at)
        if problem:
            return problem
        # Source: research/feishu.md §0.8 / lark-oapi#112: a callback value must be a JSON object.
        if b["type"] == "callback" and not isinstance(b.get("value"), dict):
            return f"{at}.value must be an object"
    return None


def _components(card: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every component of the card: elements of the body (or 1.0 `elements`) and of containers, nested."""
    body = card.get("body")
    roots = body.get("elements") if isinstance(body, dict) else card.get("elements")
    stack = list(roots) if isinstance(roots, list) else []
    while stack:
        el = stack.pop()
        if not isinstance(el, dict):
            continue
        yield el
        for key in ("elements", "columns", "actions"):
            children = el.get(key)
            if isinstance(children, list):
                stack.extend(children)


def element_count(card: Mapping[str, Any]) -> int:
    """How many components Feishu counts against the 200-element limit."""
    return sum(1 for _ in _components(card))
