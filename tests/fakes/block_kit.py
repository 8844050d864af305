"""Slack's Block Kit rule book, as the fake Slack enforces it and the renderer's property tests check it.

Each rule names its source. Messages and JSON pointers copy what Slack answers where it has been
seen in public reports; where only the limit is documented the wording follows the same pattern.
Lengths count characters (Unicode code points), as Slack documents and slack_sdk's validators do;
pass ``length=utf16_units`` to check against the stricter count a JavaScript service would make.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "MESSAGE_BLOCKS",
    "VIEW_BLOCKS",
    "VIEW_BYTES",
    "block_text_chars",
    "message_errors",
    "utf16_units",
    "view_errors",
    "view_size",
]

Length = Callable[[str], int]

# ------------------------------------------------------------------ the limits
# Sources: docs.slack.dev/reference/block-kit/... pages (limits as research/platform-limits.md lists them)
# and slack_sdk's models/blocks validators, which enforce the same numbers.
MESSAGE_BLOCKS = 50  # blocks page: up to 50 blocks per message
VIEW_BLOCKS = 100  # views/home-tab-views and modal pages: up to 100 blocks per view
BLOCK_ID = 255  # block_id on every block page: at most 255 characters
SECTION_TEXT = 3000  # section-block page: text at most 3000 characters
SECTION_FIELDS = 10  # section-block page: fields at most 10 items
FIELD_TEXT = 2000  # section-block page: each field at most 2000 characters
HEADER_TEXT = 150  # header-block page: text (plain_text only) at most 150 characters
CONTEXT_ELEMENTS = 10  # context-block page: elements at most 10
ACTIONS_ELEMENTS = 25  # actions-block page: elements at most 25
TEXT_OBJECT = 3000  # composition-objects page, text object: text at most 3000 characters
BUTTON_TEXT = 75  # button-element page: text (plain_text only) at most 75 characters
BUTTON_VALUE = 2000  # button-element page: value at most 2000 characters
BUTTON_URL = 3000  # button-element page: url at most 3000 characters
ACTION_ID = 255  # button-element page: action_id at most 255 characters
CONFIRM_TITLE, CONFIRM_TEXT, CONFIRM_BUTTON = 100, 300, 30  # confirmation-dialog object page
TEXT_TYPES = ("plain_text", "mrkdwn")  # composition-objects page: a text object's type is one of these
BUTTON_STYLES = ("primary", "danger")  # button-element page: style
# docs.slack.dev/reference/block-kit/blocks: every block type Slack knows (deeper rules below for the ones we send)
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
# msg_blocks_too_long: reported for chat.postMessage at about 12,000-13,300 characters of summed block
# text (slackapi/bolt-js#2509, #2867), undocumented and counted in a way nobody has pinned down, so the
# fake does not refuse on it; block_text_chars() lets tests keep a margin below it.
REPORTED_MSG_BLOCKS_TOO_LONG = 12_000
# views.publish reference, errors: view_too_large "if the provided view is greater than 250kb"
VIEW_BYTES = 250_000


def utf16_units(s: str) -> int:
    """The length of `s` in UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(s.encode("utf-16-le")) // 2


# ------------------------------------------------------------------ checking


class _Check:
    def __init__(self, length: Length) -> None:
        self.length = length
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    # A text object: composition-objects page; "must be more than 0 characters" and "must be a valid
    # enum value" are Slack's wording (slackapi/bolt-js#793, nicklambourne/slackblocks#5).
    def text(self, obj: Any, at: str, limit: int, *, plain_only: bool = False) -> None:
        if not isinstance(obj, dict):
            self.fail("expected object", at)
            return
        kind = obj.get("type")
        if kind not in (("plain_text",) if plain_only else TEXT_TYPES):
            self.fail("must be a valid enum value", f"{at}/type")
        text = obj.get("text")
        if not isinstance(text, str):
            self.fail("missing required field: text", at)
            return
        if text == "":
            self.fail("must be more than 0 characters", f"{at}/text")
        elif self.length(text) > limit:
            self.fail(f"must be less than {limit + 1} characters", f"{at}/text")

    def string(self, value: Any, at: str, limit: int) -> None:
        if not isinstance(value, str):
            self.fail("expected string", at)
        elif value == "":
            self.fail("must be more than 0 characters", at)
        elif self.length(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", at)

    def items(self, value: Any, at: str, limit: int) -> list[Any]:
        if not isinstance(value, list):
            self.fail("expected array", at)
            return []
        if len(value) > limit:
            self.fail(f"no more than {limit} items allowed", at)  # wording: reports of /blocks, /fields
        return value

    # Button element: docs.slack.dev/reference/block-kit/block-elements/button-element
    def button(self, el: dict[str, Any], at: str) -> None:
        self.text(el.get("text"), f"{at}/text", BUTTON_TEXT, plain_only=True)
        if "action_id" in el:
            self.string(el["action_id"], f"{at}/action_id", ACTION_ID)
        if "value" in el:
            self.string(el["value"], f"{at}/value", BUTTON_VALUE)
        if "url" in el:
            self.string(el["url"], f"{at}/url", BUTTON_URL)
        if "style" in el and el["style"] not in BUTTON_STYLES:
            self.fail("must be a valid enum value", f"{at}/style")
        if "confirm" in el:  # confirmation dialog object page
            cf, where = el["confirm"], f"{at}/confirm"
            if not isinstance(cf, dict):
                self.fail("expected object", where)
                return
            self.text(cf.get("title"), f"{where}/title", CONFIRM_TITLE, plain_only=True)
            self.text(cf.get("text"), f"{where}/text", CONFIRM_TEXT)
            self.text(cf.get("confirm"), f"{where}/confirm", CONFIRM_BUTTON, plain_only=True)
            self.text(cf.get("deny"), f"{where}/deny", CONFIRM_BUTTON, plain_only=True)

    def element(self, el: Any, at: str) -> str | None:
        """An interactive element; returns its action_id (None when it has none)."""
        if not isinstance(el, dict):
            self.fail("expected object", at)
            return None
        if el.get("type") == "button":
            self.button(el, at)
        elif not isinstance(el.get("type"), str):
            self.fail("missing required field: type", at)
        action_id = el.get("action_id")
        return action_id if isinstance(action_id, str) else None

    def unique_action_ids(self, elements: list[tuple[Any, str]]) -> None:
        # button-element page: "Should be unique among all other action_ids in the containing block";
        # refused as "`action_id` "x" already exists" (fabro-sh/fabro#251, ColeMurray/background-agents#868).
        seen: set[str] = set()
        for el, at in elements:
            action_id = el.get("action_id") if isinstance(el, dict) else None
            if not isinstance(action_id, str):
                continue
            if action_id in seen:
                self.fail(f'`action_id` "{action_id}" already exists', f"{at}/action_id")
            seen.add(action_id)

    def block(self, block: Any, at: str) -> None:
        if not isinstance(block, dict):
            self.fail("expected object", at)
            return
        kind = block.get("type")
        if not isinstance(kind, str):
            self.fail("missing required field: type", at)
            return
        if kind not in BLOCK_TYPES:
            self.fail(f"unsupported type: {kind}", f"{at}/type")  # wording: "unsupported type: markdown"
            return
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.fail("must define either `text` or `fields`", f"{at}/type")
            if "text" in block:
                t = block["text"]
                if isinstance(t, dict) and isinstance(t.get("text"), str) and self.length(t["text"]) > SECTION_TEXT:
                    # Slack lists this first for a too-long section text (metabase/metabase#74943)
                    self.fail("failed to match all allowed schemas", f"{at}/text")
                self.text(t, f"{at}/text", SECTION_TEXT)
            if "fields" in block:
                for n, f in enumerate(self.items(block["fields"], f"{at}/fields", SECTION_FIELDS)):
                    self.text(f, f"{at}/fields/{n}", FIELD_TEXT)
            if "accessory" in block:
                self.element(block["accessory"], f"{at}/accessory")
        elif kind == "header":
            self.text(block.get("text"), f"{at}/text", HEADER_TEXT, plain_only=True)
        elif kind == "context":
            for n, el in enumerate(self.items(block.get("elements"), f"{at}/elements", CONTEXT_ELEMENTS)):
                where = f"{at}/elements/{n}"
                if isinstance(el, dict) and el.get("type") == "image":
                    continue
                self.text(el, where, TEXT_OBJECT)
        elif kind == "actions":
            elements = self.items(block.get("elements"), f"{at}/elements", ACTIONS_ELEMENTS)
            for n, el in enumerate(elements):
                self.element(el, f"{at}/elements/{n}")
            self.unique_action_ids([(el, f"{at}/elements/{n}") for n, el in enumerate(elements)])

    def blocks(self, blocks: Any, at: str, limit: int) -> None:
        if not isinstance(blocks, list):
            self.fail("expected array", at)
            return
        if len(blocks) > limit:
            # seen as "no more than 50 items allowed [json-pointer:/blocks]" (symfony/slack-notifier tests)
            self.fail(f"no more than {limit} items allowed", at)
        seen: set[str] = set()
        for n, block in enumerate(blocks):
            where = f"{at}/{n}"
            self.block(block, where)
            block_id = block.get("block_id") if isinstance(block, dict) else None
            if block_id is None:
                continue
            self.string(block_id, f"{where}/block_id", BLOCK_ID)
            # section-block page: "block_id should be unique for each message and each iteration of a message"
            if isinstance(block_id, str) and block_id in seen:
                self.fail(f'`block_id` "{block_id}" already exists', f"{where}/block_id")
            if isinstance(block_id, str):
                seen.add(block_id)


def message_errors(blocks: Any, *, length: Length = len) -> list[str]:
    """What Slack would list in `errors` for a message's `blocks` (chat.postMessage / update /
    postEphemeral, response_url); empty when Slack accepts them."""
    check = _Check(length)
    check.blocks(blocks, "/blocks", MESSAGE_BLOCKS)
    return check.errors


def view_errors(view: Any, *, length: Length = len) -> list[str]:
    """The same for a view (views.publish / open / update / push): at most 100 blocks, pointers
    under /view/blocks (as in "no more than 10 items allowed [json-pointer:/view/blocks/13/fields]")."""
    check = _Check(length)
    if not isinstance(view, dict):
        check.fail("expected object", "/view")
        return check.errors
    if view.get("type") not in ("home", "modal"):
        check.fail("must be a valid enum value", "/view/type")
    check.blocks(view.get("blocks"), "/view/blocks", VIEW_BLOCKS)
    return check.errors


def view_size(view: Any) -> int:
    """A view's size in bytes as slack_sdk sends it (json.dumps: non-ASCII as \\u escapes)."""
    return len(json.dumps(view).encode())


def _texts(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        if obj.get("type") in TEXT_TYPES and isinstance(obj.get("text"), str):
            yield obj["text"]
        for value in obj.values():
            yield from _texts(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _texts(value)


def block_text_chars(blocks: Any) -> int:
    """The summed length of every text object in `blocks` (what msg_blocks_too_long is said to count)."""
    return sum(len(t) for t in _texts(blocks))
