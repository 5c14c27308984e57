"""KPIs over the outcome log, as docs/kpis.md defines them: for a period (and a queue),
in all or broken down by queue, agent, campaign, flow, hour or day of the call's start in
the center's time zone. The reports page and `ivr report` show them
(cti/reports/export.py: their CSV, JSON and terminal table).

The figures are ratios of sums over calls (cti/reports/parts.py). In all, by hour, by day
and by queue, the sums come from the 15-minute interval rollups where they are up to
date and from the calls elsewhere (cti/reports/intervals.py); by agent, campaign or flow
from the calls. Hours and days are sums of UTC buckets (hours, or quarter hours in zones
whose offset is not whole hours): no time zone arithmetic per call. `breakdowns` works
the buckets out once for all, by hour and by day (the reports page shows the three).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cti.reports import intervals
from cti.reports.parts import (
    INTERVAL,
    OUTCOMES,
    Grouping,
    Parts,
    PartsQuery,
    Period,
    Thresholds,
    zone_named,
)
from cti.store.models import Commitment

__all__ = [
    "DIMENSIONS",
    "OUTCOMES",
    "Kpis",
    "Period",
    "Thresholds",
    "breakdowns",
    "commitments_past_due",
    "kpis",
]

DIMENSIONS = ("queue", "agent", "campaign", "flow", "hour", "day")


@dataclass(frozen=True)
class Kpis:
    """The figures of one group of ended calls (`group` None: all of them, or the calls
    without a value of the breakdown's dimension; hours are "00" to "23", days ISO
    dates). Ratios are 0..1 and NPS -100..100; times are seconds; a figure whose
    denominator is 0 is None. docs/kpis.md defines each."""

    group: str | None
    calls: int
    ivr_calls: int  # entered the IVR (a flow ran)
    contained: int  # of those, outcome contained
    abandoned_ivr: int  # of those, outcome abandoned_ivr
    offered: int  # joined a queue
    short_abandons: int  # abandoned in the queue sooner than the short-abandon threshold
    answered: int  # outcome answered
    answered_in_time: int  # answered from a queue within the service level threshold
    abandoned_queue: int  # outcome abandoned_queue, short abandons included
    callback_requested: int  # outcome callback_requested
    transferred: int  # an agent transferred it, or the IVR transferred it out
    failed: int  # outcome failed
    service_level: float | None
    asa: float | None
    abandon_rate_queue: float | None
    abandon_rate_ivr: float | None
    aht: float | None
    avg_talk: float | None
    avg_hold: float | None
    avg_wrapup: float | None
    fcr: float | None
    repeat_rate: float | None
    containment: float | None
    callbacks: int  # callback calls dialled
    callbacks_reached: int  # of those, answered by an agent
    callback_success: float | None
    time_to_callback: float | None
    csat: float | None
    csat_answers: int
    nps: float | None
    nps_answers: int
    outcomes: dict[str, int]  # every outcome, 0 included
    fcr_calls: int = 0  # answered inbound calls of a known customer: FCR's denominator
    repeats: int = 0  # of those, followed by another inbound call within the window


def kpis(
    db: Session, period: Period, thresholds: Thresholds, zone: ZoneInfo, by: str | None = None
) -> list[Kpis]:
    """One row per group of `by` (one of DIMENSIONS), ordered by group (None last); one
    row with group None when `by` is None. Only ended calls (outcome set) count."""
    return breakdowns(db, period, thresholds, zone, by)[by]


def breakdowns(
    db: Session, period: Period, thresholds: Thresholds, zone: ZoneInfo, *bys: str | None
) -> dict[str | None, list[Kpis]]:
    """`kpis` by each of `bys` at once: in all, by hour and by day come from one pass
    over the calls (the reports page shows the three)."""
    for by in bys:
        if by is not None and by not in DIMENSIONS:
            raise ValueError(f"unknown breakdown {by!r}: expected one of {', '.join(DIMENSIONS)}")
    for name, moment in (("start", period.start), ("end", period.end)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"the period's {name} needs a time zone: {moment.isoformat()}")
    width = _bucket_width(zone)
    buckets: dict[Any, Parts] | None = None
    found: dict[str | None, list[Kpis]] = {}
    for by in bys:
        groups: dict[Any, Parts] | None = None
        if by in (None, "hour", "day"):
            if buckets is None:
                buckets = intervals.sums(db, period, thresholds, width, by_queue=False)
            groups = _roll_up(buckets, width, zone, by)
        elif by == "queue":
            groups = intervals.sums(db, period, thresholds, width, by_queue=True)
        if groups is None:  # by a column, or a zone whose hours the buckets do not fit
            grouping = Grouping("local", by, zone=str(zone)) if by in ("hour", "day") else None
            grouping = grouping or Grouping("column", by)
            groups = PartsQuery(db, period, thresholds, grouping).parts()
        if by is None and not groups:
            groups = {None: Parts()}
        rows = [_kpis(group, parts) for group, parts in groups.items()]
        found[by] = sorted(rows, key=lambda row: (row.group is None, row.group or ""))
    return found


def commitments_past_due(db: Session, today: date) -> int:
    """Commitments still open whose due date is before `today`."""
    query = select(func.count()).where(Commitment.status == "open", Commitment.due < today)
    return db.scalar(query) or 0


def _kpis(group: str | None, p: Parts) -> Kpis:
    queued = p.offered - p.short_abandons  # service level's and queue abandons' denominator
    answered = p.answered or None
    return Kpis(
        group=group,
        calls=p.calls,
        ivr_calls=p.ivr_calls,
        contained=p.contained,
        abandoned_ivr=p.abandoned_ivr,
        offered=p.offered,
        short_abandons=p.short_abandons,
        answered=p.answered,
        answered_in_time=p.answered_in_time,
        abandoned_queue=p.abandoned_queue,
        callback_requested=p.callback_requested,
        transferred=p.transferred,
        failed=p.failed,
        service_level=_ratio(p.answered_in_time, queued),
        asa=_ratio(p.wait, p.waited),
        abandon_rate_queue=_ratio(p.abandoned_queue - p.short_abandons, queued),
        abandon_rate_ivr=_ratio(p.abandoned_ivr, p.ivr_calls),
        aht=answered and (p.talk + p.hold + p.wrapup) / answered,
        avg_talk=answered and p.talk / answered,
        avg_hold=answered and p.hold / answered,
        avg_wrapup=answered and p.wrapup / answered,
        fcr=_ratio(p.fcr_calls - p.repeats, p.fcr_calls),
        repeat_rate=_ratio(p.repeats, p.fcr_calls),
        containment=_ratio(p.contained, p.ivr_calls),
        callbacks=p.callbacks,
        callbacks_reached=p.callbacks_reached,
        callback_success=_ratio(p.callbacks_reached, p.callbacks),
        time_to_callback=_ratio(p.callback_seconds, p.callback_requests),
        csat=_ratio(p.satisfied, p.csat_answers),
        csat_answers=p.csat_answers,
        nps=None if not p.nps_answers else (p.promoters - p.detractors) * 100 / p.nps_answers,
        nps_answers=p.nps_answers,
        outcomes=dict(p.outcomes),
        fcr_calls=p.fcr_calls,
        repeats=p.repeats,
    )


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else part / whole


# -- hours and days from UTC buckets -----------------------------------------------------------


def _bucket_width(zone: ZoneInfo) -> int:
    """An hour where the zone's offsets are whole hours (in 1970-2100, as far as
    quarterly samples show: `_roll_up` checks the buckets it gets), else 15 minutes."""
    return 3600 if _whole_hours(str(zone)) else INTERVAL


@lru_cache(maxsize=32)
def _whole_hours(name: str) -> bool:
    zone = zone_named(name)
    return all(
        (datetime(year, month, 1, tzinfo=UTC).astimezone(zone).utcoffset() or timedelta())
        % timedelta(hours=1)
        == timedelta()
        for year in range(1970, 2101)
        for month in (1, 4, 7, 10)
    )


def _roll_up(
    buckets: dict[Any, Parts], width: int, zone: ZoneInfo, by: str | None
) -> dict[Any, Parts] | None:
    """The buckets added up into local hours or days, or all into one; None where a
    bucket does not lie within one local hour (an offset the width does not divide)."""
    found: dict[Any, Parts] = {}
    for number, parts in buckets.items():
        first = datetime.fromtimestamp(number * width, UTC)
        start = first.astimezone(zone)
        last = (first + timedelta(seconds=width, microseconds=-1)).astimezone(zone)
        offset = start.utcoffset() or timedelta()
        if by is not None and (offset != last.utcoffset() or offset.total_seconds() % width):
            return None
        key = None if by is None else f"{start.hour:02d}" if by == "hour" else str(start.date())
        found.setdefault(key, Parts()).merge(parts)
    return found
