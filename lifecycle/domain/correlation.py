"""The correlation id of the work in hand: set per inbound request, stored on the outbox rows that
request writes, and set again while the dispatcher delivers them, so one id ties a slash command
to the notifications it caused in the logs of any replica.

A plain `ContextVar`: the core reads it when it writes outbox rows and knows nothing of HTTP.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

current: ContextVar[str | None] = ContextVar("stagebot_correlation_id", default=None)

_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # what we accept from an X-Request-Id header


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def accept(header: str | None) -> str:
    """An inbound X-Request-Id if it is a sane token, else a fresh id (never log raw client input)."""
    return header if header and _SAFE.match(header) else new_id()


@contextmanager
def bound(correlation_id: str | None) -> Iterator[str | None]:
    token = current.set(correlation_id)
    try:
        yield correlation_id
    finally:
        current.reset(token)


@contextmanager
def ensured() -> Iterator[str]:
    """The id of the work in hand, or a fresh one bound while the block runs: for inbound work that
    did not come through our HTTP server (Slack's Socket Mode, Feishu's long connection)."""
    cid = current.get()
    if cid is not None:
        yield cid
        return
    fresh = new_id()
    with bound(fresh):
        yield fresh


class CarryingPool(ThreadPoolExecutor):
    """A thread pool whose tasks run under the correlation id of the work that submitted them (a
    plain pool runs them with none): the reply, report or chart sent after a request's ack logs
    under that request's id."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        run: Callable[..., T] = contextvars.copy_context().run
        return super().submit(run, fn, *args, **kwargs)
