"""Clocks a test moves instead of sleeping, for the delivery side of a running stagebot.

`JumpClock` is the wall clock plus an offset the test advances: `now()` (a lifecycle Clock, for the
Dispatcher's retries and leases) and `clock()` as epoch seconds (a pacer's clock) move together.
The wall-clock part keeps rows the core writes with its own (system) clock due at once; advancing
the offset is how a test "waits" out a pacing slot, a Retry-After or a retry backoff in no time.
`drive()` drains a Dispatcher, jumping the clock to the next due row whenever nothing is due."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.serve import Running
from lifecycle.delivery.outbox import Dispatcher


class JumpClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class StepClock:
    """Seconds that stand still until slept through: `clock()` for a Pacer and deliver_all's
    `monotonic`, `sleep` for its `sleep` (a jump, recorded in `slept`), `now()` for a Dispatcher."""

    def __init__(self, at: float = 1000.0) -> None:
        self.at = at
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.at

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += seconds


def on_jump_clock(dispatcher: Dispatcher, clock: JumpClock) -> None:
    """Put a Dispatcher and its notifiers' pacers on `clock`."""
    dispatcher.clock = clock
    for notifier in dispatcher.notifiers.values():
        pacer = getattr(notifier, "pacer", None)
        if pacer is not None:
            pacer.clock = clock


def take_over(running: Running) -> tuple[Dispatcher, JumpClock]:
    """Stop a running stagebot's dispatcher thread and put its Dispatcher on a JumpClock, so the
    test alone decides when delivery happens and how much time has passed."""
    running.dispatcher.stop()
    clock = JumpClock()
    on_jump_clock(running.app.dispatcher, clock)
    return running.app.dispatcher, clock


def drive(
    dispatcher: Dispatcher,
    clock: JumpClock,
    done: Callable[[], bool],
    *,
    limit: float = 600.0,
    each_round: Callable[[], None] | None = None,
) -> float:
    """Drain until `done()`, advancing `clock` by the wait the dispatcher reports (or 0.25 s) when
    nothing is due. Returns the simulated seconds it took; fails past `limit` simulated seconds.
    `each_round()` is called after every drain (to note what was sent at which simulated time)."""
    start = clock.offset
    while not done():
        if clock.offset - start > limit:
            raise AssertionError(f"not done after {limit} simulated seconds")
        report = dispatcher.drain()
        if each_round is not None:
            each_round()
        if report.delivered == 0 and not done():
            clock.advance(min(max(report.next_in or 0.25, 0.05), 1.0))
    return clock.offset - start
