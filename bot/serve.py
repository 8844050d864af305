"""`stagebot serve`: wires the enabled platforms, the dispatcher thread and the HTTP server."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.bootstrap import App, build, feishu_client, slack_client
from bot.config import Settings
from bot.runtime import DispatcherThread
from bot.server import WsgiApp, health_handler

log = logging.getLogger("stagebot.serve")


@dataclass
class Running:
    """A started stagebot: stop() shuts it down in order (no new requests, then the dispatcher)."""

    app: App
    wsgi: WsgiApp
    dispatcher: DispatcherThread
    closers: list[Any] = field(default_factory=list)
    slack_app: Any = None  # the bolt App, when Slack is enabled
    feishu_bot: Any = None  # the FeishuBot, when Feishu is enabled
    feishu_longconn: Any = None  # its long connection, in websocket mode
    metrics: Any = None  # bot.metrics.Metrics

    def stop(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                log.exception("error while stopping")
        self.dispatcher.stop()
        self.app.close()


def connect_socket_mode(bolt: Any, app_token: str, *, api_url: str, workers: int) -> Callable[[], None]:
    """Opens Slack's Socket Mode link into the bolt App (apps.connections.open at `api_url`); returns its closer.
    slack_sdk's asyncio client, not bolt's SocketModeHandler: see adapters/slack/socket_mode.py."""
    from adapters.slack.socket_mode import SocketMode

    link = SocketMode(bolt, app_token, api_url=api_url, workers=workers)
    link.connect()
    return link.close


def start(settings: Settings, *, workers: int = 16) -> Running:
    """Build and start everything except the HTTP listener (tests drive the WSGI app directly)."""
    app = build(settings, chats=True)
    from bot.metrics import Metrics

    metrics = Metrics(app.db)
    app.dispatcher.observe = metrics.on_delivery
    dispatcher = DispatcherThread(app.dispatcher).start()
    wsgi = WsgiApp(max_body=settings.config.server.max_body_bytes)
    wsgi.observe = metrics.on_request
    wsgi.route("GET", "/healthz", health_handler(app.db))
    wsgi.route("GET", "/metrics", metrics.handler())
    from bot.signals_api import signals_handler

    wsgi.route(
        "POST", "/api/v1/signals", signals_handler(app.core, settings.secret("STAGEBOT_API_TOKEN"), dispatcher.wake)
    )
    running = Running(app, wsgi, dispatcher, metrics=metrics)
    running.closers.append(metrics.close)
    cfg = settings.config
    if cfg.slack.enabled:
        from adapters.slack.app import build_app, http_handler
        from lifecycle.domain.correlation import CarryingPool

        followups = CarryingPool(max_workers=4, thread_name_prefix="slack-followup")
        running.closers.append(lambda: followups.shutdown(wait=True, cancel_futures=False))
        bolt = build_app(
            app.core,
            followups=followups,
            signing_secret=settings.secret("SLACK_SIGNING_SECRET") or "",
            client=slack_client(settings),
            command=cfg.slack.command,
            lang=cfg.bot.language,
            workers=workers,
            on_change=dispatcher.wake,
        )

        wsgi.route("POST", "/slack/events", http_handler(bolt))
        running.slack_app = bolt
        app_token = settings.secret("SLACK_APP_TOKEN")
        if app_token:
            running.closers.append(connect_socket_mode(bolt, app_token, api_url=cfg.slack.api_url, workers=workers))
            log.info("Slack: Socket Mode connected")
    if cfg.feishu.enabled:
        start_feishu(settings, running)
    if cfg.scheduler.enabled:
        start_scheduler(settings, running)
    return running


def start_scheduler(settings: Settings, running: Running) -> None:
    """APScheduler only triggers: each tick asks the core what is due as of now (lifecycle/usecases/scheduling.py)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from lifecycle.usecases.scheduling import run_due

    app, schedule = running.app, settings.schedule()
    every = float(settings.config.scheduler.tick_seconds)
    due = {"at": time.monotonic()}  # when the next tick should start

    def tick() -> None:
        started = time.monotonic()
        lag, due["at"] = started - due["at"], started + every
        try:
            report = run_due(app.db, app.core.rules, schedule, app.core.clock.now())
        except Exception:  # the database went away for a moment: the next tick catches up
            log.exception("scheduled work failed; the next tick catches up")
            running.metrics.on_tick(False, lag)
            return
        running.metrics.on_tick(True, lag)
        if report.total:
            log.info("scheduled work emitted %s", report.emitted)
            running.dispatcher.wake()

    sched = BackgroundScheduler(timezone=settings.config.scheduler.timezone)
    # coalesce + one instance: after a pause the missed ticks run once, and never two at a time.
    sched.add_job(
        tick,
        "interval",
        seconds=settings.config.scheduler.tick_seconds,
        coalesce=True,
        max_instances=1,
        next_run_time=datetime.now(UTC),
        id="run_due",
    )
    sched.start()
    running.closers.append(lambda: sched.shutdown(wait=True))


def start_feishu(settings: Settings, running: Running) -> None:
    """The Feishu bot: the webhook route, or the long connection, feeding one dispatcher."""
    from adapters.feishu.app import FeishuBot
    from lifecycle.domain.correlation import CarryingPool

    cfg = settings.config
    replies = CarryingPool(max_workers=4, thread_name_prefix="feishu-reply")
    running.closers.append(lambda: replies.shutdown(wait=True, cancel_futures=False))
    bot = FeishuBot(
        running.app.core,
        client=feishu_client(settings),
        app_id=settings.secret("FEISHU_APP_ID") or "",
        verification_token=settings.secret("FEISHU_VERIFICATION_TOKEN") or "",
        encrypt_key=settings.secret("FEISHU_ENCRYPT_KEY") or "",
        lang=cfg.bot.language,
        on_change=running.dispatcher.wake,
        replies=replies,
    )
    running.feishu_bot = bot
    bot.prefetch()
    if cfg.feishu.mode == "websocket":
        from adapters.feishu.longconn import LongConnection

        conn = LongConnection(
            app_id=settings.secret("FEISHU_APP_ID") or "",
            app_secret=settings.secret("FEISHU_APP_SECRET") or "",
            dispatcher=bot.dispatcher,
            domain=cfg.feishu.domain,
            stall_seconds=cfg.feishu.liveness_seconds,
        ).start()
        running.feishu_longconn = conn
        running.closers.append(conn.stop)
        log.info("Feishu: long connection started")
    else:
        running.wsgi.route("POST", "/feishu/events", bot.webhook)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; then stop taking requests and finish in-flight work."""
    from bot.listener import listen

    cfg = settings.config
    workers = cfg.server.threads
    running = start(settings, workers=workers)
    listener = listen(running.wsgi, cfg.server, threads=workers)
    server = listener.server
    stopping = threading.Event()

    def graceful() -> None:
        # Stop accepting, let the requests already accepted finish (their threads still need the
        # server's trigger to hand the answer back), and only then close the sockets.
        server.accepting = False
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
        server.close()
        listener.close_all()  # idle keep-alive connections

    def on_signal(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            log.warning("signal %s: shutting down", signum)
            threading.Thread(target=graceful, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.warning(
        "stagebot serving on http://%s:%s (slack: %s, feishu: %s)",
        cfg.server.host,
        server.effective_port,
        ("socket mode" if settings.secret("SLACK_APP_TOKEN") else "http") if cfg.slack.enabled else "off",
        cfg.feishu.mode if cfg.feishu.enabled else "off",
    )
    try:
        server.run()
    except (OSError, ValueError):
        if not stopping.is_set():
            raise
    finally:
        # Requests already accepted finish before the database and the dispatcher go away.
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
        running.stop()
    return 0
