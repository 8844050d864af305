"""The lifecycle core: the pipeline and its rules (domain/), the use cases that change accounts
(usecases/), the reads and reports (read/), storage (db/) and the outbox that delivers events
(delivery/). Adapters talk to `Lifecycle`; the composition root builds it with the names below.

Imports no chat SDK, no scheduler and nothing from `adapters/` or `bot/` (tests/unit/test_layering.py).
"""

from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.delivery.outbox import Delivery, DeliveryDeferred, DeliveryError, Dispatcher, Notifier, Posted
from lifecycle.domain.access import Actor, Roster
from lifecycle.domain.clock import Clock, FixedClock, SystemClock
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.pipeline import Pipeline, load_preset
from lifecycle.domain.rules import Rules

__all__ = [
    "Actor",
    "Clock",
    "Database",
    "Delivery",
    "DeliveryDeferred",
    "DeliveryError",
    "Dispatcher",
    "FixedClock",
    "Lifecycle",
    "LifecycleError",
    "Notifier",
    "Pipeline",
    "Posted",
    "Roster",
    "Rules",
    "SystemClock",
    "load_preset",
    "make_engine",
    "upgrade",
]
