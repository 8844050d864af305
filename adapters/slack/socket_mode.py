"""Socket Mode for the synchronous bolt App: slack_sdk's asyncio Socket Mode client runs on one
event-loop thread of its own, and every envelope is dispatched into the App on a worker thread."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

log = logging.getLogger("stagebot.slack.socket_mode")

# Why not bolt's SocketModeHandler (slack_sdk's built-in client): on disconnect/refresh_requested it
# opens the new connection, then closes the old one on its single message-processing thread, under
# a receive lock the old reader holds for up to 3 s; envelopes on the new connection wait behind it
# and miss Slack's 3 s acknowledgement deadline. The asyncio `websockets` client opens the new
# connection first and retires the old one as tasks, so reading and acknowledging never stop. What
# it cannot do: read what Slack writes on the old connection in the round trip after the switch.


class SocketMode:
    """One Socket Mode link from Slack to `app`. `connect()` returns once the first connection is
    open (or raises, e.g. SlackApiError for a refused token); `close()` first answers the envelopes
    already taken (for up to half its timeout), then closes the connection."""

    def __init__(
        self,
        app: App,
        app_token: str,
        *,
        api_url: str | None = None,
        workers: int = 8,
        ping_interval: float = 10,
    ) -> None:
        self.app = app
        self.app_token = app_token
        self.api_url = api_url  # where apps.connections.open is called; None: Slack's
        self.ping_interval = ping_interval
        # Envelopes are dispatched here, never on the event loop: bolt's App blocks (it waits up to 3 s for ack()).
        self._workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-socket")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slack-socket-loop", daemon=True)
        self._client: Any = None
        self._closed = False
        self._closing = threading.Event()
        self._in_flight: set[asyncio.Task[Any]] = set()  # envelopes taken and not yet acknowledged (loop only)

    def connect(self, timeout: float = 30) -> None:
        self._thread.start()
        try:
            self._client = self._run(self._make_client(), timeout)
            self._run(self._client.connect(), timeout)
        except BaseException:
            self.close()
            raise

    def close(self, timeout: float = 10) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._client is not None:
            try:
                self._run(self._close_client(grace=timeout / 2), timeout)
            except Exception:
                log.exception("error while closing the Socket Mode client")
        self._workers.shutdown(wait=True, cancel_futures=False)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    # -- on the event loop --------------------------------------------------------------------------

    async def _make_client(self) -> Any:
        # Built on the loop: the client starts its message-processing task in __init__.
        from slack_sdk.socket_mode.websockets import SocketModeClient
        from slack_sdk.web.async_client import AsyncWebClient

        web = AsyncWebClient(base_url=self.api_url) if self.api_url else AsyncWebClient()
        client = SocketModeClient(
            app_token=self.app_token,
            web_client=web,
            ping_interval=self.ping_interval,
            logger=_ClientLog(self.app.logger, self._closing),  # type: ignore[arg-type]  # it only logs through it
        )
        client.socket_mode_request_listeners.append(self._on_request)
        return client

    async def _close_client(self, grace: float) -> None:
        # The envelopes already taken are answered first: closing the connection under them would
        # leave commands that were applied unacknowledged, and the user would be told they failed.
        deadline = self._loop.time() + grace
        while self._in_flight and (left := deadline - self._loop.time()) > 0:
            await asyncio.wait(set(self._in_flight), timeout=left)
        await self._client.close()

    async def _on_request(self, client: Any, req: SocketModeRequest) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            response = await self._loop.run_in_executor(self._workers, self._dispatch, req)
            if response is not None:
                await client.send_socket_mode_response(response)
        finally:
            self._in_flight.discard(task)

    # -- on a worker thread -----------------------------------------------------------------------

    def _dispatch(self, req: SocketModeRequest) -> SocketModeResponse | None:
        """The envelope through the App; its ack (None when bolt answered an error: Slack then
        tells the user it failed, as over HTTP)."""
        headers: dict[str, str | list[str]] = {}
        if req.retry_attempt is not None:  # as HTTP mode's headers, so retries are recognised
            headers["x-slack-retry-num"] = str(req.retry_attempt)
        if req.retry_reason is not None:
            headers["x-slack-retry-reason"] = req.retry_reason
        resp: BoltResponse = self.app.dispatch(
            BoltRequest(mode="socket_mode", body=req.payload, headers=headers or None)  # type: ignore[arg-type]
        )
        if resp.status != 200:
            log.info("Socket Mode envelope %s answered %s: %s", req.envelope_id, resp.status, resp.body)
            return None
        if not resp.body:
            return SocketModeResponse(envelope_id=req.envelope_id)
        content_type = resp.headers.get("content-type", [""])[0]
        if content_type.startswith("application/json"):
            return SocketModeResponse(envelope_id=req.envelope_id, payload=json.loads(resp.body))
        return SocketModeResponse(envelope_id=req.envelope_id, payload={"text": resp.body})

    def _run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


class _ClientLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The client's log. It reports as an ERROR the read that our own close() interrupts, before it
    cancels the reader; while closing, that one is only DEBUG."""

    def __init__(self, logger: logging.Logger, closing: threading.Event) -> None:
        super().__init__(logger, {})
        self.closing = closing

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.closing.is_set() and str(msg).startswith("Failed to receive or enqueue a message"):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)
