"""The Slack app: a slack-bolt `App` with the /stage command, button presses and the App Home tab.

A stage move takes about a millisecond, so listeners run inline on the request thread
(`process_before_response`) and the reply to a command travels in the ack itself (ephemeral).
That avoids bolt's default hand-off, where every waiting request thread polls for its ack every
10 ms. What is slow (calls back to Slack: `respond()`, `views.publish`; the report over a large
history) goes to a small pool of our own, sized explicitly, so it never holds a request thread
for long: a report not ready within `report_wait` seconds is acked as on its way and follows
through the command's response_url.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as NotYet
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.request.internals import build_context
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookResponse
from sqlalchemy.exc import DBAPIError

from adapters.common import telemetry
from adapters.common.actions import decode
from adapters.common.dispatch import Answer, Failure, NotAvailable, answer, asks_for_report, run_command
from adapters.common.errors import user_message
from adapters.common.grammar import Help
from adapters.common.team_reports import TeamReports
from adapters.slack import blocks
from lifecycle.core import Lifecycle
from lifecycle.domain import commands as c
from lifecycle.domain import correlation
from lifecycle.domain.access import Actor
from lifecycle.domain.correlation import CarryingPool
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.i18n import Lang
from lifecycle.domain.views import AccountList, ApprovalList, HandoffList, Outcome, Report

log = logging.getLogger("stagebot.slack")
PLATFORM = "slack"
PROBLEM_DAYS = 7  # refused notifications older than this are assumed fixed or known
REPORT_FOLLOWS: dict[Lang, str] = {
    "en": "Working on the report: it follows here in a moment.",
    "zh": "正在生成报表,稍后在此显示。",
}


class _CorrelatedApp(App):
    """bolt's App, dispatching each request under a correlation id. Over HTTP the server has bound
    the request's id already; a Socket Mode request gets a fresh one here, so its log lines and the
    notifications it causes can be tied together too. (Not a bolt middleware: those run before the
    listeners, not around them.)"""

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        with correlation.ensured():
            return super().dispatch(req)


def build_app(
    core: Lifecycle,
    *,
    signing_secret: str,
    client: WebClient,
    command: str = "/stage",
    lang: Lang = "en",
    workers: int = 16,
    on_change: Callable[[], None] = lambda: None,
    followups: Executor | None = None,
    report_wait: float = 1.0,
) -> App:
    """The bolt App. `client` carries the bot token and base URL; `on_change` wakes the dispatcher;
    `followups` runs the calls back to Slack that happen after the ack, and reports; a report not
    ready after `report_wait` seconds is acked as on its way (Slack wants the ack within 3 s)."""
    later = followups or CarryingPool(max_workers=4, thread_name_prefix="slack-followup")
    team_reports = TeamReports(core)
    app = _CorrelatedApp(
        signing_secret=signing_secret,
        client=client,
        token_verification_enabled=False,  # auth.test runs once, lazily, on the first request
        process_before_response=True,
        # Unused for inline listeners, but sized anyway: bolt's default of 5 threads turns load
        # into misleading "unhandled request" 404s should anything ever run through it.
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-listener"),
        raise_error_for_unhandled_request=False,
    )

    @app.error
    def on_error(error: Exception, body: Any) -> BoltResponse:
        # Listeners answer their own errors, so what lands here is a request bolt itself could
        # not handle: a signed body of the wrong shape. Say so with a 400, never a 500. The one
        # exception: the database stayed away (an event's dedupe), where 503 makes Slack retry.
        if isinstance(error, DBAPIError):
            log.error("database unavailable while handling a Slack request: %s", error.orig)
            return BoltResponse(status=503, body='{"error": "database unavailable"}', headers={"Retry-After": "2"})
        log.warning("malformed Slack request (%s: %s)", type(error).__name__, str(error)[:200])
        return BoltResponse(
            status=400, body='{"error": "malformed request"}', headers={"content-type": "application/json"}
        )

    @app.command(command)
    def on_command(ack: Any, command: dict[str, Any], respond: Any, request: BoltRequest) -> None:
        actor = Actor(PLATFORM, command.get("user_id", ""))
        key = command_key(command, request)
        line = unescape(command.get("text", "") or "")
        channel = command.get("channel_id", "")
        if asks_for_report(core, line, actor):
            report = later.submit(answer, core, line, actor=actor, key=key, via=PLATFORM, lang=lang)
            try:
                ans = report.result(timeout=report_wait)
            except NotYet:
                ack(text=REPORT_FOLLOWS[lang], response_type="ephemeral")
                # A done-callback runs outside the task's context: carry the request's id to it too.
                ctx = contextvars.copy_context()
                report.add_done_callback(lambda done: ctx.run(send_late_report, done, channel, actor, respond))
                return
        else:
            ans = answer(core, line, actor=actor, key=key, via=PLATFORM, lang=lang)
        msg = render(ans, core, lang, actor)
        ack(text=msg.text, blocks=msg.blocks, response_type="ephemeral")
        if isinstance(ans, Outcome) and not ans.replayed:
            on_change()
        if isinstance(ans, Report):  # the table is in the ack; the chart follows in the channel
            later.submit(share_chart, client, core, ans, channel, actor, respond, lang)

    def send_late_report(done: Future[Answer], channel: str, actor: Actor, respond: Any) -> None:
        """The report that outlasted the ack: the table through the response_url, then the chart.
        Runs on the followup thread that made the report (or on the request thread, when the
        report was done by the time the callback was added)."""
        try:
            ans = done.result()
            msg = render(ans, core, lang, actor)
        except Exception:
            log.exception("could not make %s a report that was not ready for the ack", actor.ref)
            return
        deliver(privately(respond), msg, f"the late report for {actor.ref}")
        if isinstance(ans, Report):
            share_chart(client, core, ans, channel, actor, respond, lang)

    @app.action(re.compile(r"^stagebot:"))
    def on_button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        ack()
        actor = Actor(PLATFORM, (body.get("user") or {}).get("id", ""))
        # action_ts differs per click: a double click is two presses, and the second is told
        # the approval was already decided.
        key = f"slack:action:{action.get('action_ts', '')}:{actor.user_id}:{action.get('action_id', '')}"
        try:
            cmd = decode(action.get("value", ""), actor=actor, key=key, via=PLATFORM)
            result = run_command(cmd, core)
            telemetry.answered(PLATFORM, "button", result)
            msg = render(result, core, lang)
            if isinstance(result, Outcome) and not result.replayed:
                on_change()
        except Exception as exc:  # every refusal or bug becomes a short ephemeral message
            telemetry.answered(PLATFORM, "button", None, failed=True, bug=not isinstance(exc, LifecycleError))
            msg = render(Failure(user_message(exc, lang, context=f"button from {actor.ref}")), core, lang)

        if body.get("response_url"):
            later.submit(deliver, privately(respond), msg, f"the answer to a button press from {actor.ref}")
        elif (body.get("container") or {}).get("type") == "view" and (body.get("view") or {}).get("type") == "home":
            # A press in the App Home has no response_url, and an ephemeral message needs a channel
            # the presser is in: the answer is their Home, published again with the outcome on top.
            later.submit(deliver, home_answer(actor), msg, f"the answer to an App Home press from {actor.ref}")
        else:
            log.warning("a button press from %s came with no response_url and not from the App Home", actor.ref)

    def home_answer(actor: Actor) -> Send:
        """The Home of `actor` with the answer on top; as plain text (a message in the app's DM)
        only when Slack refuses that Home, so the presser is never left without one."""

        def send(text: str, rich: list[dict[str, Any]] | None) -> Any:
            if rich is None:
                return client.chat_postMessage(channel=actor.user_id, text=text)
            view = home_view_for(core, actor, lang, team_reports, notice=rich[:HOME_NOTICE_BLOCKS])
            # No `hash`: this Home is built from the database after the press, so it is the newest;
            # the press's view.hash would make Slack refuse it whenever another publish came between.
            return client.views_publish(user_id=actor.user_id, view=view)

        return send

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        if not core.first_delivery(f"slack:event:{body.get('event_id', '')}"):
            return  # a Slack retry of an event already handled
        user = event.get("user", "")

        def publish() -> None:
            try:
                view = home_view_for(core, Actor(PLATFORM, user), lang, team_reports)
                client.views_publish(user_id=user, view=view)
            except (LifecycleError, SlackApiError) as exc:  # a user id no one has, or Slack said no
                log.warning("could not publish the App Home of %r: %s", str(user)[:64], exc)
            except Exception:
                log.exception("could not publish the App Home of %r", str(user)[:64])

        later.submit(publish)

    @app.event(re.compile(".*"))
    def on_other_event(event: dict[str, Any]) -> None:
        # Acknowledged (bolt acks events itself) and ignored: a 404 would make Slack retry it, and
        # an app that keeps failing its events gets its event subscriptions turned off.
        log.info("Slack event %r ignored: stagebot does not handle it", str(event.get("type"))[:64])

    return app


def command_key(command: dict[str, Any], request: BoltRequest) -> str:
    """The idempotency key of one slash command: Slack's trigger_id, unique per invocation; without
    one, the digest of the signed request itself (timestamp and body), so two different commands never
    share a key and a replay of the same request is recognised."""
    trigger = command.get("trigger_id")
    if isinstance(trigger, str) and trigger:
        return f"slack:cmd:{trigger}"
    stamp = (request.headers.get("x-slack-request-timestamp") or [""])[0]
    digest = hashlib.sha256(f"{stamp}:{request.raw_body}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"slack:cmd:body:{digest}"


def unescape(text: str) -> str:
    """Slack sends the &, < and > that people type as HTML entities; mentions stay as <@U…>."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render(ans: Answer, core: Lifecycle, lang: Lang, actor: Actor | None = None) -> blocks.SlackMessage:
    if isinstance(ans, Failure | NotAvailable):
        return blocks.error_message(ans.message)
    if isinstance(ans, Help):
        msg = blocks.help_message(lang, ans.topic)
        if actor is not None and ans.topic is None and core.rules.roster.is_admin(actor):
            return with_delivery_problems(msg, core)
        return msg
    return blocks.reply(ans, core.pipeline, lang)


def with_delivery_problems(msg: blocks.SlackMessage, core: Lifecycle) -> blocks.SlackMessage:
    """Admins asking for help also see notifications that could not be delivered, and why."""
    since = core.clock.now() - timedelta(days=PROBLEM_DAYS)
    problems = core.delivery_problems(PLATFORM, since=since)
    if not problems:
        return msg
    lines = [f"• {p.count} × `{blocks.escape(p.error)}`" for p in problems]
    note = (
        ":warning: *Notifications Slack refused in the last 7 days* (fix the channel or token in the config):\n"
        + "\n".join(lines)
    )
    section = {"type": "section", "text": {"type": "mrkdwn", "text": blocks.clip(note, 3000)}}
    return blocks.SlackMessage(msg.text + "\n" + note, [*msg.blocks, section])


def home_view_for(
    core: Lifecycle,
    actor: Actor,
    lang: Lang,
    team_reports: TeamReports | None = None,
    notice: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The App Home of one person: their accounts, approvals waiting on them, stale accounts, team
    figures; `notice` (blocks) above them all."""
    if not core.rules.roster.may_read(actor):  # [access] read = "members", and the viewer is in no team
        try:
            core.ask(c.ListAccounts(actor=actor, mine=True, limit=1))
        except LifecycleError as exc:  # the core's own words: who to ask to be added
            told = render(Failure(exc.text(lang)), core, lang).blocks or []
            nothing = AccountList(groups=(), total=0)
            return blocks.home_view(
                mine=nothing,
                waiting=ApprovalList(approvals=()),
                stale=nothing,
                pipeline=core.pipeline,
                lang=lang,
                notice=[*(notice or ()), *told[:HOME_NOTICE_BLOCKS]],
            )
    mine = core.ask(c.ListAccounts(actor=actor, mine=True, limit=60))
    waiting = core.ask(c.ListApprovals(actor=actor, mine_to_decide=True))
    stale = core.ask(c.ListAccounts(actor=actor, overdue=True, mine=True, limit=40))
    handoffs = core.ask(c.ListHandoffs(actor=actor))
    assert isinstance(mine, AccountList) and isinstance(stale, AccountList)
    assert isinstance(waiting, ApprovalList) and isinstance(handoffs, HandoffList)
    return blocks.home_view(
        mine=mine,
        waiting=waiting,
        stale=stale,
        pipeline=core.pipeline,
        lang=lang,
        handoffs=handoffs.handoffs,
        reports=(team_reports or TeamReports(core)).for_person(actor),
        notice=notice or (),
    )


# ---------------------------------------------------------------- answers Slack may refuse

Send = Callable[[str, list[dict[str, Any]] | None], Any]  # (text, blocks or None for plain text)
HOME_NOTICE_BLOCKS = 3  # a button's answer is one section; never let it crowd the Home


class UnusableResponseUrl(Exception):
    """The request's response_url is not an http(s) URL: a signed request Slack itself would never send."""


def _is_http_url(value: Any) -> bool:
    """An absolute http(s) URL as Slack writes them: ASCII, printable, no spaces."""
    if not isinstance(value, str) or not value.isascii() or not value.isprintable() or " " in value:
        return False
    try:
        url = urlsplit(value)
        return url.scheme in ("http", "https") and bool(url.hostname) and url.port != 0
    except ValueError:  # a port out of range, a broken IPv6 literal
        return False


def privately(respond: Any) -> Send:
    """Send through a response_url, ephemeral, leaving the message pressed on as it is."""

    def send(text: str, rich: list[dict[str, Any]] | None) -> Any:
        if not _is_http_url(getattr(respond, "response_url", None)):
            raise UnusableResponseUrl
        if rich is None:
            return respond(text=text, response_type="ephemeral", replace_original=False)
        return respond(text=text, blocks=rich, response_type="ephemeral", replace_original=False)

    return send


def deliver(send: Send, msg: blocks.SlackMessage, what: str) -> bool:
    """`msg` with its blocks; where Slack refuses that (invalid_blocks, msg_blocks_too_long, ...), its
    plain text alone; where that is refused too, an ERROR with Slack's reasons. Whether it arrived."""
    first = _refusal(lambda: send(msg.text, msg.blocks or None), what)
    if first is None:
        return True
    if msg.blocks:
        log.warning("Slack refused %s (%s): sending it as plain text", what, first)
        second = _refusal(lambda: send(msg.text, None), what)
        if second is None:
            return True
        log.error("Slack refused %s, with blocks (%s) and as plain text (%s)", what, first, second)
    else:
        log.error("Slack refused %s (%s)", what, first)
    return False


def _refusal(call: Callable[[], Any], what: str) -> str | None:
    """None when the call went through, else why not: Slack's error code (a Web API method raises
    it; a response_url answers it as a non-200 status with the code as plain text)."""
    try:
        resp = call()
    except SlackApiError as exc:
        r = exc.response
        return str((r.get("error") if r is not None else None) or getattr(r, "status_code", "no answer"))
    except OSError as exc:  # no answer at all; never the URL, which for a response_url is a credential
        return type(exc).__name__
    except UnusableResponseUrl:
        return "the request's response_url is not a URL"
    except Exception as exc:
        log.exception("bug while sending %s", what)
        return f"bug: {type(exc).__name__}"
    if isinstance(resp, WebhookResponse) and resp.status_code != 200:
        return f"HTTP {resp.status_code} {str(resp.body or '')[:100]}".strip()
    return None


# Upload errors people can fix themselves, and what to tell them (the rest: "try again later").
CHART_PROBLEMS = {
    "not_in_channel": (
        "I can't post the chart in this channel: invite me first (`/invite @stagebot`), or ask in a direct message.",
        "我无法在此频道发送图表:请先邀请我(`/invite @stagebot`),或在私信中询问。",
    ),
    "channel_not_found": (
        "I can't see this channel, so the chart can't be posted here: invite me, or ask in a direct message.",
        "我看不到此频道,无法发送图表:请邀请我,或在私信中询问。",
    ),
    "missing_scope": (
        "The chart needs the `files:write` permission: an admin should reinstall the app from slack/manifest.yml.",
        "发送图表需要 `files:write` 权限:请管理员按 slack/manifest.yml 重新安装应用。",
    ),
}


def share_chart(
    client: WebClient, core: Lifecycle, report: Report, channel: str, actor: Actor, respond: Any, lang: Lang
) -> None:
    """Draw the report's chart and share it in the channel it was asked in (files upload v2);
    tell the asker privately when that is not possible."""
    from adapters.common.charts import ChartsUnavailable, report_png

    zh = lang == "zh"
    try:
        png = report_png(report, core.pipeline, lang)
        client.files_upload_v2(
            channel=channel,
            file=png,
            filename=f"stagebot-report-{report.generated_at:%Y%m%d-%H%M}.png",
            title="stagebot 报表" if zh else "stagebot report",
            initial_comment=(f"<@{actor.user_id}> 请求的报表" if zh else f"Report asked for by <@{actor.user_id}>"),
        )
        return
    except SlackApiError as exc:
        error = str(exc.response.get("error", "")) if exc.response is not None else ""
        log.warning("could not share a report chart in %s: %s", channel, error or "no error code")
        en, zh_text = CHART_PROBLEMS.get(
            error,
            (
                f"The chart could not be posted ({error or 'Slack did not answer'}); try again later.",
                f"图表发送失败({error or 'Slack 无响应'}),请稍后再试。",
            ),
        )
        say = zh_text if zh else en
    except ChartsUnavailable as exc:
        log.warning("charts are not available: %s", exc)
        say = "此安装无法绘制图表(缺少绘图组件)。" if zh else "Charts are not available in this installation."
    except Exception:
        log.exception("could not draw or share a report chart")
        say = "图表发送失败,请稍后再试。" if zh else "The chart could not be posted; try again later."
    deliver(privately(respond), blocks.SlackMessage(say), f"why the chart was not posted, to {actor.ref}")


def bolt_request(raw_body: str, headers: dict[str, str], query: str = "") -> BoltRequest:
    """A BoltRequest from raw HTTP, working around bolt's "payload" parsing bug.

    bolt treats any form body containing the substring "payload" as an interactivity payload and
    drops it when there is no payload= field, so `/stage move Acme P2 payload sent` would 404.
    """
    req = BoltRequest(body=raw_body, query=query, headers=dict(headers))
    if req.body == {} and raw_body and not raw_body.startswith(("payload=", "{")):
        req.body = dict(parse_qsl(raw_body, keep_blank_values=True))
        req.context = build_context(req.context, req.body)
    return req


def dispatch(app: App, raw_body: str, headers: dict[str, str], query: str = "") -> BoltResponse:
    return app.dispatch(bolt_request(raw_body, headers, query))


HttpAnswer = tuple[int, dict[str, str], bytes]


def http_handler(app: App) -> Callable[[bytes, dict[str, str], str], HttpAnswer]:
    """The POST /slack/events route: raw HTTP in, bolt's answer out; 400 for bodies bolt can't read."""

    def slack_events(raw: bytes, headers: dict[str, str], query: str) -> HttpAnswer:
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return 400, {"Content-Type": "application/json"}, b'{"error": "body is not UTF-8"}'
        try:
            resp = dispatch(app, body, headers, query)
        except Exception as exc:  # malformed JSON or form, or a shape bolt's own code trips on
            log.warning("malformed Slack request (%s: %s)", type(exc).__name__, str(exc)[:200])
            return 400, {"Content-Type": "application/json"}, b'{"error": "malformed request"}'
        out = {k: (v if isinstance(v, str) else next(iter(v), "")) for k, v in resp.headers.items()}
        return resp.status, out, (resp.body or "").encode()

    return slack_events
