"""A fake Slack Web API server for tests (stdlib only).

It serves on 127.0.0.1 (a free port), answers like Slack does, and records every call so tests can
assert on what the bot sent::

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.base_url)
        client.chat_postMessage(channel="C1", text="hi")
        [call] = fake.wait_for("chat.postMessage")
        assert call.body["channel"] == "C1"

Paths served:

* ``/api/<method>``: a Web API method (``WebClient(base_url=fake.base_url)``). Bodies may be JSON,
  form-encoded or multipart; query-string arguments are merged in (the body wins). GET works too.
* ``/response/<name>`` (and Slack-shaped ``/commands/...``, ``/actions/...``): a ``response_url``;
  recorded as method ``"response_url"`` and answered ``200 ok`` (text), as Slack does.

Blocks are checked as strictly as Slack checks them (the rule book is `tests.fakes.block_kit`):

* ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``, ``chat.scheduleMessage``: HTTP 200
  ``{"ok": false, "error": "invalid_blocks", "errors": ["<message> [json-pointer:/blocks/N/...]", ...],
  "response_metadata": {"messages": ["[ERROR] <message> [json-pointer:...]", ...]}}`` (the shape reported in
  slackapi/java-slack-sdk#1017, metabase/metabase#74943); ``blocks`` that are not a JSON array answer
  ``invalid_blocks_format`` (slackapi/node-slack-sdk#1027).
* ``views.publish`` / ``open`` / ``update`` / ``push``: HTTP 200 ``{"ok": false, "error": "invalid_arguments",
  "response_metadata": {"messages": ["[ERROR] ... [json-pointer:/view/blocks/N/...]"]}}`` (public reports of
  views.publish and views.open refusals carry only response_metadata); a view over 250 kB as slack_sdk
  encodes it answers ``view_too_large`` (the views.publish reference).
* a ``response_url``: HTTP 400 with the plain-text body ``invalid_blocks`` and no detail, as Slack's
  hooks.slack.com answers (the SDK maintainer in slackapi/java-slack-sdk#1017; sourcegraph#49979).
* A top-level ``text`` of any length is accepted (Slack truncates it beyond 40,000 characters).
* ``/upload/<file_id>``: the ``upload_url`` handed out by ``files.getUploadURLExternal``; recorded as
  method ``"file_upload"`` with ``body == {"file_id": ..., "content": <bytes>}``. slack_sdk POSTs the file's bytes
  as the raw body; a multipart body (other clients) is accepted too, its file part is what gets stored. An unknown
  file id answers 404 ``file_not_found`` (plain text, like the other non-API paths).

File uploads (``files_upload_v2``): ``files.getUploadURLExternal`` (needs ``filename`` and an integer ``length``,
else ``invalid_arguments``) hands out ``file_id`` + ``upload_url``; the bytes go to ``/upload/<file_id>``;
``files.completeUploadExternal`` answers ``file_not_found`` for an id it never issued or whose bytes never
arrived, obeys `fail_channel` for ``channel_id`` / ``channels``, and adds one `SlackUpload` per file to
`FakeSlack.uploads`.

Anything else is recorded under its path and answered 404.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import mimetypes
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.block_kit import VIEW_BYTES, message_errors, view_errors, view_size

__all__ = ["FakeSlack", "SlackCall", "SlackUpload"]

BOT_ID = "B0BOT"
_TS_BASE = 1_700_000_000
# method -> the body fields naming its channel(s) (comma-separated values are split), checked against fail_channel
_CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("channel",),
    "chat.update": ("channel",),
    "files.completeUploadExternal": ("channel_id", "channels"),
}
_RESPONSE_URL_PREFIXES = ("/response/", "/commands/", "/actions/")
_MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage"})
_VIEW_METHODS = frozenset({"views.publish", "views.open", "views.update", "views.push"})


@dataclass
class SlackCall:
    """One HTTP request the fake received."""

    method: str  # "chat.postMessage"; "response_url" / "file_upload" for those paths; else the raw path
    path: str
    token: str | None  # from "Authorization: Bearer ..." (or a "token" body field, as Slack allows)
    body: dict[str, Any]  # parsed JSON / form (form values as str, JSON-looking strings left as str)
    headers: dict[str, str]  # header names lower-cased
    at: float  # time.monotonic() when the request arrived
    answered: int = 200  # HTTP status the fake sent back
    response: Any = None  # what the fake answered: a dict for JSON answers, else the text
    http_method: str = "POST"
    raw: bytes = field(default=b"", repr=False)

    def summary(self) -> str:
        keys = ("channel", "channel_id", "filename", "user_id", "users", "ts", "text", "response_type")
        bits = [f"{k}={self.body[k]!r}"[:80] for k in keys if k in self.body]
        error = ""
        if isinstance(self.response, dict) and self.response.get("ok") is False:
            error = f" error={self.response.get('error')!r}"
        return f"{self.method} -> {self.answered}{error} {' '.join(bits)}".rstrip()


@dataclass
class SlackUpload:
    """One file shared by ``files.completeUploadExternal`` (its bytes came through the ``upload_url``)."""

    file_id: str  # "F..."
    filename: str  # as declared to files.getUploadURLExternal
    title: str | None  # from completeUploadExternal's `files` entry (slack_sdk defaults it to the filename)
    channel: str | None  # `channel_id` (or the first of `channels`); None for a file completed without a channel
    initial_comment: str | None
    thread_ts: str | None
    data: bytes = field(repr=False)  # exactly the bytes the upload_url received
    length: int | None = None  # as declared to files.getUploadURLExternal (None if not an integer)
    channels: list[str] = field(default_factory=list)  # every channel it was shared to


@dataclass
class _PendingFile:
    file_id: str
    filename: str
    length: int | None
    data: bytes | None = None  # None until the upload_url received the bytes


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: int | None
    remaining: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128  # the default (5) drops SYNs under concurrent clients -> 1 s retransmit stalls
    fake: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts, retries) is not our problem; anything else is a bug here.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # an idle or stalled client cannot hold a handler thread forever
    server_version = "FakeSlack/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        at = time.monotonic()
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, extra_headers, payload, call = self.server.fake._dispatch(
                http_method=self.command, target=self.path, headers=headers, raw=raw, at=at
            )
        except Exception as exc:  # a bug in the fake: answer (and record) loudly instead of hanging the client
            status, extra_headers = 500, {}
            payload = {"ok": False, "error": f"fake_slack_internal_error: {exc!r}"}
            call = SlackCall(
                method="fake_slack_internal_error",
                path=self.path,
                token=None,
                body={},
                headers=headers,
                at=at,
                answered=status,
                response=payload,
                http_method=self.command,
                raw=raw,
            )
        # Record before answering: once a client has its response, the call must be visible to the test.
        self.server.fake._record(call)
        if isinstance(payload, dict):
            data = json.dumps(payload).encode("utf-8")
            content_type = "application/json; charset=utf-8"
        else:
            data = str(payload).encode("utf-8")
            content_type = "text/html"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    out: dict[str, Any] = {}
    if not message.is_multipart():
        return out
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        content = part.get_payload(decode=True)
        if not isinstance(content, bytes):
            content = b""
        if part.get_filename() is not None:
            out[str(name)] = content
        else:
            out[str(name)] = content.decode(part.get_content_charset() or "utf-8", "replace")
    return out


def _parse_body(headers: dict[str, str], raw: bytes) -> tuple[dict[str, Any], str | None]:
    """Returns (body, error); error is Slack's error code when the body cannot be parsed."""
    content_type = headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if not raw:
        return {}, None
    if media == "multipart/form-data":
        return _parse_multipart(content_type, raw), None
    text = raw.decode("utf-8", "replace")
    looks_json = text.lstrip().startswith(("{", "["))
    if media == "application/json" or (not media and looks_json):
        try:
            parsed = json.loads(text)
        except ValueError:
            return {}, "invalid_json"
        return (parsed if isinstance(parsed, dict) else {"_json": parsed}), None
    return dict(parse_qsl(text, keep_blank_values=True)), None


def _token_from(headers: dict[str, str], body: dict[str, Any]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    from_body = body.get("token")
    return from_body if isinstance(from_body, str) and from_body else None


class FakeSlack:
    """A recording fake of Slack's Web API and response_urls. Starts serving on construction."""

    def __init__(self, *, bot_user_id: str = "UBOT", team_id: str = "T0TEAM") -> None:
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[SlackCall] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._failing_channels: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._dm_ids: dict[str, str] = {}
        self._files: dict[str, _PendingFile] = {}
        self._uploads: list[SlackUpload] = []
        self._closed = False

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/api/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"FakeSlack:{port}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    @property
    def uploads(self) -> list[SlackUpload]:
        """Files shared by files.completeUploadExternal, in order (one per file, per completion)."""
        with self._lock:
            return list(self._uploads)

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Blocks until at least `count` calls to `method` were recorded; returns all of them (in order)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [c for c in self._calls if c.method == method]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    received = list(self._calls)
                    break
                self._changed.wait(min(remaining, 0.05))
        lines = [f"  [{i}] {c.summary()}" for i, c in enumerate(received[-30:], start=max(0, len(received) - 30))]
        raise AssertionError(
            f"FakeSlack: expected >= {count} call(s) to {method!r} within {timeout}s, got {len(matching)}. "
            f"Received {len(received)} call(s) in total" + (":\n" + "\n".join(lines) if lines else " (none).")
        )

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` get HTTP `status` + {"ok": false, "error": error}."""
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(status, error, retry_after, times))

    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Every chat.postMessage / chat.update / files.completeUploadExternal to `channel` answers 200
        {"ok": false, "error": error} (the upload's file stays pending: a retry to another channel can complete it)."""
        with self._lock:
            self._failing_channels[channel] = error

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()
            self._failing_channels.clear()

    def reset(self) -> None:
        """Forgets recorded calls, uploads and all scripted failures (ts / ids go on; issued file ids stay valid)."""
        with self._lock:
            self._calls.clear()
            self._uploads.clear()
            self._failures.clear()
            self._failing_channels.clear()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeSlack {self.url} calls={len(self.calls)}>"

    # ------------------------------------------------------------------ internals

    def _record(self, call: SlackCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _next_ts(self) -> str:
        micros = self._next_id() * 100
        return f"{_TS_BASE + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            queue = self._failures.get(method)
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            return failure

    def _channel_error(self, method: str, body: dict[str, Any]) -> str | None:
        with self._lock:
            for key in _CHANNEL_FIELDS.get(method, ()):
                for channel in _channel_list(body.get(key)):
                    if channel in self._failing_channels:
                        return self._failing_channels[channel]
        return None

    def _dispatch(
        self, *, http_method: str, target: str, headers: dict[str, str], raw: bytes, at: float
    ) -> tuple[int, dict[str, str], Any, SlackCall]:
        split = urlsplit(target)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))

        if path.startswith("/api/") and len(path) > len("/api/"):
            method = path[len("/api/") :].strip("/")
            kind = "api"
        elif path.startswith(_RESPONSE_URL_PREFIXES):
            method, kind = "response_url", "response_url"
        elif path.startswith("/upload/"):
            method, kind = "file_upload", "upload"
        else:
            method, kind = path, "unknown"

        parse_error: str | None = None
        if kind == "upload":
            body: dict[str, Any] = {"file_id": path[len("/upload/") :], "content": raw}
        else:
            body, parse_error = _parse_body(headers, raw)
            for key, value in query.items():
                body.setdefault(key, value)
        token = _token_from(headers, body)
        call = SlackCall(
            method=method, path=path, token=token, body=body, headers=headers, at=at, http_method=http_method, raw=raw
        )

        status, extra, payload = self._answer(kind, method, call, parse_error)
        call.answered, call.response = status, payload
        return status, extra, payload, call

    def _answer(
        self, kind: str, method: str, call: SlackCall, parse_error: str | None
    ) -> tuple[int, dict[str, str], Any]:
        if kind == "unknown":
            return 404, {}, {"ok": False, "error": "unknown_path"}
        if kind == "api" and not call.token:
            return 200, {}, {"ok": False, "error": "not_authed"}

        failure = self._take_failure(method)
        if failure is not None:
            extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            if kind == "api":
                return failure.status, extra, {"ok": False, "error": failure.error}
            return failure.status, extra, failure.error  # response_url / upload errors are plain text

        if kind == "response_url":
            if _block_problems(method, call.body):
                return 400, {}, "invalid_blocks"
            return 200, {}, "ok"
        if kind == "upload":
            return self._receive_upload(call)
        if parse_error is not None:
            return 200, {}, {"ok": False, "error": parse_error}
        refusal = _block_problems(method, call.body)
        if refusal is not None:
            return 200, {}, refusal

        error = self._channel_error(method, call.body)
        if error is not None:
            return 200, {}, {"ok": False, "error": error}
        return 200, {}, self._ok_payload(method, call.body)

    def _receive_upload(self, call: SlackCall) -> tuple[int, dict[str, str], Any]:
        """The upload_url: stores the bytes (the raw body, or a multipart body's file part) for the file id."""
        if call.http_method != "POST":
            return 405, {}, "method_not_allowed"
        data = call.raw
        media = call.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "multipart/form-data":
            parts = _parse_multipart(call.headers["content-type"], call.raw)
            file_part = parts.get("file")
            if not isinstance(file_part, bytes):
                file_part = next((v for v in parts.values() if isinstance(v, bytes)), None)
            if file_part is None:
                return 400, {}, "no_file_data"
            data = file_part
        call.body["content"] = data
        with self._lock:
            pending = self._files.get(call.body["file_id"])
            if pending is None:
                return 404, {}, "file_not_found"
            pending.data = data
        return 200, {}, f"OK - {len(data)}"

    def _get_upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        filename, length = body.get("filename"), body.get("length")
        if not isinstance(filename, str) or not filename:
            return {"ok": False, "error": "invalid_arguments"}
        try:
            declared = int(length) if isinstance(length, int | str) else None
        except ValueError:
            declared = None
        if declared is None or declared < 0:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{self._next_id():08d}"
        with self._lock:
            self._files[file_id] = _PendingFile(file_id=file_id, filename=filename, length=declared)
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        raw_files = body.get("files")
        try:
            files = json.loads(raw_files) if isinstance(raw_files, str) else raw_files
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            return {"ok": False, "error": "invalid_arguments"}
        channels = _channel_list(body.get("channel_id")) + _channel_list(body.get("channels"))
        comment, thread_ts = body.get("initial_comment"), body.get("thread_ts")
        with self._lock:
            pending = [self._files.get(str(f.get("id"))) for f in files]
            ready = [p for p in pending if p is not None and p.data is not None]
            if len(ready) != len(files):  # an id never issued, or whose bytes never reached the upload_url
                return {"ok": False, "error": "file_not_found"}
            out: list[dict[str, Any]] = []
            for entry, file in zip(files, ready, strict=True):
                assert file.data is not None
                title = entry.get("title") if isinstance(entry.get("title"), str) else None
                self._uploads.append(
                    SlackUpload(
                        file_id=file.file_id,
                        filename=file.filename,
                        title=title,
                        channel=channels[0] if channels else None,
                        initial_comment=comment if isinstance(comment, str) else None,
                        thread_ts=thread_ts if isinstance(thread_ts, str) else None,
                        data=file.data,
                        length=file.length,
                        channels=list(channels),
                    )
                )
                out.append(
                    {
                        "id": file.file_id,
                        "name": file.filename,
                        "title": title if title is not None else file.filename,
                        "mimetype": mimetypes.guess_type(file.filename)[0] or "application/octet-stream",
                        "size": len(file.data),
                        "user": self.bot_user_id,
                        "channels": list(channels),
                    }
                )
        return {"ok": True, "files": out}

    def _ok_payload(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://test.slack.com/",
                "team": "Test",
                "user": "stagebot",
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            channel = body.get("channel")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            ts = self._next_ts()
            message: dict[str, Any] = {
                "type": "message",
                "user": self.bot_user_id,
                "bot_id": BOT_ID,
                "text": body.get("text", ""),
                "ts": ts,
            }
            if "thread_ts" in body:
                message["thread_ts"] = body["thread_ts"]
            if isinstance(body.get("blocks"), list):
                message["blocks"] = body["blocks"]
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            channel, updated_ts = body.get("channel"), body.get("ts")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            if not updated_ts:
                return {"ok": False, "error": "message_not_found"}
            text = body.get("text", "")
            return {
                "ok": True,
                "channel": channel,
                "ts": updated_ts,
                "text": text,
                "message": {"type": "message", "user": self.bot_user_id, "bot_id": BOT_ID, "text": text},
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "chat.delete":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        if method == "views.publish":
            view = {"id": f"V{self._next_id():08d}", "type": "home", "hash": f"h{self._next_id()}"}
            return {"ok": True, "view": view}
        if method in ("views.open", "views.update", "views.push"):
            view_id = body.get("view_id") if method == "views.update" else None
            view = {"id": view_id or f"V{self._next_id():08d}", "type": "modal", "hash": f"h{self._next_id()}"}
            return {"ok": True, "view": view}
        if method == "conversations.open":
            if body.get("channel"):
                return {"ok": True, "channel": {"id": body["channel"]}}
            users = str(body.get("users", ""))
            if not users:
                return {"ok": False, "error": "not_enough_users"}
            with self._lock:
                dm = self._dm_ids.get(users)
                if dm is None:
                    dm = self._dm_ids[users] = f"D{len(self._dm_ids) + 1:08d}"
            return {"ok": True, "channel": {"id": dm}}
        if method == "files.getUploadURLExternal":
            return self._get_upload_url(body)
        if method == "files.completeUploadExternal":
            return self._complete_upload(body)
        return {"ok": True}


def _channel_list(value: Any) -> list[str]:
    """A channel field's channels: "C1" -> ["C1"], "C1,C2" -> ["C1", "C2"], a JSON list as is, else []."""
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    if isinstance(value, list):
        return [c for c in value if isinstance(c, str) and c]
    return []


def _json_field(value: Any) -> tuple[Any, bool]:
    """A field that may arrive as a JSON string (form-encoded calls) or as JSON; (value, parsed ok)."""
    if isinstance(value, str):
        try:
            return json.loads(value), True
        except ValueError:
            return None, False
    return value, True


def _block_problems(method: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's refusal of the blocks (or view) a call carries, or None when there is nothing to refuse."""
    if method in _MESSAGE_METHODS or method == "response_url":
        if "blocks" not in body:
            return None
        blocks, ok = _json_field(body["blocks"])
        if not ok or not isinstance(blocks, list):
            return {"ok": False, "error": "invalid_blocks_format"}
        errors = message_errors(blocks)
        if not errors:
            return None
        return {
            "ok": False,
            "error": "invalid_blocks",
            "errors": errors,
            "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
        }
    if method in _VIEW_METHODS and "view" in body:
        view, ok = _json_field(body["view"])
        if ok and view_size(view) > VIEW_BYTES:
            return {"ok": False, "error": "view_too_large"}
        errors = view_errors(view) if ok else ["expected object [json-pointer:/view]"]
        if not errors:
            return None
        return {
            "ok": False,
            "error": "invalid_arguments",
            "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
        }
    return None
