"""Inbound Feishu requests for tests: schema 2.0 event envelopes, really AES-encrypted and SHA-256 signed.

Build an event, wrap it in an envelope, then encrypt and sign it the way Feishu does::

    body, headers = signed(envelope("im.message.receive_v1", text_message("/stage ACME SQL"), token=VT),
                           encrypt_key=EK)
    req = raw_request(body, headers)  # a lark.RawRequest for EventDispatcherHandler.do()

Recorded bodies, shaped as Feishu's docs show them, are in ``payloads/feishu/`` beside this module.

Encryption: AES-256-CBC, key = SHA256(encrypt_key), random 16-byte IV prepended, PKCS7, base64, sent as
``{"encrypt": "..."}``. Signature: ``sha256_hex((timestamp + nonce + encrypt_key).encode() + raw_body)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from Crypto.Cipher import AES

if TYPE_CHECKING:
    from lark_oapi.core.model import RawRequest

__all__ = [
    "card_action",
    "encrypt",
    "envelope",
    "mention",
    "post_message",
    "raw_request",
    "sign",
    "signed",
    "text_message",
    "url_verification",
]

HEADER_TIMESTAMP = "X-Lark-Request-Timestamp"
HEADER_NONCE = "X-Lark-Request-Nonce"
HEADER_SIGNATURE = "X-Lark-Signature"

MentionSpec = tuple[str, str] | Mapping[str, Any]  # (open_id, name) or a full mention dict


def encrypt(encrypt_key: str, plaintext: bytes) -> str:
    """AES-256-CBC with key SHA256(encrypt_key), a random IV prepended, PKCS7 padding; base64."""
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    iv = os.urandom(AES.block_size)
    pad = AES.block_size - len(plaintext) % AES.block_size
    cipher = AES.new(key, AES.MODE_CBC, iv)
    return base64.b64encode(iv + cipher.encrypt(plaintext + bytes([pad]) * pad)).decode("ascii")


def sign(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """Feishu's request signature: sha256 hex of (timestamp + nonce + encrypt_key).encode() + body (not HMAC)."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def signed(
    payload: Mapping[str, Any],
    *,
    encrypt_key: str,
    timestamp: int | None = None,
    nonce: str | None = None,
    encrypt: bool = True,
    lower_case_headers: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a request as Feishu sends it: ``{"encrypt": ...}`` (or `payload` as is), signed."""
    plain = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    body = json.dumps({"encrypt": _encrypt(encrypt_key, plain)}).encode("utf-8") if encrypt else plain
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(8) if nonce is None else nonce
    headers = {
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(ts, nonce, encrypt_key, body),
        "Content-Type": "application/json",
    }
    if lower_case_headers:
        headers = {k.lower(): v for k, v in headers.items()}
    return body, headers


_encrypt = encrypt  # `signed` has a parameter named `encrypt`


def raw_request(body: bytes, headers: Mapping[str, str], uri: str = "/feishu/events") -> RawRequest:
    """A `lark.RawRequest` (uri, headers as given, the exact body bytes) for `EventDispatcherHandler.do()`."""
    from lark_oapi.core.model import RawRequest

    req = RawRequest()
    req.uri = uri
    req.headers = dict(headers)
    req.body = body
    return req


# ---------------------------------------------------------------------------------------------------- payloads


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def envelope(
    event_type: str,
    event: Mapping[str, Any],
    *,
    token: str,
    app_id: str = "cli_test",
    event_id: str | None = None,
    tenant_key: str = "t1",
    create_time: str | None = None,
) -> dict[str, Any]:
    """A schema 2.0 envelope. `token` is the Verification Token (Feishu sends "" over the long connection)."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or f"ev_{uuid.uuid4().hex}",
            "event_type": event_type,
            "create_time": create_time or _now_ms(),
            "token": token,
            "app_id": app_id,
            "tenant_key": tenant_key,
        },
        "event": dict(event),
    }


def mention(index: int, open_id: str, name: str, *, tenant_key: str = "t1") -> dict[str, Any]:
    """The mention behind the ``@_user_<index>`` placeholder in a message's text."""
    return {
        "key": f"@_user_{index}",
        "id": {
            "open_id": open_id,
            "union_id": f"on_{open_id.removeprefix('ou_')}",
            "user_id": open_id.removeprefix("ou_"),
        },
        "name": name,
        "tenant_key": tenant_key,
        "mentioned_type": "user",
    }


def _mentions(specs: Sequence[MentionSpec] | None) -> list[dict[str, Any]] | None:
    if specs is None:
        return None
    out = []
    for i, spec in enumerate(specs, start=1):
        if isinstance(spec, tuple):
            out.append(mention(i, spec[0], spec[1]))
        else:
            out.append(dict(spec))
    return out


def _message_event(
    message_type: str,
    content: Any,
    *,
    open_id: str,
    chat_id: str,
    chat_type: str,
    message_id: str | None,
    mentions: Sequence[MentionSpec] | None,
    parent_id: str | None,
    tenant_key: str,
) -> dict[str, Any]:
    now = _now_ms()
    message: dict[str, Any] = {
        "message_id": message_id or f"om_{uuid.uuid4().hex[:24]}",
        "create_time": now,
        "update_time": now,
        "chat_id": chat_id,
        "chat_type": chat_type,
        "message_type": message_type,
        "content": json.dumps(content, ensure_ascii=False),
        "user_agent": "Mozilla/5.0 (Macintosh) Lark/7.64.6 LarkLocale/en_US ttnet SDK-Version/7.64.6",
    }
    if parent_id:
        message["parent_id"] = message["root_id"] = parent_id
    built = _mentions(mentions)
    if built is not None:
        message["mentions"] = built
    return {
        "sender": {
            "sender_id": {
                "open_id": open_id,
                "union_id": f"on_{open_id.removeprefix('ou_')}",
                "user_id": open_id.removeprefix("ou_"),
            },
            "sender_type": "user",
            "tenant_key": tenant_key,
        },
        "message": message,
    }


def text_message(
    text: str,
    *,
    open_id: str = "ou_alice",
    chat_id: str = "oc_dm",
    chat_type: str = "p2p",
    message_id: str | None = None,
    mentions: Sequence[MentionSpec] | None = None,
    parent_id: str | None = None,
    tenant_key: str = "t1",
) -> dict[str, Any]:
    """The `event` of an ``im.message.receive_v1`` text message; content is the JSON string ``{"text": text}``.

    `mentions`: ``(open_id, name)`` pairs (keys ``@_user_1``, ``@_user_2``... in order) or full mention dicts;
    the placeholders belong in `text`, e.g. ``"@_user_1 /stage ACME SQL"``.
    """
    return _message_event(
        "text",
        {"text": text},
        open_id=open_id,
        chat_id=chat_id,
        chat_type=chat_type,
        message_id=message_id,
        mentions=mentions,
        parent_id=parent_id,
        tenant_key=tenant_key,
    )


def post_message(
    paragraphs: Sequence[Sequence[str | Mapping[str, Any]]],
    *,
    title: str = "",
    locale: str | None = None,
    open_id: str = "ou_alice",
    chat_id: str = "oc_dm",
    chat_type: str = "p2p",
    message_id: str | None = None,
    mentions: Sequence[MentionSpec] | None = None,
    parent_id: str | None = None,
    tenant_key: str = "t1",
) -> dict[str, Any]:
    """The `event` of a rich-text (``post``) message: content ``{"title": ..., "content": [[element, ...], ...]}``.

    A paragraph element is a dict (``{"tag": "at", "user_id": "@_user_1", "user_name": "stagebot"}``) or a str,
    short for ``{"tag": "text", "text": s}``. `locale` (e.g. "zh_cn") wraps the content as ``{locale: {...}}``.
    """
    content: dict[str, Any] = {
        "title": title,
        "content": [
            [{"tag": "text", "text": el} if isinstance(el, str) else dict(el) for el in paragraph]
            for paragraph in paragraphs
        ],
    }
    return _message_event(
        "post",
        {locale: content} if locale else content,
        open_id=open_id,
        chat_id=chat_id,
        chat_type=chat_type,
        message_id=message_id,
        mentions=mentions,
        parent_id=parent_id,
        tenant_key=tenant_key,
    )


def card_action(
    value: Mapping[str, Any],
    *,
    open_id: str = "ou_boss",
    open_message_id: str = "om_1",
    open_chat_id: str = "oc_sales",
    tag: str = "button",
    update_token: str | None = None,
    form_value: Mapping[str, Any] | None = None,
    name: str | None = None,
    tenant_key: str = "t1",
) -> dict[str, Any]:
    """The `event` of a ``card.action.trigger`` callback (a button click unless `tag` says otherwise).

    `update_token` is the event's ``token`` (the delayed-update token, not the Verification Token).
    """
    action: dict[str, Any] = {"value": dict(value), "tag": tag}
    if form_value is not None:
        action["form_value"] = dict(form_value)
    if name is not None:
        action["name"] = name
    return {
        "operator": {
            "open_id": open_id,
            "user_id": open_id.removeprefix("ou_"),
            "union_id": f"on_{open_id.removeprefix('ou_')}",
            "tenant_key": tenant_key,
        },
        "token": update_token or f"c-{uuid.uuid4().hex}",
        "action": action,
        "host": "im_message",
        "delivery_type": "url_callback",
        "context": {"open_message_id": open_message_id, "open_chat_id": open_chat_id},
    }


def url_verification(challenge: str, token: str) -> dict[str, Any]:
    """The plain URL-verification request (no schema 2.0 envelope); `signed(...)` encrypts it when asked."""
    return {"challenge": challenge, "token": token, "type": "url_verification"}
