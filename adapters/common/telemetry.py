"""What the adapters report as they answer people: the hooks `stagebot serve` attaches its metrics
to (bot/metrics.py). They do nothing until then, so tests and the console pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.common.grammar import Help
from lifecycle.domain.views import Outcome

# (platform, kind, result): kind is "command" (typed) or "button"; result is one of RESULTS.
Observer = Callable[[str, str, str], None]
# (platform, stage): an account entered `stage` through a command or a button.
TransitionObserver = Callable[[str, str], None]
RESULTS = ("applied", "replayed", "read", "help", "refused", "error")

_observers: list[Observer] = []
_transition_observers: list[TransitionObserver] = []


def attach(on_answer: Observer, on_transition: TransitionObserver) -> Callable[[], None]:
    """Start reporting to these two; the returned function stops it."""
    _observers.append(on_answer)
    _transition_observers.append(on_transition)

    def detach() -> None:
        _observers.remove(on_answer)
        _transition_observers.remove(on_transition)

    return detach


def result_of(answer: object, *, failed: bool = False, bug: bool = False) -> str:
    if bug:
        return "error"
    if failed:
        return "refused"
    if isinstance(answer, Outcome):
        return "replayed" if answer.replayed else "applied"
    if isinstance(answer, Help):
        return "help"
    return "read"


def answered(platform: str, kind: str, answer: object, *, failed: bool = False, bug: bool = False) -> None:
    """Report one command or button press and, when it moved an account, the stage it entered."""
    if not _observers:
        return
    result = result_of(answer, failed=failed, bug=bug)
    for observe in _observers:
        observe(platform or "unknown", kind, result)
    if isinstance(answer, Outcome) and not answer.replayed and answer.to_stage and answer.to_stage != answer.from_stage:
        for on_transition in _transition_observers:
            on_transition(platform or "unknown", answer.to_stage)
