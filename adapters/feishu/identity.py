"""The bot's own open_id (GET /open-apis/bot/v3/info), fetched off the request path and cached, so a
mention of the bot can be told from a mention of anyone else."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Executor

import lark_oapi as lark

log = logging.getLogger("stagebot.feishu")


class BotIdentity:
    """The bot's open_id once known; fetches it in the background, at most once a minute."""

    def __init__(self, client: lark.Client, background: Executor, open_id: str | None = None) -> None:
        self.client = client
        self.background = background
        self._open_id = open_id
        self._asked = -1e9
        self._settled = threading.Event()  # no fetch of the bot's identity is in flight
        self._settled.set()

    def open_id(self) -> str | None:
        """The bot's open_id, or None while it is unknown.

        Never fetched on the request thread (Feishu's 3 s budget): a message arriving while the
        start-up fetch is in flight waits for it at most a second; while the id is unknown a new
        fetch is started in the background at most once a minute, and the caller goes on without it.
        """
        if self._open_id is None:
            self._settled.wait(1.0)
            if self._open_id is None and time.monotonic() - self._asked >= 60:
                self.prefetch()
        return self._open_id

    def prefetch(self) -> None:
        """Ask Feishu for the bot's identity, off the request path."""
        self._asked = time.monotonic()
        self._settled.clear()

        def fetch() -> None:
            try:
                self._open_id = self._open_id or fetch_bot_open_id(self.client)
            finally:
                self._settled.set()

        self.background.submit(fetch)


def fetch_bot_open_id(client: lark.Client) -> str | None:
    """GET /open-apis/bot/v3/info (not wrapped by the SDK); None when it cannot be read now."""
    req = (
        lark.BaseRequest.builder()
        .http_method(lark.HttpMethod.GET)
        .uri("/open-apis/bot/v3/info")
        .token_types({lark.AccessTokenType.TENANT})
        .build()
    )
    try:
        resp = client.request(req)
        if resp.code != 0 and resp.code is not None:
            log.warning("Feishu bot info refused: code %s %s", resp.code, resp.msg)
            return None
        data = json.loads(resp.raw.content or b"{}")
    except Exception as exc:
        log.warning("could not read the Feishu bot's identity: %s", type(exc).__name__)
        return None
    bot = data.get("bot") if isinstance(data, dict) else None
    return bot.get("open_id") if isinstance(bot, dict) else None
