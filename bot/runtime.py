"""Background work of a running stagebot: the outbox dispatcher thread, woken after each change."""

from __future__ import annotations

import logging
import threading

from lifecycle.delivery.outbox import Dispatcher

log = logging.getLogger("stagebot.runtime")


class DispatcherThread:
    """Runs the dispatcher until stopped; `wake()` makes it look at the outbox right away."""

    def __init__(self, dispatcher: Dispatcher, *, poll_seconds: float = 0.5) -> None:
        self.dispatcher = dispatcher
        self.poll = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)

    def start(self) -> DispatcherThread:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the delivery in flight, then stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.dispatcher.run_once()
            except Exception:  # the database went away for a moment: try again shortly
                log.exception("outbox dispatch failed; retrying")
                report = None
            if report is not None and report.handled == 0 and report.deferred:
                # Everything due is waiting for a paced channel. New changes only add to that
                # queue, so do not wake for them: sleep until the first channel is free again.
                self._stop.wait(min(max(report.next_in or self.poll, 0.05), 1.0))
                self._wake.clear()
            elif report is None or report.handled == 0:
                self._wake.wait(self.poll)
                self._wake.clear()
