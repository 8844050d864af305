"""A fake Slack Socket Mode server for tests: ``apps.connections.open`` over HTTP, then the WebSocket.

It serves on 127.0.0.1 (free ports) and behaves like Slack's side of Socket Mode::

    with FakeSocketMode() as fake:
        client = WebClient(base_url=fake.base_url)        # apps.connections.open goes here
        ... a Socket Mode client connects with APP_TOKEN ...
        [conn] = fake.wait_for_connections(1)
        envelope = fake.send_command("help", user="U0ALICE", response_url=...)
        ack = fake.wait_for_ack(envelope)                 # Ack(envelope_id, payload, connection, at)
        fake.send_disconnect("refresh_requested")         # the old connection stays open
        fake.wait_for_connections(2)

* ``POST /api/apps.connections.open`` needs the app-level token (``Authorization: Bearer xapp-...``):
  none -> ``not_authed``, a bot token -> ``not_allowed_token_type``, another app token -> ``invalid_auth``.
  It hands out ``ws://127.0.0.1:PORT/link/?ticket=...&app_id=...``; each ticket opens one connection
  (a reused or unknown ticket is refused with HTTP 401 during the handshake).
* On each connection the fake sends ``hello``, then whatever the test pushes: envelopes
  (``slash_commands``, ``interactive``, ``events_api``, in Slack's shapes), ``disconnect`` messages
  (``refresh_requested``, ``warning``, ``link_disabled``). Slack keeps a connection open after a
  ``disconnect`` until the client closes it or about 10 s pass; so does the fake (``close_after``).
* Every text frame the client sends is recorded: an ``{"envelope_id": ...}`` as an `Ack` with its
  arrival time (``time.monotonic()``) and the connection it came on; anything else in ``received``.
  Slack's SDKs send an ack on whichever connection is current, so an ack is accepted on any connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.slack_requests import block_action, event_callback, slash_command

__all__ = ["APP_ID", "APP_TOKEN", "Ack", "Envelope", "FakeSocketMode", "SocketConnection"]

APP_TOKEN = "xapp-1-A0APP-1-fake"
APP_ID = "A0APP"
_HOST = "applink-fake-1"
T = TypeVar("T")
_Frame = tuple["SocketConnection", str, Callable[[], None]]  # a connection, the text, what to record as it goes


@dataclass
class Envelope:
    """One envelope the fake pushed to the app."""

    envelope_id: str
    type: str  # "slash_commands" | "interactive" | "events_api"
    payload: dict[str, Any]
    connection: int  # SocketConnection.id it was sent on
    sent_at: float  # time.monotonic() just before the frame was written


@dataclass
class Ack:
    """An ``{"envelope_id": ..., "payload": ...}`` frame the app sent back."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int
    at: float  # time.monotonic() when it arrived


@dataclass
class SocketConnection:
    """One WebSocket connection from the app."""

    id: int  # 1, 2, ... in the order they were opened
    ticket: str
    opened_at: float
    closed_at: float | None = None
    closed_by: str | None = None  # "client" or "server"
    close_code: int | None = None
    disconnects_sent: list[str] = field(default_factory=list)  # reasons, in order
    received: list[Any] = field(default_factory=list)  # non-ack frames (parsed JSON, else the text)
    ws: ServerConnection | None = field(default=None, repr=False)

    @property
    def open(self) -> bool:
        return self.closed_at is None


class FakeSocketMode:
    """Slack's Socket Mode endpoints, on 127.0.0.1. Use as a context manager, or call `close()`."""

    def __init__(self, *, app_token: str = APP_TOKEN, app_id: str = APP_ID, close_after: float | None = 10.0) -> None:
        self.app_token = app_token
        self.app_id = app_id
        self.close_after = close_after  # seconds a connection stays open after a disconnect message
        self.opens = 0  # successful apps.connections.open calls
        self._cond = threading.Condition()
        self._tickets: set[str] = set()
        self._connections: list[SocketConnection] = []
        self._envelopes: dict[str, Envelope] = {}
        self._acks: list[Ack] = []
        self._closing = False
        self._local = threading.local()  # the frames of a burst() in progress, per thread

        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="fake-socket-mode", daemon=True)
        self._loop_thread.start()
        self._server: Server = self._call(self._start_ws())
        self.ws_port: int = self._server.sockets[0].getsockname()[1]

        fake = self

        class Handler(_OpenHandler):
            owner = fake

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="fake-apps-connections", daemon=True
        )
        self._http_thread.start()
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/api/"

    # -- what the tests read ------------------------------------------------------------------

    @property
    def connections(self) -> list[SocketConnection]:
        with self._cond:
            return list(self._connections)

    @property
    def acks(self) -> list[Ack]:
        with self._cond:
            return list(self._acks)

    @property
    def envelopes(self) -> list[Envelope]:
        with self._cond:
            return list(self._envelopes.values())

    def open_connections(self) -> list[SocketConnection]:
        return [c for c in self.connections if c.open]

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> list[SocketConnection]:
        """Waits until `count` connections have been opened (open or not since); returns all of them."""
        return self._wait(
            lambda: list(self._connections) if len(self._connections) >= count else None,
            timeout,
            lambda: f"{count} connection(s); have {len(self._connections)}",
        )

    def wait_until_closed(self, connection: SocketConnection, timeout: float = 10.0) -> SocketConnection:
        return self._wait(
            lambda: connection if not connection.open else None, timeout, lambda: f"connection {connection.id} to close"
        )

    def wait_for_ack(self, envelope: Envelope | str, timeout: float = 10.0) -> Ack:
        envelope_id = envelope if isinstance(envelope, str) else envelope.envelope_id

        def found() -> Ack | None:
            return next((a for a in self._acks if a.envelope_id == envelope_id), None)

        return self._wait(found, timeout, lambda: f"an ack of {envelope_id}")

    def acks_of(self, envelope: Envelope) -> list[Ack]:
        return [a for a in self.acks if a.envelope_id == envelope.envelope_id]

    def latency(self, envelope: Envelope) -> float:
        """Seconds from sending the envelope to its first ack (raises if it was never acknowledged)."""
        ack = next(a for a in self.acks if a.envelope_id == envelope.envelope_id)
        return ack.at - envelope.sent_at

    # -- what the tests do ----------------------------------------------------------------------

    def send(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        connection: SocketConnection | None = None,
        accepts_response_payload: bool = False,
        **extra: Any,
    ) -> Envelope:
        """Pushes one envelope on `connection` (default: the newest open one)."""
        conn = connection or self._newest_open()
        envelope_id = str(uuid.uuid4())
        frame = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
            **extra,
        }

        envelope = Envelope(envelope_id, type, payload, conn.id, sent_at=float("nan"))

        def record() -> None:
            with self._cond:
                envelope.sent_at = time.monotonic()
                self._envelopes[envelope_id] = envelope

        self._push(conn, json.dumps(frame), before=record)
        return envelope

    @contextmanager
    def burst(self) -> Iterator[None]:
        """Frames pushed inside the block are written back to back when it ends, with nothing in
        between: e.g. a ``disconnect`` and the envelopes Slack had already put on that connection."""
        if self._local.__dict__.get("burst") is not None:
            raise RuntimeError("bursts do not nest")
        frames: list[_Frame] = []
        self._local.burst = frames
        try:
            yield
        finally:
            self._local.burst = None
        self._call(self._send_all(frames))

    def send_command(
        self,
        text: str,
        *,
        user: str,
        response_url: str,
        command: str = "/stage",
        channel: str = "C0ANY",
        connection: SocketConnection | None = None,
    ) -> Envelope:
        """A ``slash_commands`` envelope; its payload is the form Slack would POST, as a dict of strings."""
        form = slash_command(text, user=user, response_url=response_url, command=command, channel=channel)
        payload = dict(parse_qsl(form, keep_blank_values=True))
        return self.send("slash_commands", payload, connection=connection, accepts_response_payload=True)

    def send_action(
        self, *, user: str, action_id: str, value: str, response_url: str, connection: SocketConnection | None = None
    ) -> Envelope:
        """An ``interactive`` envelope carrying a ``block_actions`` payload (a button press)."""
        form = block_action(user=user, action_id=action_id, value=value, response_url=response_url)
        payload = json.loads(parse_qs(form)["payload"][0])
        return self.send("interactive", payload, connection=connection)

    def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, connection: SocketConnection | None = None
    ) -> Envelope:
        """An ``events_api`` envelope carrying an ``event_callback``."""
        payload = json.loads(event_callback(event, event_id=event_id))
        return self.send("events_api", payload, connection=connection, retry_attempt=0, retry_reason="")

    def send_disconnect(
        self,
        reason: str = "refresh_requested",
        *,
        connection: SocketConnection | None = None,
        close_after: float | None = None,
    ) -> SocketConnection:
        """Sends ``{"type": "disconnect", "reason": ...}`` and leaves the connection open, as Slack does;
        the fake closes it itself `close_after` seconds later (default: the fake's `close_after`; if that
        is None, never) unless the client closes it first."""
        conn = connection or self._newest_open()
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": _HOST}}

        def record() -> None:
            with self._cond:
                conn.disconnects_sent.append(reason)

        self._push(conn, json.dumps(frame), before=record)
        delay = self.close_after if close_after is None else close_after
        if delay is not None:
            self._loop.call_soon_threadsafe(self._loop.call_later, delay, self._close_soon, conn, 1001, "")
        return conn

    def close_connection(self, connection: SocketConnection, code: int = 1001, reason: str = "") -> None:
        """Closes a connection from Slack's side (a close frame with `code`)."""
        self._call(self._close(connection, code, reason))

    def close(self) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
        self._http.shutdown()
        self._http.server_close()
        try:
            self._call(self._stop_ws(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> FakeSocketMode:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FakeSocketMode({self.base_url}, {len(self.connections)} connection(s), {len(self.acks)} ack(s))"

    # -- apps.connections.open --------------------------------------------------------------------

    def _open(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {"ok": False, "error": "not_authed"}
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        ticket = uuid.uuid4().hex
        with self._cond:
            self._tickets.add(ticket)
            self.opens += 1
        return {"ok": True, "url": f"ws://127.0.0.1:{self.ws_port}/link/?ticket={ticket}&app_id={self.app_id}"}

    # -- the WebSocket side (runs on the fake's event loop) ---------------------------------------

    async def _start_ws(self) -> Server:
        return await serve(
            self._serve,
            "127.0.0.1",
            0,
            process_request=self._check_ticket,
            compression=None,
            ping_interval=None,  # the clients ping; the fake answers (websockets does that by itself)
            close_timeout=1,
        )

    async def _stop_ws(self) -> None:
        self._server.close(close_connections=True)
        await self._server.wait_closed()

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        split = urlsplit(request.path)
        ticket = parse_qs(split.query).get("ticket", [""])[0]
        with self._cond:
            if split.path.rstrip("/") == "/link" and ticket in self._tickets:
                self._tickets.discard(ticket)
                return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or used ticket\n")

    async def _serve(self, ws: ServerConnection) -> None:
        ticket = parse_qs(urlsplit(ws.request.path if ws.request else "").query).get("ticket", [""])[0]
        with self._cond:
            conn = SocketConnection(len(self._connections) + 1, ticket, time.monotonic(), ws=ws)
            self._connections.append(conn)
            num = sum(1 for c in self._connections if c.open)
            self._cond.notify_all()
        hello = {
            "type": "hello",
            "num_connections": num,
            "debug_info": {"host": _HOST, "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        try:
            await ws.send(json.dumps(hello))
            async for frame in ws:
                self._receive(conn, frame)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                if conn.closed_at is None:
                    conn.closed_at = time.monotonic()
                    conn.closed_by = conn.closed_by or "client"
                conn.close_code = ws.close_code
                self._cond.notify_all()

    def _receive(self, conn: SocketConnection, frame: str | bytes) -> None:
        at = time.monotonic()
        text = frame.decode() if isinstance(frame, bytes) else frame
        try:
            message: Any = json.loads(text)
        except ValueError:
            message = text
        with self._cond:
            if isinstance(message, dict) and "envelope_id" in message:
                payload = message.get("payload")
                self._acks.append(
                    Ack(message["envelope_id"], payload if isinstance(payload, dict) else None, conn.id, at)
                )
            else:
                conn.received.append(message)
            self._cond.notify_all()

    def _push(self, conn: SocketConnection, text: str, before: Callable[[], None]) -> None:
        frames: list[_Frame] | None = self._local.__dict__.get("burst")
        if frames is not None:
            frames.append((conn, text, before))
        else:
            self._call(self._send_all([(conn, text, before)]))

    async def _send_all(self, frames: list[_Frame]) -> None:
        for conn, text, before in frames:
            if conn.ws is None or not conn.open:
                raise ConnectionError(f"connection {conn.id} is closed")
            before()
            await conn.ws.send(text)

    async def _close(self, conn: SocketConnection, code: int, reason: str) -> None:
        if conn.ws is None or not conn.open:
            return
        with self._cond:
            conn.closed_by = "server"
        await conn.ws.close(code, reason)

    def _close_soon(self, conn: SocketConnection, code: int, reason: str) -> None:
        if conn.open:
            self._loop.create_task(self._close(conn, code, reason))

    # -- helpers ----------------------------------------------------------------------------------

    def _newest_open(self) -> SocketConnection:
        opened = self.open_connections()
        if not opened:
            raise ConnectionError("no open connection")
        return opened[-1]

    def _call(self, coro: Any, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _wait(self, found: Callable[[], T | None], timeout: float, what: Callable[[], str]) -> T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = found()
                if result is not None:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout}s waiting for {what()}")
                self._cond.wait(left)


class _OpenHandler(BaseHTTPRequestHandler):
    """``POST /api/apps.connections.open``; everything else is 404."""

    owner: FakeSocketMode
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if urlsplit(self.path).path.rstrip("/") != "/api/apps.connections.open":
            self._reply(404, {"ok": False, "error": "unknown_method"})
            return
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        self._reply(200, self.owner._open(token))

    do_GET = do_POST

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
