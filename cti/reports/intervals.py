"""Interval rollups: the KPI sums of each 15-minute interval and queue, which the
dashboard reads instead of going over every call of its period.

An interval is [bucket * 900, (bucket + 1) * 900) in Unix time; a row of kpi_intervals
holds the sums (cti/reports/parts.py) of the ended calls that started in it, for one
queue. A period's sums are those of its intervals: a call's sums do not depend on the
period it is counted in.

Keeping them right:

- The database's own triggers (migration 0008) write a mark for each interval whose
  calls or survey answers change, whatever writes them.
- A call's sums also depend on other calls: an answered call is a repeat if the
  customer calls again within the repeat window, and a callback call is the first
  answered one of its request or not. So a marked interval also makes stale the
  intervals of the customer's earlier answered calls and of the request's other calls
  (`stale`), and the refresher marks nothing for them.
- The refresher (`refresh`, every `reports.rollup_seconds` in `ivr serve`) works the stale
  intervals out again, newest first, and drops the marks it read, by id: a mark
  written meanwhile stays for the next round.
- Until then, `sums` works out whatever is stale from the calls themselves, so a
  period's figures are always those of its calls.
- The rollups hold one set of thresholds (kpi_rollup). Under other thresholds `sums`
  reads the calls; when the refresher's thresholds change, it starts over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from cti.reports.parts import (
    CALLS,
    INTERVAL,
    PART_TYPES,
    Grouping,
    Parts,
    PartsQuery,
    Period,
    Thresholds,
)
from cti.reports.traffic import NodeDropoff, Tally, dropoff_rows, node_tally
from cti.store.models import KpiInterval, KpiMark, KpiRollup, NodeInterval

log = logging.getLogger(__name__)

INTERVALS = KpiInterval.__table__
NODES = NodeInterval.__table__
MARKS = KpiMark.__table__
ROLLUP = KpiRollup.__table__
BUCKET = Grouping("bucket", width=INTERVAL)
SUMS = (*PART_TYPES, *(c.name for c in INTERVALS.c if c.name.startswith("outcome_")))
MOST_RANGES = 8  # stale intervals read from the calls in at most this many time ranges
JOIN_GAP = 64  # intervals: a gap this short between stale ones is read from the calls too
CHUNK = 96  # marked intervals the refresher works out in one transaction (a day)
SHIFT = 10**7  # buckets since 1970 plus this are positive back to year 0


def key_of(thresholds: Thresholds) -> str:
    t = thresholds
    return f"{t.answer_seconds:g}/{t.short_abandon_seconds:g}/{t.repeat_hours:g}"


def at(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * INTERVAL, UTC)


def bucket_of(moment: datetime) -> int:
    return int(moment.timestamp() // INTERVAL)


def spans(buckets: Iterable[int]) -> list[tuple[int, int]]:
    """`buckets` as [first, end) ranges, in order, for the queries that read them from
    the calls. A query costs about as much whatever its range's length, up to some
    hours of calls, so gaps shorter than JOIN_GAP intervals are read too, and the
    smallest gaps are filled in where there would be more than MOST_RANGES ranges."""
    ordered = sorted(set(buckets))
    if not ordered:
        return []
    gaps = [i for i in range(len(ordered) - 1) if ordered[i + 1] - ordered[i] - 1 > JOIN_GAP]
    gaps.sort(key=lambda i: ordered[i + 1] - ordered[i], reverse=True)
    found, first = [], ordered[0]
    for i in sorted(gaps[: MOST_RANGES - 1]):
        found.append((first, ordered[i] + 1))
        first = ordered[i + 1]
    found.append((first, ordered[-1] + 1))
    return found


def _starting_in(columns: Any, ranges: list[tuple[int, int]]) -> ColumnElement[bool]:
    return or_(*(and_(columns.started_at >= at(a), columns.started_at < at(b)) for a, b in ranges))


def _before(moment: datetime, hours: float) -> datetime:
    try:
        return moment - timedelta(hours=hours)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def stale(
    db: Session, thresholds: Thresholds, marks: list[Any], skip: set[int] = frozenset()
) -> set[int]:
    """The intervals of `marks` (rows of kpi_marks) and those whose sums the marked
    calls move: the earlier answered inbound calls, within the repeat window, of the
    customers of the marked intervals' inbound calls (and of a mark's former customer);
    the other calls of the requests of their callback calls. `skip`: intervals not to
    look for (still marked)."""
    buckets = {mark.bucket for mark in marks}
    if not buckets:
        return set()
    ranges = spans(buckets)
    dialect = db.get_bind().dialect.name
    changed, earlier = CALLS.alias("changed").c, CALLS.alias("earlier").c
    within = _starting_in(changed, ranges)
    ids = select(changed.customer_id).where(
        changed.kind == "inbound", changed.customer_id.is_not(None), within
    )
    numbers = select(changed.caller_number).where(
        changed.kind == "inbound", changed.customer_id.is_(None), within
    )
    former_ids = [m.customer_id for m in marks if m.customer_id is not None]
    former_numbers = [m.caller_number for m in marks if m.customer_id is None and m.caller_number]
    first, end = at(ranges[0][0]), at(ranges[-1][1])
    bucket = BUCKET.expression(earlier, dialect)
    repeats = (
        select(bucket)
        .distinct()
        .where(
            earlier.kind == "inbound",
            earlier.outcome == "answered",
            earlier.started_at >= _before(first, thresholds.repeat_hours),
            earlier.started_at < end,
            or_(
                earlier.customer_id.in_(ids),
                earlier.customer_id.in_(former_ids),
                and_(
                    earlier.customer_id.is_(None),
                    or_(
                        earlier.caller_number.in_(numbers),
                        earlier.caller_number.in_(former_numbers),
                    ),
                ),
            ),
        )
    )
    requests = select(changed.callback_id).where(
        changed.kind == "callback", changed.callback_id.is_not(None), within
    )
    callbacks = (
        select(bucket)
        .distinct()
        .where(
            earlier.kind == "callback",
            earlier.callback_id.in_(requests),
            earlier.started_at >= first,
        )
    )
    found = set(buckets)
    for query in (repeats, callbacks):
        found.update(int(b) for b in db.scalars(query) if b is not None)
    return found - (set(skip) - buckets)


def pending(db: Session) -> list[Any]:
    return list(
        db.execute(select(MARKS.c.id, MARKS.c.bucket, MARKS.c.customer_id, MARKS.c.caller_number))
    )


def rolled_up_for(db: Session, thresholds: Thresholds) -> bool:
    return db.scalar(select(ROLLUP.c.thresholds)) == key_of(thresholds)


# -- reading --------------------------------------------------------------------------------


def split(
    db: Session, period: Period, thresholds: Thresholds, knock_on: bool = True
) -> tuple[list[tuple[datetime, datetime]], list[tuple[int, int]]]:
    """The period as the time ranges to read from the calls and the ranges of intervals
    (bucket numbers, [first, end)) whose rollups are up to date: those wholly in the
    period, unless stale (`knock_on`: also as other calls make them, see `stale`; a
    call's node counts depend on it alone)."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    first = bucket_of(start) + (at(bucket_of(start)) < start)  # the first whole interval
    last = bucket_of(end)  # the end of the last
    if first >= last or not rolled_up_for(db, thresholds):
        return [(start, end)], []
    marks = pending(db)
    dirty = stale(db, thresholds, marks) if knock_on else {mark.bucket for mark in marks}
    dirty = {b for b in dirty if first <= b < last}
    live, rolled = [(start, at(first)), (at(last), end)], []
    cursor = first
    for a, b in spans(dirty):
        rolled.append((cursor, a))
        live.append((at(a), at(b)))
        cursor = b
    rolled.append((cursor, last))
    return [(a, b) for a, b in live if a < b], [(a, b) for a, b in rolled if a < b]


def sums(
    db: Session, period: Period, thresholds: Thresholds, width: int, by_queue: bool
) -> dict[Any, Parts]:
    """The sums of the period's calls by bucket of `width` seconds (a multiple of
    INTERVAL) or by queue: the up-to-date rollups, and the calls of the rest."""
    live, rolled = split(db, period, thresholds)
    grouping = Grouping("column", "queue") if by_queue else Grouping("bucket", width=width)
    found: dict[Any, Parts] = {}
    for a, b in live:
        part = PartsQuery(db, Period(a, b, period.queue), thresholds, grouping).parts()
        for key, parts in part.items():
            found.setdefault(key, Parts()).merge(parts)
    if rolled:
        for row in db.execute(_stored(rolled, period.queue, width, by_queue)):
            key = (row.grp or None) if by_queue else int(row.grp)
            found.setdefault(key, Parts()).add(row._mapping)
    return found


def dropoff(db: Session, period: Period, thresholds: Thresholds) -> list[NodeDropoff]:
    """cti.reports.traffic.dropoff of the period: the up-to-date node rollups, and the
    calls of the rest."""
    live, rolled = split(db, period, thresholds, knock_on=False)
    tally = Tally()
    for a, b in live:
        part = node_tally(db, a, b, period.queue)
        tally.visits.update(part.visits)
        tally.hangups.update(part.hangups)
        tally.escapes.update(part.escapes)
    if rolled:
        n = NODES.c
        query = (
            select(n.flow, n.node, func.sum(n.visits), func.sum(n.hangups), func.sum(n.escapes))
            .where(_within(n.bucket, rolled))
            .where(*([n.queue == period.queue] if period.queue is not None else []))
            .group_by(n.flow, n.node)
        )
        for flow, node, visits, hangups, escapes in db.execute(query):
            tally.visits[flow, node] += int(visits)
            tally.hangups[flow, node] += int(hangups)
            tally.escapes[flow, node] += int(escapes)
    return dropoff_rows(tally)


def _within(bucket: Any, ranges: list[tuple[int, int]]) -> ColumnElement[bool]:
    return or_(*(and_(bucket >= a, bucket < b) for a, b in ranges))


def _stored(ranges: list[tuple[int, int]], queue: str | None, width: int, by_queue: bool) -> Any:
    i = INTERVALS.c
    per = width // INTERVAL
    group = i.queue if by_queue else (i.bucket + per * SHIFT) // per - SHIFT
    return (
        select(group.label("grp"), *(func.sum(i[name]).label(name) for name in SUMS))
        .where(_within(i.bucket, ranges))
        .where(*([i.queue == queue] if queue is not None else []))
        .group_by(group)
    )


# -- keeping them ---------------------------------------------------------------------------


def refresh(sessions: sessionmaker[Session], thresholds: Thresholds) -> int:
    """Work out again the intervals stale when it begins (a busy log marks more all the
    time: those wait for the next round), CHUNK marked intervals a transaction; the
    intervals written."""
    with sessions() as db:
        ceiling = db.scalar(select(func.max(MARKS.c.id)))
    written, started_over = 0, False
    while True:
        with sessions.begin() as db:
            done = _refresh_chunk(db, thresholds, ceiling)
        if done is None:
            return written
        written += done
        if done == 0:  # started over: every interval marked since
            if started_over:  # another service keeps other thresholds: its turn
                log.warning("kpi rollups: services with other report thresholds share the log")
                return written
            started_over = True
            with sessions() as db:
                ceiling = db.scalar(select(func.max(MARKS.c.id)))


def _refresh_chunk(db: Session, thresholds: Thresholds, ceiling: int | None) -> int | None:
    """One transaction of `refresh`, the marks up to id `ceiling`: None when there are
    none."""
    key = key_of(thresholds)
    # Locks the refreshers out of each other (and on SQLite takes the write lock first).
    db.execute(update(ROLLUP).values(thresholds=ROLLUP.c.thresholds))
    if db.scalar(select(ROLLUP.c.thresholds)) != key:
        _start_over(db, key)
        return 0
    if ceiling is None:
        return None
    m = MARKS.c
    newest = select(m.bucket).distinct().where(m.id <= ceiling).order_by(m.bucket.desc())
    chosen = set(db.scalars(newest.limit(CHUNK)))
    if not chosen:
        return None
    marks = list(
        db.execute(
            select(m.id, m.bucket, m.customer_id, m.caller_number).where(
                m.id <= ceiling, m.bucket >= min(chosen)
            )
        )
    )
    still_marked = set(
        db.scalars(select(MARKS.c.bucket).distinct().where(MARKS.c.bucket < min(chosen)))
    )
    written = 0
    for a, b in spans(stale(db, thresholds, marks, skip=still_marked)):
        period = Period(at(a), at(b))
        found = PartsQuery(
            db, period, thresholds, Grouping("bucket", width=INTERVAL, also="queue")
        ).parts()
        db.execute(delete(INTERVALS).where(INTERVALS.c.bucket >= a, INTERVALS.c.bucket < b))
        rows = [_row(bucket, queue, parts) for (bucket, queue), parts in found.items()]
        if rows:
            db.execute(insert(INTERVALS), rows)
        written += b - a
    for a, b in spans({mark.bucket for mark in marks}):  # node counts: the call's own
        db.execute(delete(NODES).where(NODES.c.bucket >= a, NODES.c.bucket < b))
        if nodes := _node_rows(node_tally(db, at(a), at(b), by_interval=True)):
            db.execute(insert(NODES), nodes)
    db.execute(delete(MARKS).where(MARKS.c.id.in_([mark.id for mark in marks])))
    return written


def _row(bucket: int, queue: str | None, parts: Parts) -> dict[str, Any]:
    row: dict[str, Any] = {"bucket": bucket, "queue": queue or ""}
    row.update({name: getattr(parts, name) for name in PART_TYPES})
    row.update({f"outcome_{name}": count for name, count in parts.outcomes.items()})
    return row


def _node_rows(tally: Tally) -> list[dict[str, Any]]:
    """Rows of ivr_node_intervals from a tally by interval."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    counted = {"visits": tally.visits, "hangups": tally.hangups, "escapes": tally.escapes}
    for name, counts in counted.items():
        for (bucket, queue, flow, node), count in counts.items():
            key = (int(bucket), queue, flow, node)
            if key not in found:
                found[key] = {"bucket": key[0], "queue": queue, "flow": flow, "node": node}
                found[key] |= dict.fromkeys(counted, 0)
            found[key][name] += count
    return list(found.values())


def _start_over(db: Session, key: str) -> None:
    """New thresholds: every interval with calls is marked, the rollups dropped."""
    db.execute(delete(INTERVALS))
    db.execute(delete(NODES))
    db.execute(delete(MARKS))
    bucket = BUCKET.expression(CALLS.c, db.get_bind().dialect.name)
    everything = select(bucket).distinct().where(CALLS.c.started_at.is_not(None))
    db.execute(insert(MARKS).from_select(["bucket"], everything))
    db.execute(update(ROLLUP).values(thresholds=key))


async def run(sessions: sessionmaker[Session], thresholds: Thresholds, every: float) -> None:
    """Refresh every `every` seconds until cancelled, in a worker thread; a failed round
    is logged and the next one tries again."""
    while True:
        try:
            if written := await asyncio.to_thread(refresh, sessions, thresholds):
                log.debug("kpi intervals refreshed", extra={"intervals": written})
        except Exception:
            log.exception("kpi interval refresh failed")
        await asyncio.sleep(every)
