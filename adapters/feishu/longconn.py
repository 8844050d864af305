"""Feishu's long connection (长连接): lark-oapi's WebSocket client in its own thread, watched for liveness.

lark-oapi 1.7.5's `ws.Client` blocks forever in `start()` on a module-level event loop, has no
`stop()`, and can hang for good on reconnect because endpoint discovery has no timeout
(research/feishu.md §0.2-0.3). So: the client runs in a thread of its own with a fresh loop;
discovery gets a deadline; and a watchdog forces a reconnect when no frame (event or pong) has
arrived for `stall_seconds`, and starts a new client if the old one does not come back.
Events go to the same dispatcher, with the same handlers, as the webhook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any

import lark_oapi as lark
import lark_oapi.ws.client as ws_client
from lark_oapi.ws.exception import ServerException

log = logging.getLogger("stagebot.feishu.longconn")
DISCOVERY_TIMEOUT = 15.0


class _WatchedClient(ws_client.Client):  # type: ignore[misc]  # lark-oapi has no type information
    """The SDK client, telling us when a frame arrives and giving endpoint discovery a deadline."""

    def __init__(self, *args: Any, owner: LongConnection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner
        self._discovery = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="feishu-discovery")

    async def _handle_message(self, msg: bytes) -> None:
        self._owner.saw_frame()
        await super()._handle_message(msg)

    def _get_conn_url(self) -> str:
        self._owner.discoveries += 1
        future = self._discovery.submit(super()._get_conn_url)
        try:
            url: str = future.result(timeout=DISCOVERY_TIMEOUT)
        except concurrent.futures.TimeoutError:
            # The request thread may stay stuck; this one moves on and the SDK retries.
            raise ServerException(504, "endpoint discovery timed out") from None
        self._owner.saw_frame()  # a fresh connection starts a fresh liveness period
        return url


class LongConnection:
    """Receives events over Feishu's long connection until stopped, reconnecting when it goes quiet."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        dispatcher: lark.EventDispatcherHandler,
        domain: str,
        stall_seconds: float = 360.0,
        check_every: float | None = None,
    ) -> None:
        self.app_id, self._secret, self.dispatcher, self.domain = app_id, app_secret, dispatcher, domain
        self.stall_seconds = stall_seconds
        self.check_every = check_every or max(min(stall_seconds / 4, 30.0), 0.1)
        self.discoveries = 0  # endpoint discoveries (connections and reconnections), for tests and logs
        self.forced_reconnects = 0
        self._last_frame = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._client: _WatchedClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: threading.Thread | None = None
        self._watchdog = threading.Thread(target=self._watch, name="feishu-watchdog", daemon=True)

    def saw_frame(self) -> None:
        self._last_frame = time.monotonic()

    @property
    def quiet_for(self) -> float:
        return time.monotonic() - self._last_frame

    def start(self) -> LongConnection:
        self._start_runner()
        self._watchdog.start()
        return self

    def _start_runner(self) -> None:
        self.saw_frame()
        self._runner = threading.Thread(target=self._run, name="feishu-longconn", daemon=True)
        self._runner.start()

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            # The SDK's methods use the module's `loop` global; each client gets its own.
            ws_client.loop = loop
            client = _WatchedClient(
                self.app_id, self._secret, lark.LogLevel.WARNING, self.dispatcher, self.domain, owner=self
            )
            with self._lock:
                self._client, self._loop = client, loop
            try:
                client.start()  # returns only when the loop is stopped, or raises
            except Exception as exc:
                if not self._stop.is_set():
                    log.error("Feishu long connection failed: %s; retrying in %.0f s", exc, backoff)
            finally:
                _close_loop(loop)
                client._discovery.shutdown(wait=False, cancel_futures=True)
            if self._runner is not threading.current_thread():
                return  # the watchdog replaced this thread
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)

    def _watch(self) -> None:
        while not self._stop.wait(self.check_every):
            with self._lock:
                client, loop = self._client, self._loop
            if client is None or loop is None:
                continue
            ping = float(getattr(client, "_ping_interval", 120) or 120)
            limit = max(self.stall_seconds, 1.5 * ping)  # a pong is due every ping interval
            if self.quiet_for < limit:
                continue
            self.forced_reconnects += 1
            log.warning("Feishu long connection silent for %.0f s: reconnecting", self.quiet_for)
            self.saw_frame()
            try:
                # Closing the socket makes the SDK's receive loop reconnect (auto_reconnect).
                asyncio.run_coroutine_threadsafe(client._disconnect(), loop).result(timeout=15)
            except Exception:
                log.error("Feishu long connection did not respond: starting a new client")
                self._start_runner()  # the old thread is a daemon and is left behind

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            client, loop = self._client, self._loop
        if client is not None and loop is not None and not loop.is_closed():
            client._auto_reconnect = False

            async def shutdown() -> None:
                await client._disconnect()
                asyncio.get_running_loop().stop()

            coro = shutdown()
            try:
                asyncio.run_coroutine_threadsafe(coro, loop)
            except RuntimeError:  # the loop closed meanwhile
                coro.close()
        if self._runner is not None:
            self._runner.join(timeout)
        if self._watchdog.is_alive():
            self._watchdog.join(timeout)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the SDK left running on the loop, let it finish, and close the loop."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception:
        log.debug("while closing the long-connection loop", exc_info=True)
    finally:
        loop.close()
