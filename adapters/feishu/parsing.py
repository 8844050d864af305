"""The command in a Feishu message: the text of a text or rich-text (post) message, with mentions
read against the bot's own open_id. Pure functions of the SDK's message model."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


def post_text(content: dict[str, Any]) -> str:
    """The text of a rich-text (post) message; mention tags become their @_user_N placeholders."""
    body = content
    if "content" not in body:  # wrapped per locale: {"zh_cn": {...}}
        body = next((v for v in content.values() if isinstance(v, dict) and "content" in v), {})
    lines = []
    for para in body.get("content") or []:
        if not isinstance(para, list):
            continue
        parts = []
        for node in para:
            if not isinstance(node, dict):
                continue
            tag = node.get("tag")
            if tag in ("text", "a", "code_block") and isinstance(node.get("text"), str):
                parts.append(node["text"])
            elif tag == "at":
                parts.append(f" {node.get('user_id', '')} ")
        lines.append("".join(parts))
    return " ".join(lines)


def command_text(message: Any, bot_open_id: str | None, *, group: bool) -> tuple[str | None, bool]:
    """(the command line, whether it is meant for the bot). None as the line: not a text message.

    The command is what follows the bot's first mention, wherever it stands ("FYI @Dora, @stagebot
    move Acme SQL"); a message that does not mention the bot (a direct chat) is a command as a whole.
    Later mentions of the bot are dropped; mentions of other people become `feishu:ou_…`, which the
    grammar reads as a person (`assign Acme @bob`), except as the command word, where the person's
    name stands instead (an unknown command must not echo a raw id). In a group only a message that
    mentions the bot is meant for it.
    """
    try:
        raw = message.content if isinstance(message.content, str | bytes) else "{}"
        content = json.loads(raw or "{}")
    except (ValueError, RecursionError):
        content = None
    if not isinstance(content, dict):
        return None, not group
    if message.message_type == "text" and isinstance(content.get("text"), str):
        text = content["text"]
    elif message.message_type == "post":
        text = post_text(content)
    else:
        return None, not group
    # Feishu always sends string keys and ids; anything else is not a mention we can read.
    mentions = {m.key: m for m in (message.mentions or []) if isinstance(getattr(m, "key", None), str) and m.key}
    bots = _bot_keys(mentions, bot_open_id, group=group)
    pieces = [text]
    if mentions:  # longest key first: @_user_1 must not match the start of @_user_10
        keys = sorted(mentions, key=len, reverse=True)
        pieces = re.split("(" + "|".join(re.escape(k) for k in keys) + ")", text)  # keys at odd indices
    first_bot = next((i for i in range(1, len(pieces), 2) if pieces[i] in bots), None)
    if first_bot is not None:
        pieces = pieces[first_bot + 1 :]  # text first again: keys stay at odd indices
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            out.append(piece)
            continue
        oid = _open_id(mentions[piece])
        if piece in bots or oid is None:
            out.append(" ")
        elif not "".join(out).replace("@_all", " ").strip():  # the command word: a name, never an id
            name = "".join(str(mentions[piece].name or "").split())
            out.append(f" @{name or 'someone'} ")
        else:
            out.append(f" feishu:{oid} ")
    line = "".join(out).replace("@_all", " ").strip()
    for prefix in ("/stage ", "/stage"):
        if line.startswith(prefix):
            line = line[len(prefix) :].strip()
            break
    return line, bool(bots) or not group


def _open_id(mention: Any) -> str | None:
    oid = getattr(mention.id, "open_id", None) if mention.id else None
    return oid if isinstance(oid, str) and oid else None


def _bot_keys(mentions: Mapping[str, Any], bot_open_id: str | None, *, group: bool) -> set[str]:
    """The placeholders that mention the bot. While its identity is unknown a group message reaches
    us only when it mentions the bot: the mentions Feishu marks as a bot's, else the first one."""
    if bot_open_id is not None:
        return {k for k, m in mentions.items() if _open_id(m) == bot_open_id}
    if not group or not mentions:
        return set()
    marked = {k for k, m in mentions.items() if getattr(m, "mentioned_type", None) == "bot"}
    return marked or {next(iter(mentions))}
