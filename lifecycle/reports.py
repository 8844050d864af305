"""The managers' report, computed in SQL: funnel, conversion, time in stage, bottleneck, forecast.

Every figure is an aggregate the database computes (window functions over the insert-only
history, GROUP BY over accounts); Python only combines a few dozen aggregated rows with the
pipeline (which transitions count as converting, win probabilities). Definitions:

* entries of a stage: history rows entering it in the period (creations included);
* converted: entries whose very next change moved the account forward along an `advance`
  transition of that stage; conversion = converted / entries;
* time in stage: from each entry to the account's next change, or to now while it is still there;
  average and median in days, per stage;
* bottleneck: the non-terminal stage with the longest median time in stage (ties: lower conversion);
* forecast: amounts of the accounts now in each stage, weighted by the stage's win probability;
  plus the raw SQL + P0 amount the seed asks for, and contracts ending next quarter.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, literal, select

from lifecycle import commands as c
from lifecycle.clock import Clock
from lifecycle.db.uow import UnitOfWork
from lifecycle.pipeline import Pipeline
from lifecycle.services.base import ACC, HIST, Rules
from lifecycle.views import ForecastLine, Report, StageFigures

DAY_SECONDS = 86400.0


def _epoch(col: Any, dialect: str) -> ColumnElement[Any]:
    """Seconds since 1970 of a datetime column, in either dialect (SQLite stores UTC text)."""
    if dialect == "sqlite":
        return (func.julianday(col) - 2440587.5) * DAY_SECONDS
    return func.extract("epoch", col)


def _quarter_after(today: date) -> tuple[date, date]:
    q = (today.month - 1) // 3 + 1
    start_month = q * 3 + 1
    year = today.year + (1 if start_month > 12 else 0)
    start = date(year, (start_month - 1) % 12 + 1, 1)
    end_month = start.month + 3
    end = date(start.year + (1 if end_month > 12 else 0), (end_month - 1) % 12 + 1, 1)
    return start, end


def report(q: c.ShowReport, *, uow: UnitOfWork, clock: Clock, rules: Rules) -> Report:
    now = clock.now()
    p = rules.pipeline
    since = q.since or datetime(1970, 1, 1, tzinfo=UTC)
    until = q.until or now + timedelta(seconds=1)
    with uow:
        s = uow.conn
        figures = _stage_figures(s, p, q, since, until, now)
        forecast, weighted, sql_p0 = _forecast(s, p, q)
        renew_count, renew_amount = _renewals_next_quarter(s, p, q, now)
    shown = [f for f in figures if q.team is None or q.team in p.stage(f.stage).owners]
    candidates = [f for f in shown if not p.stage(f.stage).terminal and f.median_days is not None]
    bottleneck = max(candidates, key=lambda f: (f.median_days or 0, -(f.conversion or 0)), default=None)
    return Report(
        since=q.since,
        until=q.until,
        team=q.team,
        owner=q.owner,
        segment=q.segment,
        stages=tuple(shown),
        bottleneck=bottleneck.stage if bottleneck else None,
        forecast=forecast,
        weighted_total=weighted,
        sql_p0_amount=sql_p0,
        renewals_next_quarter=renew_count,
        renewals_next_quarter_amount=renew_amount,
        generated_at=now,
    )


def _account_filter(q: c.ShowReport) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.owner:
        where.append(ACC.c.owner == q.owner)
    if q.segment:
        where.append(ACC.c.segment == q.segment)
    return where


def _stage_figures(
    s: Connection, p: Pipeline, q: c.ShowReport, since: datetime, until: datetime, now: datetime
) -> list[StageFigures]:
    dialect = s.dialect.name
    order = (HIST.c.at, HIST.c.id)
    source = HIST.join(ACC, ACC.c.id == HIST.c.account_id) if _account_filter(q) else HIST
    seq = (
        select(
            HIST.c.to_stage.label("stage"),
            HIST.c.at,
            func.lead(HIST.c.to_stage).over(partition_by=HIST.c.account_id, order_by=order).label("next_stage"),
            func.lead(HIST.c.at).over(partition_by=HIST.c.account_id, order_by=order).label("left_at"),
        )
        .select_from(source)
        .where(*_account_filter(q))
        .subquery("seq")
    )
    # Time in stage: still there counts up to now.
    now_epoch = literal(now.timestamp())
    ended = case((seq.c.left_at.is_(None), now_epoch), else_=_epoch(seq.c.left_at, dialect))
    entry = (
        select(seq.c.stage, seq.c.next_stage, (ended - _epoch(seq.c.at, dialect)).label("dur"))
        .where(seq.c.at >= since, seq.c.at < until)
        .subquery("entry")
    )
    # One pass over the history (one LEAD window): per (stage, next stage) the count and the total
    # duration, and for the median the rows in the middle of each stage's durations.
    ranked = select(
        entry.c.stage,
        entry.c.next_stage,
        entry.c.dur,
        func.row_number().over(partition_by=entry.c.stage, order_by=entry.c.dur).label("rn"),
        func.count().over(partition_by=entry.c.stage).label("cnt"),
    ).subquery("ranked")
    is_middle = ranked.c.rn.in_([(ranked.c.cnt + 1) // 2, (ranked.c.cnt + 2) // 2])  # one or both middles
    rows = s.execute(
        select(
            ranked.c.stage,
            ranked.c.next_stage,
            func.count(),
            func.sum(ranked.c.dur),
            func.sum(case((is_middle, ranked.c.dur), else_=0)),
            func.sum(case((is_middle, 1), else_=0)),
        ).group_by(ranked.c.stage, ranked.c.next_stage)
    ).all()
    moves = [(stage, nxt, int(n)) for stage, nxt, n, _, _, _ in rows]
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # n, sum, middle sum, middles
    for stage, _nxt, n, total, mid_sum, mids in rows:
        t = totals[stage]
        t[0] += int(n)
        t[1] += float(total or 0)
        t[2] += float(mid_sum or 0)
        t[3] += int(mids or 0)
    averages = {k: t[1] / t[0] for k, t in totals.items() if t[0]}
    medians = {k: t[2] / t[3] for k, t in totals.items() if t[3]}
    now_in: dict[str, int] = {
        r[0]: r[1]
        for r in s.execute(select(ACC.c.stage, func.count()).where(*_account_filter(q)).group_by(ACC.c.stage))
    }
    entries: dict[str, int] = defaultdict(int)
    converted: dict[str, int] = defaultdict(int)
    forward = {st.key: {t.target for t in p.next_stages(st.key) if t.kind == "advance"} for st in p.stages}
    for stage, nxt, n in moves:
        entries[stage] += n
        if nxt is not None and nxt in forward.get(stage, set()):
            converted[stage] += n
    out = []
    for st in p.stages:
        e = entries.get(st.key, 0)
        has_forward = bool(forward.get(st.key))
        out.append(
            StageFigures(
                stage=st.key,
                entries=e,
                converted=converted.get(st.key, 0),
                conversion=(converted.get(st.key, 0) / e) if e and has_forward else None,
                avg_days=float(averages[st.key]) / DAY_SECONDS if st.key in averages else None,
                median_days=float(medians[st.key]) / DAY_SECONDS if st.key in medians else None,
                in_stage_now=int(now_in.get(st.key, 0)),
            )
        )
    return out


def _forecast(s: Connection, p: Pipeline, q: c.ShowReport) -> tuple[tuple[ForecastLine, ...], Decimal, Decimal]:
    rows = s.execute(
        select(ACC.c.stage, func.count(), func.coalesce(func.sum(ACC.c.amount), 0))
        .where(*_account_filter(q))
        .group_by(ACC.c.stage)
    ).all()
    by_stage = {stage: (int(n), Decimal(str(total))) for stage, n, total in rows}
    lines = []
    weighted_total = Decimal(0)
    for st in p.stages:
        if st.key not in by_stage or st.terminal:
            continue
        n, total = by_stage[st.key]
        weighted = (total * Decimal(str(st.win_probability))).quantize(Decimal("0.01"))
        weighted_total += weighted
        lines.append(
            ForecastLine(stage=st.key, accounts=n, amount=total, probability=st.win_probability, weighted=weighted)
        )
    sql_p0 = sum((by_stage[k][1] for k in ("SQL", "P0") if k in by_stage), Decimal(0))
    return tuple(lines), weighted_total, sql_p0


def _renewals_next_quarter(s: Connection, p: Pipeline, q: c.ShowReport, now: datetime) -> tuple[int, Decimal]:
    start, end = _quarter_after(now.date())
    n, total = s.execute(
        select(func.count(), func.coalesce(func.sum(ACC.c.amount), 0)).where(
            ACC.c.contract_end >= start, ACC.c.contract_end < end, *_account_filter(q)
        )
    ).one()
    return int(n), Decimal(str(total))
