"""The fake Slack server, exercised with the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import json
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack_api import FakeSlack, SlackCall, SlackUpload

BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*acme* moved to *P3*"}},
    {
        "type": "actions",
        "block_id": "approval",
        "elements": [{"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "Approve"}}],
    },
]


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A real (tiny, RGB) PNG: signature with CR LF / LF / EOF bytes, binary chunks, zlib data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((x * 80, y * 120, 0x0A)) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png_bytes()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5)


def test_urls(fake: FakeSlack) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.base_url == fake.url + "/api/"
    assert fake.response_url() == fake.url + "/response/r1"
    assert fake.response_url("x") == fake.url + "/response/x"


def test_post_message_with_blocks_then_update(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0SALES", text="acme moved to P3", blocks=BLOCKS)
    assert posted["ok"] is True
    assert posted["channel"] == "C0SALES"
    assert posted["message"]["text"] == "acme moved to P3"
    assert posted["message"]["ts"] == posted["ts"]

    [call] = fake.calls_to("chat.postMessage")  # recorded before the client got its answer
    assert call.path == "/api/chat.postMessage"
    assert call.token == "xoxb-test"
    assert call.headers["content-type"].startswith("application/json")
    assert call.headers["authorization"] == "Bearer xoxb-test"
    assert call.body["blocks"] == BLOCKS  # JSON body: real arrays
    assert call.body["text"] == "acme moved to P3"
    assert call.answered == 200
    assert call.response["ts"] == posted["ts"]

    updated = client.chat_update(channel="C0SALES", ts=posted["ts"], text="Approved by <@U0BOB>", blocks=[])
    assert updated["ts"] == posted["ts"]
    assert updated["channel"] == "C0SALES"
    assert updated["text"] == "Approved by <@U0BOB>"
    [upd] = fake.wait_for("chat.update")
    assert upd.body == {"channel": "C0SALES", "ts": posted["ts"], "text": "Approved by <@U0BOB>", "blocks": []}
    assert [c.method for c in fake.calls] == ["chat.postMessage", "chat.update"]


def test_views_publish_auth_test_and_form_methods() -> None:
    with FakeSlack(bot_user_id="U0STAGE", team_id="T123") as fake:
        client = WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5)

        auth = client.auth_test()
        identity = (auth["user_id"], auth["team_id"], auth["bot_id"], auth["user"])
        assert identity == ("U0STAGE", "T123", "B0BOT", "stagebot")
        assert auth["url"]
        assert fake.calls_to("auth.test")[0].body == {}

        view = {"type": "home", "blocks": BLOCKS}
        published = client.views_publish(user_id="U0ALICE", view=view)
        assert published["view"]["type"] == "home"
        assert published["view"]["id"].startswith("V")
        [pub] = fake.calls_to("views.publish")
        assert pub.body["user_id"] == "U0ALICE"
        assert pub.body["view"] == view

        opened = client.conversations_open(users=["U0ALICE", "U0BOB"])
        again = client.conversations_open(users="U0ALICE,U0BOB")
        assert opened["channel"]["id"].startswith("D")
        assert again["channel"]["id"] == opened["channel"]["id"]
        first_open = fake.calls_to("conversations.open")[0]
        assert first_open.headers["content-type"] == "application/x-www-form-urlencoded"
        assert first_open.body == {"users": "U0ALICE,U0BOB"}  # form values are str

        eph = client.chat_postEphemeral(channel="C1", user="U0ALICE", text="only you")
        assert eph["message_ts"]

        # A JSON-looking form field stays a str.
        client.api_call("chat.scheduleMessage", data={"channel": "C1", "blocks": json.dumps(BLOCKS), "post_at": "1"})
        [sched] = fake.calls_to("chat.scheduleMessage")
        assert sched.body["blocks"] == json.dumps(BLOCKS)

        assert client.api_call("stagebot.unknownMethod")["ok"] is True


def test_missing_token_is_not_authed(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=fake.base_url, timeout=5).chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "not_authed"
    [call] = fake.calls_to("chat.postMessage")
    assert call.token is None


def test_webhook_client_response_url(fake: FakeSlack) -> None:
    url = fake.response_url("cmd-1")
    resp = WebhookClient(url, timeout=5).send(text="Moved acme to P3", response_type="in_channel")
    assert (resp.status_code, resp.body) == (200, "ok")
    [call] = fake.wait_for("response_url")
    assert call.path == "/response/cmd-1"
    assert call.body == {"text": "Moved acme to P3", "response_type": "in_channel"}
    assert call.token is None


def test_scripted_429_surfaces_as_slack_api_error(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("chat.postMessage", status=429, error="ratelimited", retry_after=1)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response["error"] == "ratelimited"

    # one-shot: the next call goes through; both are recorded
    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True
    assert [c.answered for c in fake.calls_to("chat.postMessage")] == [429, 200]


def test_429_with_rate_limit_retry_handler_succeeds_on_retry(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail("chat.postMessage", retry_after=1)
    started = time.monotonic()
    resp = client.chat_postMessage(channel="C1", text="hi")
    assert resp["ok"] is True
    first, second = fake.calls_to("chat.postMessage")
    assert (first.answered, second.answered) == (429, 200)
    assert second.at - first.at >= 1.0  # the handler honoured Retry-After
    assert time.monotonic() - started < 5


def test_fail_times_and_statuses(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("chat.update", status=500, error="internal_error", retry_after=None, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_update(channel="C1", ts="1.2", text="x")
        assert err.value.response.status_code == 500
        assert err.value.response["error"] == "internal_error"
        assert "Retry-After" not in err.value.response.headers
    assert client.chat_update(channel="C1", ts="1.2", text="x")["ok"] is True

    fake.fail("auth.test", status=200, error="invalid_auth", retry_after=None)
    with pytest.raises(SlackApiError) as err:
        client.auth_test()
    assert (err.value.response.status_code, err.value.response["error"]) == (200, "invalid_auth")

    fake.fail("views.publish", times=3)
    fake.clear_failures()
    assert client.views_publish(user_id="U1", view={"type": "home", "blocks": []})["ok"] is True


def test_fail_channel(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_channel("C0GONE")
    for method, extra in (("chat.postMessage", {}), ("chat.update", {"ts": "1700000000.000100"})):
        with pytest.raises(SlackApiError) as err:
            client.api_call(method, json={"channel": "C0GONE", "text": "hi", **extra})
        assert err.value.response.status_code == 200
        assert err.value.response["error"] == "channel_not_found"
    assert client.chat_postMessage(channel="C0OK", text="hi")["ok"] is True

    fake.fail_channel("C0PRIV", error="not_in_channel")
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client.chat_postMessage(channel="C0PRIV", text="hi")

    assert [c.body["channel"] for c in fake.calls_to("chat.postMessage")] == ["C0GONE", "C0OK", "C0PRIV"]
    fake.clear_failures()
    assert client.chat_postMessage(channel="C0GONE", text="hi")["ok"] is True


def test_response_url_failure_is_plain_text(fake: FakeSlack) -> None:
    fake.fail("response_url", status=404, error="expired_url", retry_after=None)
    resp = WebhookClient(fake.response_url(), timeout=5).send(text="late")
    assert (resp.status_code, resp.body) == (404, "expired_url")
    assert WebhookClient(fake.response_url(), timeout=5).send(text="again").status_code == 200


def test_wait_for_times_out_with_summary(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C0SALES", text="acme moved")
    fake.fail_channel("C0GONE")
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0GONE", text="lost")
    started = time.monotonic()
    with pytest.raises(AssertionError) as err:
        fake.wait_for("chat.update", timeout=0.2)
    assert time.monotonic() - started < 1
    msg = str(err.value)
    assert "'chat.update'" in msg
    assert "got 0" in msg
    assert "Received 2 call(s)" in msg
    assert "chat.postMessage -> 200" in msg and "'C0SALES'" in msg
    assert "error='channel_not_found'" in msg

    with pytest.raises(AssertionError, match=r"expected >= 3 call\(s\) to 'chat.postMessage'.*got 2"):
        fake.wait_for("chat.postMessage", count=3, timeout=0.1)
    assert len(fake.wait_for("chat.postMessage", count=2, timeout=0.1)) == 2


def test_wait_for_wakes_up_on_a_late_call(fake: FakeSlack, client: WebClient) -> None:
    timer = threading.Timer(0.1, lambda: client.chat_postMessage(channel="C1", text="late"))
    timer.start()
    try:
        [call] = fake.wait_for("chat.postMessage", timeout=5)
    finally:
        timer.join()
    assert call.body["text"] == "late"


def test_concurrent_posts_are_all_recorded_with_unique_ts(fake: FakeSlack, client: WebClient) -> None:
    per_thread = 5
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(per_thread):
                ts = client.chat_postMessage(channel=f"C{n}", text=f"msg {n}/{i}")["ts"]
                with lock:
                    results.append(ts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    calls = fake.wait_for("chat.postMessage", count=8 * per_thread, timeout=5)
    assert len(calls) == 8 * per_thread
    assert len(set(results)) == 8 * per_thread
    assert sorted(c.response["ts"] for c in calls) == sorted(results)
    assert all(float(ts) > 1_700_000_000 for ts in results)
    assert {c.body["text"] for c in calls} == {f"msg {n}/{i}" for n in range(8) for i in range(per_thread)}


def test_ts_is_increasing(fake: FakeSlack, client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C1", text=str(i))["ts"] for i in range(3)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 3


def test_files_upload_v2_round_trip(fake: FakeSlack, client: WebClient) -> None:
    resp = client.files_upload_v2(channel="C1", content="a,b\n1,2\n", filename="report.csv", title="Report")
    assert resp["ok"] is True
    assert resp["file"]["title"] == "Report"
    [upload] = fake.calls_to("file_upload")
    assert upload.body["content"] == b"a,b\n1,2\n"
    [done] = fake.calls_to("files.completeUploadExternal")
    assert done.body["channel_id"] == "C1"


def test_files_upload_v2_png_is_stored_byte_exact(fake: FakeSlack, client: WebClient) -> None:
    resp = client.files_upload_v2(
        channel="C0SALES",
        file=PNG,
        filename="report.png",
        title="Weekly stages",
        initial_comment="this week's board",
        thread_ts="1700000000.000100",
    )
    assert resp["ok"] is True
    file_id = resp["file"]["id"]
    assert file_id.startswith("F")
    assert (resp["file"]["name"], resp["file"]["title"]) == ("report.png", "Weekly stages")
    assert (resp["file"]["mimetype"], resp["file"]["size"]) == ("image/png", len(PNG))

    [url_call] = fake.calls_to("files.getUploadURLExternal")
    assert url_call.body["filename"] == "report.png"
    assert url_call.body["length"] == str(len(PNG))  # form-encoded by slack_sdk
    assert url_call.response["upload_url"] == f"{fake.url}/upload/{file_id}"
    [upload] = fake.calls_to("file_upload")
    assert upload.raw == PNG  # slack_sdk POSTs the bytes as the raw body, no multipart
    assert upload.body == {"file_id": file_id, "content": PNG}
    [done] = fake.wait_for("files.completeUploadExternal")
    assert done.body["channel_id"] == "C0SALES"
    assert json.loads(done.body["files"]) == [{"id": file_id, "title": "Weekly stages"}]

    assert fake.uploads == [
        SlackUpload(
            file_id=file_id,
            filename="report.png",
            title="Weekly stages",
            channel="C0SALES",
            initial_comment="this week's board",
            thread_ts="1700000000.000100",
            data=PNG,
            length=len(PNG),
            channels=["C0SALES"],
        )
    ]
    assert fake.uploads[0].data == PNG  # SlackUpload.data is repr=False but still compared


def test_files_upload_v2_to_a_failing_channel(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_channel("C0PRIV", error="not_in_channel")
    with pytest.raises(SlackApiError) as err:
        client.files_upload_v2(channel="C0PRIV", file=PNG, filename="report.png", title="Report")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "not_in_channel"
    [failed] = fake.calls_to("files.completeUploadExternal")
    assert failed.body["channel_id"] == "C0PRIV"
    assert fake.uploads == []

    # The bytes were uploaded, so the same file can still be completed elsewhere.
    file_id = fake.calls_to("files.getUploadURLExternal")[0].response["file_id"]
    done = client.files_completeUploadExternal(files=[{"id": file_id, "title": "Report"}], channel_id="C0OK")
    assert [f["id"] for f in done["files"]] == [file_id]
    [upload] = fake.uploads
    assert (upload.file_id, upload.channel, upload.data) == (file_id, "C0OK", PNG)

    with pytest.raises(SlackApiError, match="not_in_channel"):  # `channels` is checked too
        client.files_completeUploadExternal(files=[{"id": file_id}], channels=["C0OK", "C0PRIV"])


def test_complete_upload_rejects_unknown_or_empty_files(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.files_completeUploadExternal(files=[{"id": "F0NOPE", "title": "x"}], channel_id="C1")
    assert err.value.response["error"] == "file_not_found"

    issued = client.files_getUploadURLExternal(filename="a.png", length=len(PNG))  # bytes never sent
    with pytest.raises(SlackApiError) as err:
        client.files_completeUploadExternal(files=[{"id": issued["file_id"]}], channel_id="C1")
    assert err.value.response["error"] == "file_not_found"

    for bad in ({"files": "not json"}, {"files": "[]"}):
        with pytest.raises(SlackApiError) as err:
            client.api_call("files.completeUploadExternal", params={"channel_id": "C1", **bad})
        assert err.value.response["error"] == "invalid_arguments"
    for bad_args in ({"filename": "a.png"}, {"filename": "a.png", "length": "many"}, {"length": "3"}):
        with pytest.raises(SlackApiError) as err:
            client.api_call("files.getUploadURLExternal", params=bad_args)
        assert err.value.response["error"] == "invalid_arguments"
    assert fake.uploads == []

    unknown = requests.post(f"{fake.url}/upload/F0NOPE", data=PNG, timeout=5)
    assert (unknown.status_code, unknown.text) == (404, "file_not_found")


def test_upload_url_accepts_a_multipart_body(fake: FakeSlack, client: WebClient) -> None:
    issued = client.files_getUploadURLExternal(filename="board.png", length=len(PNG))
    sent = requests.post(issued["upload_url"], files={"file": ("board.png", PNG, "image/png")}, timeout=5)
    assert (sent.status_code, sent.text) == (200, f"OK - {len(PNG)}")
    client.files_completeUploadExternal(files=[{"id": issued["file_id"], "title": "Board"}], channel_id="C1")
    [upload] = fake.uploads
    assert (upload.filename, upload.title, upload.data) == ("board.png", "Board", PNG)


def test_scripted_upload_failures(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("file_upload", status=500, error="upload_failed", retry_after=None)
    with pytest.raises(urllib.error.HTTPError) as http_err:  # slack_sdk's bare urlopen raises before its own check
        client.files_upload_v2(channel="C1", file=PNG, filename="a.png")
    assert (http_err.value.code, http_err.value.read()) == (500, b"upload_failed")
    http_err.value.close()
    assert fake.calls_to("files.completeUploadExternal") == []

    fake.fail("files.getUploadURLExternal", status=200, error="invalid_auth", retry_after=None)
    with pytest.raises(SlackApiError) as err:
        client.files_upload_v2(channel="C1", file=PNG, filename="a.png")
    assert err.value.response["error"] == "invalid_auth"

    fake.fail("files.completeUploadExternal", status=429, error="ratelimited", retry_after=3)
    with pytest.raises(SlackApiError) as err:
        client.files_upload_v2(channel="C1", file=PNG, filename="a.png")
    assert (err.value.response.status_code, err.value.response.headers["Retry-After"]) == (429, "3")
    assert fake.uploads == []

    assert client.files_upload_v2(channel="C1", file=PNG, filename="a.png")["file"]["title"] == "a.png"
    assert [u.data for u in fake.uploads] == [PNG]


def test_reset_and_unknown_path(fake: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    fake.fail("auth.test")
    fake.fail_channel("C1")
    fake.reset()
    assert fake.calls == []
    assert client.auth_test()["ok"] is True
    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(fake.url + "/nope", data=b"x=1"), timeout=5)
    err.value.close()
    assert err.value.code == 404
    assert fake.calls[-1].method == "/nope"


def test_calls_is_a_copy(fake: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    snapshot = fake.calls
    snapshot.clear()
    assert len(fake.calls) == 1
    assert isinstance(fake.calls[0], SlackCall)


def test_close_is_idempotent_and_stops_serving() -> None:
    fake = FakeSlack()
    client = WebClient(token="xoxb-test", base_url=fake.base_url, timeout=2)
    assert client.auth_test()["ok"] is True
    fake.close()
    fake.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(fake.base_url + "auth.test", data=b"", timeout=2)


def test_bolt_say_and_respond_reach_the_fake(fake: FakeSlack) -> None:
    from slack_bolt import App, BoltRequest
    from slack_bolt.authorization import AuthorizeResult

    app = App(
        client=WebClient(token="xoxb-test", base_url=fake.base_url, timeout=5),
        authorize=lambda enterprise_id, team_id, user_id: AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, bot_token="xoxb-test", bot_user_id="UBOT", bot_id="B0BOT"
        ),
        process_before_response=True,
    )

    @app.command("/stage")
    def stage(ack, say, respond, command):  # type: ignore[no-untyped-def]
        ack()
        respond(text=f"moving {command['text']}")
        say(text="acme moved to P3")

    body = {
        "command": "/stage",
        "text": "acme P3",
        "team_id": "T0TEAM",
        "user_id": "U0ALICE",
        "channel_id": "C0SALES",
        "response_url": fake.response_url("cmd"),
        "trigger_id": "1.2.3",
    }
    resp = app.dispatch(BoltRequest(mode="socket_mode", body=body))
    assert resp.status == 200
    [replied] = fake.wait_for("response_url")
    assert replied.body["text"] == "moving acme P3"
    [said] = fake.wait_for("chat.postMessage")
    assert said.body["channel"] == "C0SALES"
    assert said.body["team_id"] == "T0TEAM"  # bolt's per-request client adds it
    assert fake.calls_to("auth.test") == []
