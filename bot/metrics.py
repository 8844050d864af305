"""Prometheus metrics of one `stagebot serve` process, at GET /metrics.

Counters are per process (Prometheus sums them over replicas): commands and button presses by
result, transitions by stage, deliveries by platform, result and error code, HTTP requests by
route and status, scheduler runs. Gauges read from the shared database at scrape time (outbox
depth, age of the oldest due row, dead letters) are the same on every replica: aggregate them
with max(), not sum().
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from adapters.common import telemetry
from lifecycle.db.tables import OUTBOX
from lifecycle.db.uow import Database

log = logging.getLogger("stagebot.metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class OutboxCollector(Collector):
    """Outbox depth and age, read from the database when Prometheus scrapes (one GROUP BY)."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self.db, self.now = db, now

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily("stagebot_outbox_pending", "Notifications waiting to be delivered", labels=["target"])
        age = GaugeMetricFamily(
            "stagebot_outbox_oldest_pending_age_seconds",
            "Age of the oldest notification still waiting, by target",
            labels=["target"],
        )
        dead = GaugeMetricFamily(
            "stagebot_outbox_dead", "Notifications a platform refused for good (see check-config)", labels=["target"]
        )
        up = GaugeMetricFamily("stagebot_database_up", "1 if the database answered this scrape")
        try:
            with self.db.reader() as uow:
                rows = uow.conn.execute(
                    select(OUTBOX.c.target, OUTBOX.c.status, func.count(), func.min(OUTBOX.c.created_at))
                    .where(OUTBOX.c.status.in_(["pending", "dead"]))
                    .group_by(OUTBOX.c.target, OUTBOX.c.status)
                ).all()
        except Exception as exc:  # the scrape must still answer, saying the database is down
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        now = self.now()
        for target, status, n, oldest in rows:
            if status == "pending":
                depth.add_metric([target], n)
                if oldest is not None:
                    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
                    age.add_metric([target], max((now - oldest).total_seconds(), 0.0))
            else:
                dead.add_metric([target], n)
        up.add_metric([], 1)
        yield from (depth, age, dead, up)


class Metrics:
    """The metrics of one running stagebot, in a registry of its own (several can live in one test process)."""

    def __init__(self, db: Database, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.commands = Counter(
            "stagebot_commands",
            "Commands and button presses by platform, kind and result",
            ["platform", "kind", "result"],
            registry=r,
        )
        self.transitions = Counter(
            "stagebot_transitions",
            "Accounts entering a stage, by stage and platform",
            ["stage", "platform"],
            registry=r,
        )
        self.deliveries = Counter(
            "stagebot_deliveries",
            "Notification deliveries by platform, result and error code",
            ["platform", "result", "code"],
            registry=r,
        )
        self.http = Counter(
            "stagebot_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "stagebot_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scheduler_runs = Counter("stagebot_scheduler_runs", "Scheduler ticks by result", ["result"], registry=r)
        self.scheduler_lag = Gauge(
            "stagebot_scheduler_lag_seconds", "How late the last scheduler tick started after it was due", registry=r
        )
        self.scheduler_last = Gauge(
            "stagebot_scheduler_last_success_timestamp_seconds", "When the last scheduler tick succeeded", registry=r
        )
        self.started = Gauge("stagebot_start_time_seconds", "When this process started", registry=r)
        self.started.set(time.time())
        r.register(OutboxCollector(db, now))
        self._detach = telemetry.attach(self.on_answer, self.on_transition)

    def close(self) -> None:
        self._detach()

    # hooks -------------------------------------------------------------------------------------

    def on_answer(self, platform: str, kind: str, result: str) -> None:
        self.commands.labels(platform, kind, result).inc()

    def on_transition(self, platform: str, stage: str) -> None:
        self.transitions.labels(stage, platform).inc()

    def on_delivery(self, target: str, result: str, code: str) -> None:
        self.deliveries.labels(target, result, code or "").inc()

    def on_request(self, route: str, status: int, seconds: float) -> None:
        self.http.labels(route, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    def on_tick(self, ok: bool, lag: float) -> None:
        self.scheduler_runs.labels("ok" if ok else "error").inc()
        self.scheduler_lag.set(max(lag, 0.0))
        if ok:
            self.scheduler_last.set(time.time())

    # the endpoint ------------------------------------------------------------------------------

    def handler(self) -> Callable[[bytes, dict[str, str], str], tuple[int, dict[str, str], bytes]]:
        def metrics(raw: bytes, headers: dict[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
            return 200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self.registry)

        return metrics


def sample(text: str, name: str, **labels: Any) -> float | None:
    """One sample's value from an exposition text (for tests and the load bench)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items()):
                return float(s.value)
    return None
