"""The HTTP listener of `stagebot serve`: waitress, with the `[server]` limits applied.

What bounds a client (waitress 3.0; file:line in its package):
- connection_limit: while the open sockets (connections plus the listener and its trigger) are at
  the limit the listener is not polled, so new connections, GET /healthz included, wait in the
  kernel's backlog (server.py:264-290). Reading a slow request holds no request thread (the
  parser runs in the I/O loop), so a high limit costs file descriptors and a little memory each.
- max_request_body_size: the parser answers 413 as soon as the headers are parsed when the
  Content-Length is at or over it, before any of the body is read (parser.py:153-161), and cuts
  a chunked body once the bytes read reach it (parser.py:174-179).
- channel_timeout: an *idle* timeout; a channel is closed when its last received byte is older
  (channel.py:165 sets last_activity on every read, server.py:342-351 closes), checked at most
  every cleanup_interval seconds (server.py:266). A client sending a byte every few seconds
  resets it for ever, so the channel below adds a deadline on reading a whole request.
- asyncore_use_poll: by default the loop uses select() (wasyncore.py:145-167), which raises
  ValueError for a descriptor above 1023 and so ends server.run(); poll() has no such ceiling.
- Out of file descriptors, accept() fails on every pass of the loop (server.py:301-319): hence
  fit_open_files below.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

from bot.config import ServerSection

log = logging.getLogger("stagebot.serve")

# All request headers together (waitress's default is 256 kB). Slack and Feishu send about 1 kB;
# nginx's default allows 32 kB. What a slow client holds in memory while it trickles is this much.
MAX_HEADER_BYTES = 65_536
SPARE_FILES = 256  # descriptors besides the connections: database, logs, outgoing HTTP


class JsonErrorTask(ErrorTask):  # type: ignore[misc]  # waitress is untyped
    """waitress's own refusals (413 for a body over the limit, 400 for malformed HTTP, 431 for
    headers too large) in the app's form: a JSON {"error": ...} body, as every other 4xx has."""

    def execute(self) -> None:
        e = self.request.error
        message = "request body too large" if e.code == 413 else f"{e.reason.lower()}: {e.body}"
        body = json.dumps({"error": message}).encode()
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Channel(HTTPChannel):  # type: ignore[misc]  # waitress is untyped
    """waitress's connection, plus a deadline on reading one request: it must arrive whole within
    channel_timeout of its first byte, however steadily it trickles (waitress's own timeout only
    counts idleness). Checked on every pass of the I/O loop (at least once a second); closing is
    waitress's own `will_close`, as its idle cleanup does. Its refusals are JSON."""

    error_task_class = JsonErrorTask
    request_started: float | None = None  # monotonic time of the first byte of the request being read

    def received(self, data: bytes) -> bool:
        before = self.request
        done: bool = super().received(data)
        if self.request is None:
            self.request_started = None
        elif self.request is not before:  # a new request began in this read
            self.request_started = time.monotonic()
        return done

    def readable(self) -> bool:
        started = self.request_started
        # Only while reading: a request being answered (self.requests) is the app's time, not the client's.
        if started is not None and not self.requests and time.monotonic() - started > self.adj.channel_timeout:
            self.will_close = True
        return bool(super().readable())


def fit_open_files(connection_limit: int) -> int:
    """The connection limit the open-file limit allows, after raising the soft RLIMIT_NOFILE (1024
    under systemd) towards the hard one to make room: each connection is a socket, and one more
    file while a big body is spooled. Out of descriptors below the connection limit, waitress's
    accept() fails on every pass of its loop, logging a traceback each time and spinning a CPU,
    while new connections wait unserved; at the connection limit it just stops accepting. So a
    limit that does not fit is lowered, with a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * connection_limit + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft == resource.RLIM_INFINITY or soft >= want:
        return connection_limit
    fits = max(10, (soft - SPARE_FILES) // 2)
    log.warning(
        "the open-file limit (%s) leaves room for %s connections, not [server] connection_limit = %s; "
        "raise it (systemd: LimitNOFILE=%s) or lower connection_limit",
        soft,
        fits,
        connection_limit,
        want,
    )
    return fits


@dataclass
class Listener:
    server: Any  # waitress's TcpWSGIServer
    # waitress's socket map (passed to create_server, so ours to hold): the listener, its trigger and
    # every connection; closing them all is how a shutdown drops idle keep-alive connections.
    sockets: dict[int, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def close_all(self) -> None:
        wasyncore.close_all(self.sockets)


def listen(app: Any, cfg: ServerSection, *, threads: int, ident: str = "stagebot") -> Listener:
    """Bind cfg.host:cfg.port and return the listener, not yet serving (Listener.server.run())."""
    connection_limit = fit_open_files(cfg.connection_limit)
    sockets: dict[int, Any] = {}
    server = create_server(
        app,
        map=sockets,
        host=cfg.host,
        port=cfg.port,
        threads=threads,
        ident=ident,
        connection_limit=connection_limit,
        channel_timeout=cfg.channel_timeout,
        cleanup_interval=1,  # apply channel_timeout within a second, not waitress's 30
        # waitress refuses a Content-Length >= the limit: one more, so max_body_bytes itself is taken.
        max_request_body_size=cfg.max_body_bytes + 1,
        max_request_header_size=MAX_HEADER_BYTES,
        # poll(), not select(): select() cannot watch descriptors above 1023, and with a high
        # connection_limit the loop would die with "filedescriptor out of range in select()".
        asyncore_use_poll=True,
    )
    for each in list(sockets.values()):  # one server per listening socket (a host name may give two)
        if isinstance(each, BaseWSGIServer):
            each.channel_class = Channel
    return Listener(server, sockets)
