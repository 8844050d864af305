"""Per-channel pacing for notifiers: defer, never sleep, so one busy channel never holds up others.

A notifier asks `take(channel)` before each post: inside the channel's minimum interval (or while
a rate limit holds the channel, or the whole app) it raises `DeliveryDeferred` with the wait, and
the outbox dispatcher tries that delivery again when it is due, without counting an attempt.
This one keeps its state in the process: for tests and single-process tools. `stagebot serve`
uses lifecycle.delivery.pacing.SharedPacer, the same interface kept in the database, so several replicas
share one pace per channel and honour each other's rate-limit holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from lifecycle.delivery.outbox import DeliveryDeferred, Posted

APP = "*"  # the scope of a hold on everything (an app-wide rate limit)


class Pacing(Protocol):
    min_interval: float

    def take(self, channel: str, posted: list[Posted]) -> None: ...

    def hold(self, scope: str, seconds: float) -> None: ...


class Pacer:
    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self.clock = clock
        self._last_post: dict[str, float] = {}
        self._held_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, channel: str, posted: list[Posted]) -> None:
        """Claim the channel's next slot now, or raise DeliveryDeferred with how long to wait."""
        with self._lock:
            now = self.clock()
            wait = max(
                self._last_post.get(channel, -1e9) + self.min_interval - now,
                self._held_until.get(channel, 0.0) - now,
                self._held_until.get(APP, 0.0) - now,
            )
            if wait > 0:
                raise DeliveryDeferred(retry_after=wait, posted=posted)
            self._last_post[channel] = now

    def hold(self, scope: str, seconds: float) -> None:
        """After a rate limit: nothing more to `scope` (a channel, or APP) for `seconds`."""
        with self._lock:
            until = self.clock() + seconds
            self._held_until[scope] = max(self._held_until.get(scope, 0.0), until)
