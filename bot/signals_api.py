"""`POST /api/v1/signals`: product telemetry into the lifecycle core, guarded by a bearer token.

Body: `{"account": NAME | "external_id": ID, "signal": "test_email_sent", "value": 12, "at": ISO,
"id": "evt-123", "source": "billing"}` (`id` and `source` optional). A signal is applied once per
(source, id); without an `id`, identical bodies count as the same signal. Every refusal is a 4xx
with a JSON `error`; nothing of a refused signal is applied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.server import Handler
from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain.access import Actor
from lifecycle.domain.errors import InvalidInput, LifecycleError, NotFound

log = logging.getLogger("stagebot.signals")
API = Actor("system", "api")
HttpAnswer = tuple[int, dict[str, str], bytes]


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account: str | None = Field(default=None, min_length=1, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=128)
    signal: str = Field(min_length=1, max_length=64)
    value: Decimal | None = Field(default=None, allow_inf_nan=False, ge=0, lt=Decimal("1e14"))
    at: AwareDatetime | None = None
    id: str | None = Field(default=None, min_length=1, max_length=128)
    source: str = Field(default="api", min_length=1, max_length=64)

    @field_validator("at")
    @classmethod
    def _has_utc(cls, at: datetime | None) -> datetime | None:
        if at is not None:
            try:
                at.astimezone(UTC)
            except OverflowError:
                raise ValueError("out of range: this time has no UTC equivalent") from None
        return at

    @model_validator(mode="after")
    def _one_account(self) -> SignalIn:
        if (self.account is None) == (self.external_id is None):
            raise ValueError('give exactly one of "account" (a name or #ID) and "external_id"')
        return self


def _json(status: int, body: dict[str, Any], **headers: str) -> HttpAnswer:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body, ensure_ascii=False).encode()


def signals_handler(core: Lifecycle, token: str | None, on_change: Callable[[], None] = lambda: None) -> Handler:
    def signals(raw: bytes, headers: dict[str, str], query: str) -> HttpAnswer:
        if not token:
            return _json(404, {"error": "the signals API is off: set STAGEBOT_API_TOKEN to turn it on"})
        given = headers.get("authorization", "")
        scheme, _, secret = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), token.encode()):
            return _json(401, {"error": "missing or wrong bearer token"}, **{"WWW-Authenticate": "Bearer"})
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return _json(400, {"error": "the body is not JSON"})
        if not isinstance(data, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        try:
            sig = SignalIn.model_validate(data)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
            return _json(422, {"error": "invalid signal", "problems": problems})
        signal_id = sig.id or hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:40]
        cmd = c.IngestSignal(
            actor=API,
            key=f"signal:{sig.source}:{signal_id}",
            via="api",
            account=sig.account,
            external_id=sig.external_id,
            signal=sig.signal,
            value=sig.value,
            at=sig.at if isinstance(sig.at, datetime) else None,
            source=sig.source,
            signal_id=signal_id,
        )
        try:
            outcome = core.execute(cmd)
        except NotFound as exc:
            return _json(404, {"error": exc.text("en")})
        except InvalidInput as exc:
            return _json(422, {"error": exc.text("en")})
        except LifecycleError as exc:
            return _json(409, {"error": exc.text("en")})
        if not outcome.replayed:
            on_change()
        return _json(
            200,
            {
                "ok": True,
                "account": outcome.account.name,
                "stage": outcome.account.stage,
                "ticked": list(outcome.ticked),
                "moved_to": outcome.to_stage if outcome.kind == "moved" else None,
                "replayed": outcome.replayed,
            },
        )

    return signals
