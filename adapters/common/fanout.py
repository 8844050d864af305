"""What every chat notifier does the same: which events post, to which team places, and in what order.

The Slack and Feishu notifiers supply only how one message is posted or one card redrawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from adapters.common.pacing import Pacing
from lifecycle.delivery.outbox import Delivery, Posted
from lifecycle.domain import events as ev

SILENT = (ev.ChecklistTicked,)  # too small to post; visible on the account card
UPDATES = (ev.ApprovalDecided, ev.HandoffClaimed)  # redraw the card posted before instead of posting


def fan_out(
    delivery: Delivery, places: Mapping[str, str], pacer: Pacing, post: Callable[[str, list[Posted]], Posted]
) -> list[Posted]:
    """`post(place, posted_so_far)` once per place of the event's audience, paced per place.

    Places with no configuration, and places a retried delivery already reached, are skipped.
    """
    posted: list[Posted] = []
    for team in delivery.event.audience:
        place = places.get(team)
        if place is None or place in delivery.already_posted:
            continue
        pacer.take(place, posted)
        posted.append(post(place, posted))
    return posted


def shown_request(shown: ev.Event | None) -> ev.ApprovalRequested | None:
    """The approval request a decided card was drawn from, if that is what the posted card showed."""
    return shown if isinstance(shown, ev.ApprovalRequested) else None


def shown_handoff(shown: ev.Event | None) -> ev.HandoffOpened | None:
    """The handoff prompt a claimed card was drawn from, if that is what the posted card showed."""
    return shown if isinstance(shown, ev.HandoffOpened) else None


class TeamNotifier:
    """The deliver() both chat notifiers share: silent events post nothing, decisions redraw the
    posted card, everything else goes to each team place of its audience."""

    pacer: Pacing

    def places(self) -> Mapping[str, str]:
        raise NotImplementedError

    def poster(self, delivery: Delivery) -> Callable[[str, list[Posted]], Posted]:
        """What posts this delivery's message to one place (built once, used per place)."""
        raise NotImplementedError

    def _update_card(self, delivery: Delivery) -> Iterable[Posted]:
        raise NotImplementedError

    def deliver(self, delivery: Delivery) -> Iterable[Posted]:
        e = delivery.event
        if isinstance(e, SILENT):
            return ()
        if isinstance(e, UPDATES):
            return self._update_card(delivery)
        return fan_out(delivery, self.places(), self.pacer, self.poster(delivery))
