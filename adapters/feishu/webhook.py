"""POST /feishu/events: the checks lark-oapi leaves out (research/feishu.md §0): decrypt, verification
token, signature, replay window and nonce cache, ignoring unsubscribed events, the envelope's fields
(envelope.py: 400 naming a malformed one); then the SDK dispatcher. URL verification is answered here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import lark_oapi as lark
from lark_oapi.core.utils.decryptor import AESCipher

from adapters.feishu import cards, envelope
from lifecycle.domain.i18n import Lang, Text

log = logging.getLogger("stagebot.feishu")
TIMESTAMP_WINDOW = 300  # seconds either side of now, as Slack's replay window

HttpAnswer = tuple[int, dict[str, str], bytes]
_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _http(status: int, body: dict[str, Any]) -> HttpAnswer:
    return status, dict(_JSON), json.dumps(body, ensure_ascii=False).encode()


class _Nonces:
    """Nonces seen within the timestamp window: a replayed request is recognised, not run twice."""

    def __init__(self, ttl: float, cap: int = 100_000) -> None:
        self.ttl, self.cap = ttl, cap
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, nonce: str, now: float) -> bool:
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.cap):
                self._seen.popitem(last=False)
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


class Webhook:
    """The HTTP endpoint in front of `dispatcher`, which has a handler for every type in `handled`,
    mapped to the model lark-oapi builds from an event of that type."""

    def __init__(
        self,
        dispatcher: lark.EventDispatcherHandler,
        *,
        handled: Mapping[str, Callable[[dict[str, Any]], Any]],
        verification_token: str,
        encrypt_key: str,
        lang: Lang = "en",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.dispatcher = dispatcher
        self.handled = handled
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.lang = lang
        self.wall_clock = wall_clock
        self._nonces = _Nonces(2 * TIMESTAMP_WINDOW)
        self._cipher = AESCipher(encrypt_key) if encrypt_key else None

    def handle(self, raw: bytes, headers: Mapping[str, str], query: str = "") -> HttpAnswer:
        """One request: checks, then lark-oapi's own decrypt, verify and dispatch."""
        h = {k.lower(): v for k, v in headers.items()}
        try:
            outer = envelope.loads(raw, "the body")
        except envelope.Malformed as exc:
            return _http(400, {"error": str(exc)})
        except (ValueError, RecursionError):
            return _http(400, {"error": "body is not JSON"})
        if not isinstance(outer, dict):
            return _http(400, {"error": "body is not a JSON object"})
        if self._cipher is not None:
            if not isinstance(outer.get("encrypt"), str):
                return _http(400, {"error": "expected an encrypted body (an Encrypt Key is configured)"})
            try:
                payload = envelope.loads(self._cipher.decrypt_str(outer["encrypt"]), "the event")
            except envelope.Malformed as exc:
                return self._refuse(exc)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return _http(400, {"error": "cannot decrypt the body: check the Encrypt Key"})
        else:
            payload = outer
        if not isinstance(payload, dict):
            return _http(400, {"error": "event is not a JSON object"})
        header = payload.get("header")
        if not isinstance(header, dict):
            header = {}
        token = header.get("token") if payload.get("schema") == "2.0" else payload.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.verification_token.encode()):
            return _http(401, {"error": "wrong verification token"})
        if payload.get("type") == "url_verification":
            return self._challenge(payload)  # unsigned by design (research §2.3)
        refusal = self._check_signature(raw, h)
        if refusal is not None:
            return refusal
        if payload.get("schema") != "2.0":
            log.info("Feishu v1 event ignored: stagebot subscribes to schema 2.0 events only")
            return _http(200, {"msg": "ignored: stagebot does not handle v1 events"})
        try:
            event_type = envelope.check_header(header)
            if event_type not in self.handled:
                log.info("Feishu event %r ignored: stagebot does not subscribe to it", event_type)
                return _http(200, {"msg": f"ignored: stagebot does not handle {event_type}"})
            if event_type == "card.action.trigger" and not self._our_button(payload):
                # lark-oapi cannot read a string value (it would answer 500): the button is not ours.
                stale = Text("This button is not from stagebot, or is damaged.", "这个按钮不是 stagebot 的,或已损坏。")
                return _http(200, {"toast": cards.toast("error", stale, self.lang)})
            envelope.check_event(event_type, payload, self.handled[event_type])
        except envelope.Malformed as exc:
            return self._refuse(exc)
        return self._sdk(raw, h)

    @staticmethod
    def _our_button(payload: Mapping[str, Any]) -> bool:
        event = payload.get("event")
        action = event.get("action") if isinstance(event, dict) else None
        return isinstance(action, dict) and isinstance(action.get("value"), dict)

    def _refuse(self, exc: envelope.Malformed) -> HttpAnswer:
        """A request encrypted with our key that is malformed: a warning naming the field (never its
        value, nor a traceback: it is the sender's problem, not ours) and a 400 saying what is wrong."""
        log.warning("Feishu request refused: %s", exc)
        return _http(400, {"error": f"malformed request: {exc}"})

    def _challenge(self, payload: Mapping[str, Any]) -> HttpAnswer:
        """URL verification, answered here as JSON: lark-oapi formats it with `'{"challenge":"%s"}'`,
        unescaped, so a challenge with a quote in it made invalid JSON."""
        try:
            challenge = envelope.check_challenge(payload.get("challenge"))
        except envelope.Malformed as exc:
            return _http(400, {"error": f"url_verification: {exc}"})
        return _http(200, {"challenge": challenge})

    def _check_signature(self, raw: bytes, h: Mapping[str, str]) -> HttpAnswer | None:
        names = ("x-lark-request-timestamp", "x-lark-request-nonce", "x-lark-signature")
        ts, nonce, sig = (h.get(k, "") for k in names)
        if not (ts and nonce and sig):
            return _http(401, {"error": "missing X-Lark-Request-Timestamp, -Nonce or X-Lark-Signature"})
        try:
            age = abs(self.wall_clock() - int(ts))
        except ValueError:
            return _http(401, {"error": "bad X-Lark-Request-Timestamp"})
        if age > TIMESTAMP_WINDOW:
            return _http(401, {"error": "stale request: the timestamp is more than 5 minutes away"})
        expected = hashlib.sha256((ts + nonce + self.encrypt_key).encode() + raw).hexdigest()
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return _http(401, {"error": "bad signature"})
        if not self._nonces.first(f"{ts}:{nonce}", self.wall_clock()):
            return _http(200, {"msg": "duplicate request ignored"})
        return None

    def _sdk(self, raw: bytes, h: Mapping[str, str]) -> HttpAnswer:
        req = lark.RawRequest()
        req.uri = "/feishu/events"
        req.body = raw
        # lark-oapi reads these by exact case (research §0.5).
        req.headers = {
            "X-Lark-Request-Timestamp": h.get("x-lark-request-timestamp", ""),
            "X-Lark-Request-Nonce": h.get("x-lark-request-nonce", ""),
            "X-Lark-Signature": h.get("x-lark-signature", ""),
            "Content-Type": h.get("content-type", "application/json"),
        }
        resp = self.dispatcher.do(req)
        if resp.status_code >= 500:
            # Our handlers answer their own errors, so this is a request the SDK could not read.
            log.warning("Feishu request refused by lark-oapi: %s", (resp.content or b"")[:200])
            return _http(400, {"error": "malformed request"})
        out = {k: v for k, v in (resp.headers or {}).items() if k.lower() == "content-type"} or dict(_JSON)
        return resp.status_code, out, resp.content or b""
