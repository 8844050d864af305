"""The managers' report, computed in SQL: funnel, conversion, time in stage, bottleneck, forecast.

Every figure is an aggregate the database computes (GROUP BY over the insert-only history, whose
rows each close a stay, and over the accounts, whose current stays are still going; medians by
skipping to the middle of each stage's stays in index order); Python only combines a few dozen
aggregated rows with the pipeline (which transitions count as converting, win probabilities).
Definitions:

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
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Connection,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)

from lifecycle.db.tables import ACC, HIST
from lifecycle.db.uow import UnitOfWork
from lifecycle.domain import commands as c
from lifecycle.domain.clock import Clock
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.rules import Rules
from lifecycle.domain.views import ForecastLine, Report, StageFigures

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
    if q.owner:  # the person named (a people key, an email, an @mention), as their accounts are stored
        owner = rules.roster.find(q.owner, q.actor.platform) or q.owner.lstrip("@")
        q = replace(q, owner=owner if ":" in owner else f"{q.actor.platform}:{owner}")
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
    filters = _account_filter(q)
    # A stay is a stage entry and how long it lasted. Stays that ended are history rows (each row
    # closes the stay in its `from_stage`); stays still going are the accounts' current stages,
    # counted up to now. A stay belongs to the period it began in.
    ended_from = HIST.join(ACC, ACC.c.id == HIST.c.account_id) if filters else HIST
    ended_in_period = and_(HIST.c.from_entered_at >= since, HIST.c.from_entered_at < until, *filters)
    ongoing_in_period = and_(ACC.c.stage_entered_at >= since, ACC.c.stage_entered_at < until, *filters)
    ongoing_seconds = literal(now.timestamp()) - _epoch(ACC.c.stage_entered_at, s.dialect.name)

    # Per stage: its ended stays, how many of them moved forward (along an `advance` transition of
    # the stage: conversion), and their total length. Grouped by the stage alone, so SQLite reads
    # the stay index in order instead of sorting the history.
    forward = {st.key: sorted({t.target for t in p.next_stages(st.key) if t.kind == "advance"}) for st in p.stages}
    moved_on = or_(false(), *(and_(HIST.c.from_stage == k, HIST.c.to_stage.in_(ts)) for k, ts in forward.items() if ts))
    ended = s.execute(
        select(
            HIST.c.from_stage,
            func.count(),
            func.sum(case((moved_on, 1), else_=0)),
            func.sum(HIST.c.stay_seconds),
        )
        .select_from(ended_from)
        .where(ended_in_period)
        .group_by(HIST.c.from_stage)
    ).all()
    ongoing = s.execute(
        select(
            ACC.c.stage,
            func.count(),
            func.sum(case((ongoing_in_period, 1), else_=0)),
            func.sum(case((ongoing_in_period, ongoing_seconds), else_=0.0)),
        )
        .where(*filters)
        .group_by(ACC.c.stage)
    ).all()
    count: dict[str, int] = defaultdict(int)
    converted: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    for stage, n, forward_n, total in ended:
        count[stage] += int(n)
        converted[stage] += int(forward_n or 0)
        seconds[stage] += float(total or 0)
    for stage, _all, n, total in ongoing:
        count[stage] += int(n or 0)
        seconds[stage] += float(total or 0)
    averages = {k: seconds[k] / n for k, n in count.items() if n}
    medians = {
        k: _median(s, k, n, ended_from, ended_in_period, ongoing_in_period, ongoing_seconds)
        for k, n in count.items()
        if n
    }
    now_in: dict[str, int] = {stage: int(n) for stage, n, _, _ in ongoing}
    out = []
    for st in p.stages:
        e = count.get(st.key, 0)
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


def _median(
    s: Connection,
    stage: str,
    n: int,
    ended_from: Any,
    ended_in_period: ColumnElement[bool],
    ongoing_in_period: ColumnElement[bool],
    ongoing_seconds: ColumnElement[Any],
) -> float:
    """The median length of a stage's `n` stays: the middle one or two of its ended and ongoing
    stays in order of length. The ended ones come in that order from the stay index, so the database
    merges the two and skips to the middle instead of sorting every stay of the stage."""
    lo, hi = (n - 1) // 2, n // 2
    dur: ColumnClause[Any] = literal_column("dur")
    ended = (
        select(HIST.c.stay_seconds.label("dur"))
        .select_from(ended_from)
        .where(HIST.c.from_stage == stage, ended_in_period)
    )
    ongoing = select(ongoing_seconds.label("dur")).where(ACC.c.stage == stage, ongoing_in_period)
    middle = s.execute(union_all(ended, ongoing).order_by(dur).limit(hi - lo + 1).offset(lo)).scalars().all()
    return sum(float(x) for x in middle) / len(middle)


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
