"""Fakes of Feishu's server side: the Open API over HTTP (`FakeFeishu`) and the long connection (`FakeLongConnection`).

Both serve on 127.0.0.1 only, each in its own daemon thread, and are driven by the *real* lark-oapi client::

    with FakeFeishu() as fake:
        client = lark.Client.builder().app_id("cli_x").app_secret("s").domain(fake.url).build()
        ...  # client.im.v1.message.create(...)
        assert fake.messages[0].content == {"text": "hi"}

    with FakeFeishu() as fake, FakeLongConnection(fake) as conn:
        ...  # lark.ws.Client(app_id, app_secret, event_handler=handler, domain=fake.url) in a thread
        conn.wait_connected()
        ack = conn.send_event(envelope)  # {"code": 200, "data": None}

Open API routes served (everything else is recorded and answered 404):

* ``POST /open-apis/auth/v3/tenant_access_token/internal`` (kind ``"token"``): issues ``t-<n>``.
* ``GET /open-apis/bot/v3/info`` (kind ``"bot_info"``): the bot's identity; needs a tenant token.
* ``POST /open-apis/im/v1/messages?receive_id_type=...`` (kind ``"create"``): idempotent on ``uuid``.
* ``POST /open-apis/im/v1/messages/{message_id}/reply`` (kind ``"reply"``): idempotent on ``uuid``.
* ``PATCH /open-apis/im/v1/messages/{message_id}`` (kind ``"patch"``): a card update.
* ``POST /open-apis/im/v1/images`` (kind ``"image"``): multipart/form-data with ``image_type`` (``message`` or
  ``avatar``) and ``image`` (the bytes); issues ``img_v3_...`` keys, recorded in `FakeFeishu.images`. A create or
  reply with ``msg_type`` ``"image"`` must carry ``{"image_key": <a key this fake issued>}``, else
  `IMAGE_KEY_INVALID`.
* ``POST /callback/ws/endpoint`` (kind ``"ws_endpoint"``): only while a `FakeLongConnection` is attached.

Every ``/open-apis/im/`` and ``/open-apis/bot/`` route needs ``Authorization: Bearer <token>`` with a token this
fake issued and has not revoked; otherwise HTTP 400 ``{"code": 99991663, ...}`` as Feishu answers.

Creates, replies and patches are judged by `tests.fakes.feishu_card_rules.check_message` (content a JSON string,
30 KB card / rich-text body, 150 KB text body, card JSON 2.0 properties, 200 elements, uuid ≤ 50 chars) and
refused with Feishu's own status and ``{"code", "msg"}`` (230001, 230025, 230099, 99992402).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import email.parser
import email.policy
import itertools
import json
import sys
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.fakes.feishu_card_rules import check_message

__all__ = [
    "BAD_GATEWAY",
    "BOT_NOT_IN_CHAT",
    "CHAT_DISBANDED",
    "CHAT_RATE",
    "IMAGE_KEY_INVALID",
    "RATE_LIMITED",
    "SERVER_ERROR",
    "TOKEN_INVALID",
    "Ack",
    "Call",
    "FakeFeishu",
    "FakeLongConnection",
    "Image",
    "Message",
    "Scripted",
    "reset_lark_token_cache",
]

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
BOT_INFO_PATH = "/open-apis/bot/v3/info"
MESSAGES_PATH = "/open-apis/im/v1/messages"
IMAGES_PATH = "/open-apis/im/v1/images"
WS_ENDPOINT_PATH = "/callback/ws/endpoint"

SCRIPTABLE_KINDS = frozenset({"create", "reply", "patch", "image", "token", "bot_info", "ws_endpoint"})
_IMAGE_TYPES = frozenset({"message", "avatar"})
_RECEIVE_ID_TYPES = frozenset({"open_id", "union_id", "user_id", "email", "chat_id"})
_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


# ---------------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: HTTP `status` with body ``{"code": code, "msg": msg}`` (or an HTML page if `html`)."""

    status: int
    code: int
    msg: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    html: bool = False


RATE_LIMITED = Scripted(
    429, 99991400, "request trigger frequency limit", {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": "1"}
)
CHAT_RATE = Scripted(400, 230020, "This chat is rate limited")
BOT_NOT_IN_CHAT = Scripted(400, 230002, "Bot/User can NOT be out of the chat.")
CHAT_DISBANDED = Scripted(400, 232009, "chat is disbanded")
SERVER_ERROR = Scripted(500, 1000, "internal error")
BAD_GATEWAY = Scripted(502, 0, html=True)
TOKEN_INVALID = Scripted(400, 99991663, "Invalid access token for authorization")
# An image message whose image_key this fake never issued. NOT verified against Feishu's documentation: 230001 is the
# message API's generic "invalid request parameter" code, and public clients match "invalid image_key" in its msg.
IMAGE_KEY_INVALID = Scripted(400, 230001, "Your request contains an invalid request parameter, ext=invalid image_key")
# The image upload's own "Invalid request param." code (seen in real answers to POST /open-apis/im/v1/images).
_IMAGE_PARAM_INVALID = Scripted(400, 234001, "Invalid request param.")


@dataclass
class Call:
    """One HTTP request the fake received, with what it answered."""

    method: str  # HTTP method
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    json: Any  # the decoded JSON body (None if empty or not JSON)
    status: int = 0  # HTTP status answered
    code: int = 0  # Feishu "code" answered (0 for the HTML page)
    kind: str = ""  # "token", "bot_info", "create", "reply", "patch", "image", "ws_endpoint" or "unknown"
    scripted: bool = False  # answered from fake.script() / fake.refuse_chat()
    log_id: str = ""  # the X-Tt-Logid answered
    at: float = 0.0  # time.monotonic() on arrival
    raw: bytes = field(default=b"", repr=False)  # the body as received (multipart uploads are not JSON)


@dataclass
class Message:
    """A message the fake really created (a uuid duplicate creates none)."""

    message_id: str
    receive_id_type: str  # "chat_id", "open_id", ...; for replies the parent's ("" if the parent is unknown)
    receive_id: str
    msg_type: str
    content: Any  # json-decoded `content`
    uuid: str | None
    reply_to: str | None = None  # the parent message_id for replies
    chat_id: str = ""
    reply_in_thread: bool = False


@dataclass
class Image:
    """An image the fake accepted on ``POST /open-apis/im/v1/images`` (a scripted answer stores none)."""

    image_key: str  # "img_v3_..."
    image_type: str  # "message" or "avatar"
    data: bytes = field(repr=False)  # exactly the bytes of the multipart ``image`` part


@dataclass
class Ack:
    """The ack frame a long-connection client sent for a data frame."""

    message_id: str
    code: int
    data: Any  # json-decoded base64 `data`, or None
    headers: dict[str, str]  # frame headers (the SDK adds "biz_rt")


def reset_lark_token_cache() -> None:
    """Forgets every token lark-oapi cached (process-global `TokenManager.cache`, keyed by app_id)."""
    from lark_oapi.core.cache import LocalCache
    from lark_oapi.core.token.manager import TokenManager

    entries = getattr(TokenManager.cache, "cache", None)
    if isinstance(entries, dict):
        entries.clear()
    else:  # a custom ICache installed by ClientBuilder.cache(): replace it, it cannot be cleared generically
        TokenManager.cache = LocalCache()


# ---------------------------------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128
    fake: FakeFeishu

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):  # a client that hung up is not our problem
            return
        super().handle_error(request, client_address)


@dataclass
class _Answer:
    status: int
    body: Any  # dict -> JSON; str -> HTML
    headers: dict[str, str] = field(default_factory=dict)
    scripted: bool = False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10
    server_version = "FakeFeishu/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        at = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        split = urlsplit(self.path)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = Call(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            json=body,
            at=at,
            raw=raw,
        )
        fake = self.server.fake
        try:
            answer = fake._dispatch(call)
        except Exception as exc:  # a bug in the fake: answer loudly instead of hanging the client
            answer = _Answer(500, {"code": 1, "msg": f"fake_feishu_internal_error: {exc!r}"})
        call.status = answer.status
        call.scripted = answer.scripted
        if isinstance(answer.body, dict):
            call.code = int(answer.body.get("code", 0))
            call.log_id = fake._next_log_id()
            if answer.status != 200:
                answer.body.setdefault("error", {"log_id": call.log_id})
            data = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
            out_headers = {"Content-Type": "application/json; charset=utf-8", "X-Tt-Logid": call.log_id}
        else:
            data = str(answer.body).encode("utf-8")
            out_headers = {"Content-Type": "text/html"}
        # Record before answering: once the client has its response the call must be visible to the test.
        fake._record(call)
        self.send_response(answer.status)
        for name, value in {**out_headers, **answer.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# ---------------------------------------------------------------------------------------------------- FakeFeishu


class FakeFeishu:
    """A recording fake of the Feishu Open API. Starts serving on construction; use as a context manager."""

    def __init__(
        self,
        *,
        app_secret: str | None = None,
        bot_open_id: str = "ou_stagebot",
        app_name: str = "stagebot",
        token_expire: int = 7200,
    ) -> None:
        self.app_secret = app_secret  # None: any secret is accepted
        self.bot_open_id = bot_open_id
        self.app_name = app_name
        self.token_expire = token_expire  # lark caches a token for expire - 600 s; below 600 it refetches every call
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._messages: list[Message] = []
        self._patches: list[tuple[str, Any]] = []
        self._images: list[Image] = []
        self._image_keys: set[str] = set()
        self._image_ids = itertools.count(1)
        self._by_id: dict[str, Message] = {}
        self._contents: dict[str, Any] = {}
        self._by_uuid: dict[str, Message] = {}
        self._valid_tokens: set[str] = set()
        self._tokens_issued = 0
        self._script: dict[str, list[Scripted]] = {}
        self._refused: dict[str, Scripted] = {}
        self._noted: dict[str, str] = {}
        self._message_ids = itertools.count(1)
        self._log_ids = itertools.count(1)
        self._ws: FakeLongConnection | None = None
        self._closed = False

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeFeishu:{self.port}",
            daemon=True,
        )
        self._thread.start()

    # ------------------------------------------------------------------ recordings

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_of(self, kind: str) -> list[Call]:
        """The calls of one kind.

        Kinds: "token", "create", "reply", "patch", "image", "bot_info", "ws_endpoint", "unknown".
        """
        with self._lock:
            return [c for c in self._calls if c.kind == kind]

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    @property
    def patches(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._patches)

    @property
    def images(self) -> list[Image]:
        """Images uploaded (and answered with a key), in order."""
        with self._lock:
            return list(self._images)

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    def content_of(self, message_id: str) -> Any:
        """The message's current content (after patches); KeyError if the fake never created it."""
        with self._lock:
            return self._contents[message_id]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Polls `predicate` (re-checked whenever a call is recorded, and every 50 ms) until true or `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    # ------------------------------------------------------------------ behaviour

    def script(self, kind: str, *answers: Scripted) -> None:
        """The next requests of `kind` get `answers`, in order (recorded, nothing created); then normal behaviour."""
        if kind not in SCRIPTABLE_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(SCRIPTABLE_KINDS)}")
        with self._lock:
            self._script.setdefault(kind, []).extend(answers)

    def refuse_chat(self, chat_id: str, answer: Scripted) -> None:
        """Every create to receive_id `chat_id` (and reply to a message in it) answers `answer` until accept_chat."""
        with self._lock:
            self._refused[chat_id] = answer

    def accept_chat(self, chat_id: str) -> None:
        with self._lock:
            self._refused.pop(chat_id, None)

    def note_message(self, message_id: str, chat_id: str) -> None:
        """Tells the fake that a message it did not create (a user's) is in `chat_id`.

        Replies to it are then recorded with that chat and obey `refuse_chat`. Replies to messages the fake knows
        nothing about still succeed, recorded with empty receive_id_type / receive_id / chat_id.
        """
        with self._lock:
            self._noted[message_id] = chat_id

    def revoke_tokens(self) -> None:
        """Invalidates every token issued so far (lark's cache keeps using them: calls fail with 99991663)."""
        with self._lock:
            self._valid_tokens.clear()

    def reset(self) -> None:
        """Forgets calls, messages (and their uuids), patches, images, scripts and refusals.

        Ids go on; tokens and issued image keys stay valid (a bot may have cached either).
        """
        with self._lock:
            self._calls.clear()
            self._messages.clear()
            self._patches.clear()
            self._images.clear()
            self._script.clear()
            self._refused.clear()
            self._noted.clear()
            self._by_id.clear()
            self._by_uuid.clear()
            self._contents.clear()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeFeishu:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeFeishu {self.url} calls={len(self.calls)} messages={len(self.messages)}>"

    # ------------------------------------------------------------------ internals

    def _record(self, call: Call) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _next_log_id(self) -> str:
        with self._lock:
            return f"20260302090000{next(self._log_ids):06d}FAKE"

    def _take_scripted(self, kind: str) -> Scripted | None:
        with self._lock:
            queue = self._script.get(kind)
            return queue.pop(0) if queue else None

    @staticmethod
    def _scripted_answer(scripted: Scripted) -> _Answer:
        if scripted.html:
            return _Answer(scripted.status, _HTML_502, dict(scripted.headers), scripted=True)
        return _Answer(scripted.status, {"code": scripted.code, "msg": scripted.msg}, dict(scripted.headers), True)

    def _authorized(self, call: Call) -> bool:
        auth = call.headers.get("authorization", "")
        if auth[:7].lower() != "bearer ":
            return False
        with self._lock:
            return auth[7:].strip() in self._valid_tokens

    def _route(self, call: Call) -> tuple[str, str | None]:
        """(kind, message_id) for the request."""
        path, method = call.path.rstrip("/"), call.method
        if path == TOKEN_PATH and method == "POST":
            return "token", None
        if path == BOT_INFO_PATH and method == "GET":
            return "bot_info", None
        if path == MESSAGES_PATH and method == "POST":
            return "create", None
        if path == IMAGES_PATH and method == "POST":
            return "image", None
        if path.startswith(MESSAGES_PATH + "/"):
            rest = path[len(MESSAGES_PATH) + 1 :].split("/")
            if len(rest) == 2 and rest[1] == "reply" and method == "POST":
                return "reply", unquote(rest[0])
            if len(rest) == 1 and method == "PATCH":
                return "patch", unquote(rest[0])
        if path == WS_ENDPOINT_PATH and method == "POST" and self._ws is not None:
            return "ws_endpoint", None
        return "unknown", None

    def _dispatch(self, call: Call) -> _Answer:
        kind, message_id = self._route(call)
        call.kind = kind
        if kind == "unknown":
            return _Answer(404, {"code": 404, "msg": f"404 page not found: {call.method} {call.path}"})
        if kind in ("create", "reply", "patch", "image", "bot_info") and not self._authorized(call):
            return _Answer(TOKEN_INVALID.status, _body(TOKEN_INVALID))
        scripted = self._take_scripted(kind)
        if scripted is not None:
            return self._scripted_answer(scripted)
        if kind == "image":
            return self._upload_image(call)
        body = call.json if isinstance(call.json, dict) else {}
        if kind == "token":
            return self._token(body)
        if kind == "bot_info":
            bot = {"open_id": self.bot_open_id, "app_name": self.app_name, "activate_status": 2, "ip_white_list": []}
            return _Answer(200, {"code": 0, "msg": "ok", "bot": bot})
        if kind == "ws_endpoint":
            ws = self._ws
            if ws is None:  # detached meanwhile
                return _Answer(404, {"code": 404, "msg": "404 page not found"})
            return ws._endpoint(body)
        if kind == "patch":
            assert message_id is not None
            return self._patch(message_id, call, body)
        return self._send(kind, call, message_id, body)

    def _token(self, body: dict[str, Any]) -> _Answer:
        if not body.get("app_id") or not body.get("app_secret"):
            return _Answer(400, {"code": 10003, "msg": "invalid param"})
        if self.app_secret is not None and body.get("app_secret") != self.app_secret:
            return _Answer(200, {"code": 10014, "msg": "app secret invalid"})
        with self._lock:
            self._tokens_issued += 1
            token = f"t-{self._tokens_issued}"
            self._valid_tokens.add(token)
        return _Answer(200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_expire})

    def _upload_image(self, call: Call) -> _Answer:
        content_type = call.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "multipart/form-data":
            return _Answer(_IMAGE_PARAM_INVALID.status, _body(_IMAGE_PARAM_INVALID))
        form = _parse_multipart(content_type, call.raw)
        image_type = form.get("image_type", b"").decode("utf-8", "replace")
        data = form.get("image")
        # Feishu also refuses empty and non-image files (with codes of their own); the fake only insists on bytes.
        if image_type not in _IMAGE_TYPES or not data:
            return _Answer(_IMAGE_PARAM_INVALID.status, _body(_IMAGE_PARAM_INVALID))
        with self._lock:
            image_key = f"img_v3_{next(self._image_ids):04d}_{uuid_module.uuid4()}"
            self._image_keys.add(image_key)
            self._images.append(Image(image_key=image_key, image_type=image_type, data=data))
        return _Answer(200, {"code": 0, "msg": "success", "data": {"image_key": image_key}})

    def _send(self, kind: str, call: Call, parent_id: str | None, body: dict[str, Any]) -> _Answer:
        msg_type, raw_content, uuid = body.get("msg_type"), body.get("content"), body.get("uuid")
        if kind == "create":
            receive_id_type, receive_id = call.query.get("receive_id_type", ""), body.get("receive_id")
            if receive_id_type not in _RECEIVE_ID_TYPES:
                return _Answer(400, {"code": 99992402, "msg": "field validation failed: receive_id_type"})
            if not isinstance(receive_id, str) or not receive_id:
                return _Answer(400, {"code": 99992402, "msg": "field validation failed: receive_id"})
            chat_id = receive_id if receive_id_type == "chat_id" else f"oc_p2p_{receive_id}"
        else:
            assert parent_id is not None
            with self._lock:
                parent = self._by_id.get(parent_id)
                noted_chat = self._noted.get(parent_id, "")
            if parent is not None:
                receive_id_type, receive_id, chat_id = parent.receive_id_type, parent.receive_id, parent.chat_id
            else:  # a user's message (Feishu lets the bot reply to any message it can see)
                receive_id_type, receive_id, chat_id = (
                    ("chat_id", noted_chat, noted_chat) if noted_chat else ("", "", "")
                )
        if not isinstance(msg_type, str) or not msg_type:
            return _Answer(400, {"code": 99992402, "msg": "field validation failed: msg_type"})
        refusal = check_message(msg_type, raw_content, len(call.raw), uuid)
        if refusal is not None:
            return _Answer(refusal.status, refusal.body())
        content = json.loads(raw_content)
        if msg_type == "image":
            image_key = content.get("image_key") if isinstance(content, dict) else None
            with self._lock:
                known = isinstance(image_key, str) and image_key in self._image_keys
            if not known:
                return _Answer(IMAGE_KEY_INVALID.status, _body(IMAGE_KEY_INVALID))
        with self._lock:
            refused = self._refused.get(chat_id) or self._refused.get(receive_id)
        if refused is not None:
            return self._scripted_answer(refused)
        with self._lock:
            existing = self._by_uuid.get(uuid) if uuid else None
            if existing is not None:
                return _Answer(200, {"code": 0, "msg": "success", "data": _message_data(existing)})
            message = Message(
                message_id=f"om_{next(self._message_ids)}",
                receive_id_type=receive_id_type,
                receive_id=receive_id,
                msg_type=msg_type,
                content=content,
                uuid=uuid,
                reply_to=parent_id,
                chat_id=chat_id,
                reply_in_thread=bool(body.get("reply_in_thread")),
            )
            self._messages.append(message)
            self._by_id[message.message_id] = message
            self._contents[message.message_id] = content
            if uuid:
                self._by_uuid[uuid] = message
        return _Answer(200, {"code": 0, "msg": "success", "data": _message_data(message)})

    def _patch(self, message_id: str, call: Call, body: dict[str, Any]) -> _Answer:
        refusal = check_message(None, body.get("content"), len(call.raw), patch=True)
        if refusal is not None:
            return _Answer(refusal.status, refusal.body())
        content = json.loads(body["content"])
        with self._lock:
            if message_id not in self._by_id:
                return _Answer(400, {"code": 230001, "msg": "message not found"})
            self._patches.append((message_id, content))
            self._contents[message_id] = content
        return _Answer(200, {"code": 0, "msg": "success", "data": {}})


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """A multipart/form-data body's fields as bytes, exactly as sent (lark-oapi's ``image`` part has no filename)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    out: dict[str, bytes] = {}
    if not message.is_multipart():
        return out
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        content = part.get_payload(decode=True)
        out[str(name)] = content if isinstance(content, bytes) else b""
    return out


def _body(scripted: Scripted) -> dict[str, Any]:
    return {"code": scripted.code, "msg": scripted.msg}


def _message_data(message: Message) -> dict[str, Any]:
    now = str(int(time.time() * 1000))
    data: dict[str, Any] = {
        "message_id": message.message_id,
        "chat_id": message.chat_id,
        "msg_type": message.msg_type,
        "create_time": now,
        "update_time": now,
        "deleted": False,
        "updated": False,
        "sender": {"id": "cli_fake", "id_type": "app_id", "sender_type": "app", "tenant_key": "t1"},
        "body": {"content": json.dumps(message.content, ensure_ascii=False)},
    }
    if message.reply_to:
        data["parent_id"] = data["root_id"] = message.reply_to
    return data


# ---------------------------------------------------------------------------------------------------- long connection


# Frame constants, as lark_oapi/ws reads them (const.py, enum.py): method 0 = control, 1 = data.
_CONTROL, _DATA = 0, 1
_H_TYPE, _H_MESSAGE_ID, _H_SUM, _H_SEQ, _H_TRACE_ID = "type", "message_id", "sum", "seq", "trace_id"


@dataclass
class _Conn:
    ws: ServerConnection
    silent: bool
    open: bool = True


class FakeLongConnection:
    """The long-connection side of Feishu: the ``/callback/ws/endpoint`` route on `fake` plus a websocket server.

    Starts serving on construction (the route is attached to `fake` until `close()`); use as a context manager.
    Answers the client's ping frames with pong frames (payload: the ClientConfig), sends data frames with
    `send_event()` and collects the client's acks.
    """

    def __init__(
        self,
        fake: FakeFeishu,
        *,
        ping_interval: int = 1,
        reconnect_interval: int = 1,
        reconnect_count: int = -1,
        reconnect_nonce: int = 0,
    ) -> None:
        from lark_oapi.ws.pb.pbbp2_pb2 import Frame  # lazy: importing lark_oapi takes seconds

        if fake._ws is not None:
            raise RuntimeError("this FakeFeishu already has a FakeLongConnection attached")
        self._frame_class = Frame
        self.fake = fake
        self.client_config = {
            "ReconnectCount": reconnect_count,
            "ReconnectInterval": reconnect_interval,
            "ReconnectNonce": reconnect_nonce,
            "PingInterval": ping_interval,
        }
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._conns: list[_Conn] = []
        self._accepted = 0
        self._endpoint_calls = 0
        self._pings = 0
        self._silent = False
        self._pending: dict[str, concurrent.futures.Future[Ack]] = {}
        self._acks: list[Ack] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.port = 0

        self._thread = threading.Thread(target=self._run, name="FakeLongConnection", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None or not self.port:
            self._thread.join(timeout=5)
            raise RuntimeError(f"FakeLongConnection did not start: {self._startup_error!r}")
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        fake._ws = self

    # ------------------------------------------------------------------ observations

    @property
    def endpoint_calls(self) -> int:
        """How many times a client asked ``/callback/ws/endpoint`` for a websocket URL."""
        with self._lock:
            return self._endpoint_calls

    @property
    def connections(self) -> int:
        """How many websocket connections were accepted so far (open or not)."""
        with self._lock:
            return self._accepted

    @property
    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._conns if c.open)

    @property
    def pings(self) -> int:
        """How many ping frames the fake received (and answered, unless silent)."""
        with self._lock:
            return self._pings

    @property
    def acks(self) -> list[Ack]:
        with self._lock:
            return list(self._acks)

    def wait_connected(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Waits until at least `n` connections were accepted in total."""
        return self._wait(lambda: self._accepted >= n, timeout)

    # ------------------------------------------------------------------ actions

    def send_event(
        self, payload: dict[str, Any], *, frame_type: str = "event", timeout: float = 10.0, parts: int = 1
    ) -> dict[str, Any] | None:
        """Sends `payload` (JSON) as a data frame to the newest open connection and waits for its ack.

        Returns ``{"code": int, "data": <json-decoded base64 data, or None>}``, or None when no ack came within
        `timeout` (the SDK drops ``frame_type="card"``; a silent connection drops everything). `parts` > 1 splits
        the payload into that many frames (``sum``/``seq`` headers) that the SDK must reassemble.
        Raises AssertionError if no connection is open within `timeout`.
        """
        deadline = time.monotonic() + timeout
        if not self._wait(lambda: any(c.open for c in self._conns), timeout):
            raise AssertionError(f"FakeLongConnection: no open connection within {timeout}s")
        with self._lock:
            conn = next(c for c in reversed(self._conns) if c.open)
            n = next(self._ids)
        message_id = f"fake_msg_{n}_{uuid_module.uuid4().hex[:8]}"
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        parts = max(1, min(parts, len(data)))
        size = -(-len(data) // parts)
        frames = []
        for seq in range(parts):
            frame = self._frame_class()
            frame.SeqID, frame.LogID, frame.service, frame.method = n, n, 1, _DATA
            for key, value in (
                (_H_TYPE, frame_type),
                (_H_MESSAGE_ID, message_id),
                (_H_SUM, str(parts)),
                (_H_SEQ, str(seq)),
                (_H_TRACE_ID, f"trace_{n}"),
            ):
                header = frame.headers.add()
                header.key, header.value = key, value
            frame.payload = data[seq * size : (seq + 1) * size]
            frames.append(frame.SerializeToString())
        future: concurrent.futures.Future[Ack] = concurrent.futures.Future()
        with self._lock:
            self._pending[message_id] = future
        try:
            if not conn.silent:
                try:
                    self._call(self._send_frames(conn, frames), max(0.1, deadline - time.monotonic()))
                except ConnectionClosed:  # the connection went away meanwhile: the event is lost
                    return None
            try:
                ack = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                return None
            return {"code": ack.code, "data": ack.data}
        finally:
            with self._lock:
                self._pending.pop(message_id, None)

    def go_silent(self) -> None:
        """From now on every connection (open or new) stays open but is never read from nor written to (half-open).

        The fake stops reading the socket, so neither lark's ping frames nor the websocket protocol's own pings
        are answered, and `send_event` frames are dropped.
        """
        with self._lock:
            self._silent = True
            conns = [c for c in self._conns if c.open and not c.silent]
            for conn in conns:
                conn.silent = True
        for conn in conns:
            self._call(self._pause(conn), 5)

    def resume(self) -> None:
        """New connections behave normally again (connections that went silent stay silent)."""
        with self._lock:
            self._silent = False

    def drop(self, *, abrupt: bool = False) -> None:
        """Closes every open connection: a websocket close (code 1001), or a bare TCP close if `abrupt`."""
        with self._lock:
            conns = [c for c in self._conns if c.open]
        for conn in conns:
            self._call(self._close_conn(conn, abrupt=abrupt or conn.silent), 5)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.fake._ws is self:
            self.fake._ws = None
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10)
        with self._lock:
            for future in self._pending.values():
                future.cancel()

    def __enter__(self) -> FakeLongConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeLongConnection {self.ws_url} connections={self.connections} open={self.open_connections}>"

    # ------------------------------------------------------------------ internals (HTTP thread)

    def _endpoint(self, body: dict[str, Any]) -> _Answer:
        secret = self.fake.app_secret
        if not body.get("AppID") or not body.get("AppSecret"):
            return _Answer(200, {"code": 1000040344, "msg": "app_id and app_secret are required"})
        if secret is not None and body.get("AppSecret") != secret:
            return _Answer(200, {"code": 10014, "msg": "app secret invalid"})
        with self._changed:
            self._endpoint_calls += 1
            n = self._endpoint_calls
            self._changed.notify_all()
        url = f"{self.ws_url}?device_id=d{n}&service_id=1"
        return _Answer(200, {"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": dict(self.client_config)}})

    # ------------------------------------------------------------------ internals (any thread)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
            return True

    def _call(self, coro: Any, timeout: float) -> Any:
        """Runs `coro` on the server's loop and waits for it."""
        loop = self._loop
        if loop is None or self._closed:
            coro.close()
            raise RuntimeError("FakeLongConnection is closed")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    # ------------------------------------------------------------------ internals (server thread)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by __init__ when it happens during startup
            self._startup_error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server: Server
        async with serve(
            self._handler, "127.0.0.1", 0, ping_interval=None, close_timeout=1, max_size=None, compression=None
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            with self._lock:
                silent = [c for c in self._conns if c.open and c.silent]
            for conn in silent:  # a close handshake cannot complete on a socket we do not read
                conn.ws.transport.abort()

    async def _handler(self, ws: ServerConnection) -> None:
        with self._changed:
            conn = _Conn(ws, silent=self._silent)
            self._conns.append(conn)
            self._accepted += 1
            self._changed.notify_all()
        if conn.silent:
            ws.transport.pause_reading()
        try:
            async for raw in ws:
                if conn.silent or isinstance(raw, str):
                    continue
                await self._on_frame(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                conn.open = False
                self._changed.notify_all()

    async def _on_frame(self, conn: _Conn, raw: bytes) -> None:
        frame = self._frame_class()
        frame.ParseFromString(raw)
        headers = {h.key: h.value for h in frame.headers}
        if frame.method == _CONTROL:
            if headers.get(_H_TYPE) != "ping":
                return
            with self._lock:
                self._pings += 1
            pong = self._frame_class()
            pong.SeqID, pong.LogID, pong.service, pong.method = 0, 0, frame.service, _CONTROL
            header = pong.headers.add()
            header.key, header.value = _H_TYPE, "pong"
            pong.payload = json.dumps(self.client_config).encode("utf-8")
            await conn.ws.send(pong.SerializeToString())
        elif frame.method == _DATA:
            message_id = headers.get(_H_MESSAGE_ID, "")
            ack = _decode_ack(message_id, headers, frame.payload)
            with self._lock:
                self._acks.append(ack)
                future = self._pending.get(message_id)
            if future is not None and not future.done():
                future.set_result(ack)

    async def _send_frames(self, conn: _Conn, frames: list[bytes]) -> None:
        for data in frames:
            await conn.ws.send(data)

    async def _pause(self, conn: _Conn) -> None:
        if not conn.ws.transport.is_closing():
            conn.ws.transport.pause_reading()

    async def _close_conn(self, conn: _Conn, *, abrupt: bool) -> None:
        if abrupt:
            conn.ws.transport.abort()
        else:
            await conn.ws.close(1001, "going away")
        with self._changed:  # at once, so send_event never picks a dropped connection
            conn.open = False
            self._changed.notify_all()


def _decode_ack(message_id: str, headers: dict[str, str], payload: bytes) -> Ack:
    """The SDK's ack payload is ``JSON.marshal(Response)``: ``{"code": 200, "data": "<base64 of JSON>"}``."""
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        body = {}
    data: Any = None
    encoded = body.get("data") if isinstance(body, dict) else None
    if encoded:
        decoded = base64.b64decode(encoded)
        try:
            data = json.loads(decoded)
        except ValueError:
            data = decoded.decode("utf-8", "replace")
    code = body.get("code", 0) if isinstance(body, dict) else 0
    return Ack(message_id=message_id, code=int(code), data=data, headers=headers)
