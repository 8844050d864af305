"""Delivers domain events to Slack team channels: posts, card updates, throttling, error mapping.

Called by the outbox dispatcher. Per channel it keeps to Slack's pace (about one message per
second) by deferring, not sleeping, so one busy channel never holds up the others. A 429 is
retried after its Retry-After; blocks Slack refuses are sent again as plain text; errors that
retrying cannot fix (`channel_not_found`, `not_in_channel`, `invalid_auth`, ...) fail the
delivery for good, and stay visible to admins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from adapters.common.fanout import TeamNotifier, shown_handoff, shown_request
from adapters.common.pacing import Pacer, Pacing
from adapters.slack import blocks
from lifecycle.delivery.outbox import Delivery, DeliveryError, Posted, PostedCard
from lifecycle.domain import events as ev
from lifecycle.domain.i18n import Lang
from lifecycle.domain.pipeline import Pipeline

log = logging.getLogger("stagebot.slack.notifier")
TARGET = "slack"
SLACK_INTERVAL = 1.0  # seconds between posts to one channel (Slack allows about one a second)

# Retrying cannot fix these: the channel, the token or the message itself is wrong.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "msg_too_long",
        "invalid_blocks",
        "invalid_arguments",
        "restricted_action",
    }
)
# Slack refused the blocks, not the message: the plain text still goes (see SlackNotifier._post).
REFUSED_BLOCKS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})


class SlackNotifier(TeamNotifier):
    target = TARGET

    def __init__(
        self,
        client: WebClient,
        pipeline: Pipeline,
        channels: Mapping[str, str],
        *,
        lookup: Callable[[str, str], PostedCard | None],
        lang: Lang = "en",
        min_interval: float = SLACK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacing | None = None,
    ) -> None:
        """`channels` maps team keys to channel ids; `lookup(target, subject)` finds a posted card."""
        self.client = client
        self.pipeline = pipeline
        self.channels = dict(channels)
        self.lookup = lookup
        self.lang = lang
        self.pacer: Pacing = pacer or Pacer(min_interval, clock)  # serve passes the shared one

    def places(self) -> Mapping[str, str]:
        return self.channels

    def poster(self, delivery: Delivery) -> Callable[[str, list[Posted]], Posted]:
        msg = blocks.notification(delivery.event, self.pipeline, self.lang)

        def post(channel: str, posted: list[Posted]) -> Posted:
            try:
                resp = self._post(channel, msg)
            except SlackApiError as exc:
                raise self._error(exc, channel, posted) from None
            except OSError as exc:  # connection refused, reset, timed out
                raise DeliveryError(
                    f"{channel}: {type(exc).__name__}: {exc}", posted=posted, code="connection"
                ) from None
            return Posted(channel=str(resp.get("channel") or channel), message_id=str(resp.get("ts", "")))

        return post

    def _post(self, channel: str, msg: blocks.SlackMessage) -> SlackResponse:
        """Post with blocks; if Slack refuses the blocks themselves, post the plain text instead, so
        the channel still hears of the change (without its buttons), and say so at ERROR."""
        try:
            return self.client.chat_postMessage(channel=channel, text=msg.text, blocks=msg.blocks)
        except SlackApiError as exc:
            code = str(exc.response.get("error", ""))
            if code not in REFUSED_BLOCKS:
                raise
            log.error("Slack refused the blocks of a message to %s (%s); sending it as plain text", channel, code)
            return self.client.chat_postMessage(channel=channel, text=msg.text)

    def _update_card(self, delivery: Delivery) -> Iterable[Posted]:
        e = delivery.event
        card = self.lookup(TARGET, e.subject)
        if card is None:
            return ()  # the card was never posted to Slack (no channel, or posted elsewhere)
        channel, ts, shown = card.channel, card.message_id, card.event
        # Redraw the card from the event it showed, plus the decision.
        if isinstance(e, ev.ApprovalDecided):
            msg = blocks.decided_card(e, self.pipeline, self.lang, requested=shown_request(shown))
        else:
            assert isinstance(e, ev.HandoffClaimed)
            msg = blocks.claimed_card(e, self.pipeline, self.lang, opened=shown_handoff(shown))
        try:
            self.client.chat_update(channel=channel, ts=ts, text=msg.text, blocks=msg.blocks)
        except SlackApiError as exc:
            raise self._error(exc, channel, []) from None
        except OSError as exc:
            raise DeliveryError(f"{channel}: {type(exc).__name__}: {exc}", code="connection") from None
        return ()

    def _error(self, exc: SlackApiError, channel: str, posted: list[Posted]) -> DeliveryError:
        status = exc.response.status_code
        code = str(exc.response.get("error", "") or f"http_{status}")
        if status == 429:
            retry = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
            try:
                after = float(retry) if retry is not None else 1.0
            except ValueError:
                after = 1.0
            self.pacer.hold(channel, after)  # the channel's other messages wait too
            return DeliveryError(f"{channel}: ratelimited", retry_after=after, posted=posted, code="ratelimited")
        permanent = code in PERMANENT
        if permanent:
            log.error("Slack refuses to post to %s: %s (fix the channel or token; not retried)", channel, code)
        return DeliveryError(f"{channel}: {code}", permanent=permanent, posted=posted, code=code)
