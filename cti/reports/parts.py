"""The sums the KPIs are worked out from (cti/reports/kpis.py), and the queries that
add them up over the outcome log for a period, grouped by time bucket, local hour or
day, or a column: every figure is a ratio of sums over calls, so four aggregate queries
(counts with FILTER, sums) give them all, with no loop over calls in Python:

- counts, times and outcomes: one pass over the period's ended calls, grouped by outcome
  too (a dozen sums a call rather than thirty filtered figures);
- CSAT and NPS: the survey answers given on those calls;
- first-contact resolution: the next inbound call of each customer, over the period and
  the repeat window after it. On SQLite, LEAD over the customer by start; on PostgreSQL a
  semi-join on the customer, which its workers hash in parallel where a window function
  sorts every call in one process (the denominator comes with the counts);
- time to callback: each request's first answered callback call in the period.

Each call's sums depend on that call (its answers, its next call, its request's earlier
calls) and not on the period's bounds: the sums of a period are those of any split of
it, which the interval rollups (cti/reports/intervals.py) rely on. Times are in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Select,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from cti.outcomes import Outcome
from cti.store.models import Call, Callback, SurveyAnswer

CALLS = Call.__table__
ANSWERS = SurveyAnswer.__table__
CALLBACKS = Callback.__table__

OUTCOMES: tuple[str, ...] = get_args(Outcome)

CSAT_VALUES = ("1", "2", "3", "4", "5")
CSAT_SATISFIED = ("4", "5")
NPS_VALUES = tuple(str(n) for n in range(11))
NPS_PROMOTERS = ("9", "10")
NPS_DETRACTORS = tuple(str(n) for n in range(7))


@dataclass(frozen=True)
class Thresholds:
    """Service level: answered within `answer_seconds`; abandons in the queue shorter
    than `short_abandon_seconds` count nowhere; a call followed by another inbound call
    of the same customer within `repeat_hours` was not resolved at first contact."""

    answer_seconds: float = 20.0
    short_abandon_seconds: float = 5.0
    repeat_hours: float = 72.0


@dataclass(frozen=True)
class Period:
    """Calls whose start is in [start, end) (aware datetimes), in `queue` if given."""

    start: datetime
    end: datetime
    queue: str | None = None


# -- the figures of a group, as sums ---------------------------------------------------------


@dataclass
class Parts:
    """What a group's figures are computed from: sums, so that groups add up."""

    calls: int = 0
    ivr_calls: int = 0
    contained: int = 0
    abandoned_ivr: int = 0
    offered: int = 0
    short_abandons: int = 0
    answered: int = 0
    answered_in_time: int = 0
    abandoned_queue: int = 0
    callback_requested: int = 0
    transferred: int = 0
    failed: int = 0
    waited: int = 0  # answered calls with a wait (from a queue)
    wait: float = 0.0  # their waits
    talk: float = 0.0  # of answered calls
    hold: float = 0.0
    wrapup: float = 0.0
    callbacks: int = 0
    callbacks_reached: int = 0
    fcr_calls: int = 0
    repeats: int = 0
    csat_answers: int = 0
    satisfied: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0
    callback_requests: int = 0  # requests first reached by a call of the group
    callback_seconds: float = 0.0  # from those requests to those calls
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def add(self, values: Mapping[str, Any]) -> None:
        """Add sums by name: a row's (None: no rows), outcome_<name> the outcomes'."""
        for name, value in values.items():
            if value is None or name in GROUP_KEYS:
                continue
            if name.startswith("outcome_"):
                self.outcomes[name.removeprefix("outcome_")] += int(value)
            else:
                setattr(self, name, getattr(self, name) + PART_TYPES[name](value))

    def merge(self, other: Parts) -> None:
        for name in PART_TYPES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, count in other.outcomes.items():
            self.outcomes[name] += count


INTERVAL = 900  # seconds: the rollups' reporting interval (cti/reports/intervals.py)
GROUP_KEYS = ("grp", "grp_also")  # the group's columns in the queries' rows
PART_TYPES: dict[str, type] = {
    f.name: int if f.type == "int" else float for f in fields(Parts) if f.name != "outcomes"
}


# -- the queries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """What the queries group by: UTC time buckets of `width` seconds, the local hour or
    day of the start in `zone` (`name`), or a column (`name`); and then by the column
    `also` if given (the interval rollups: bucket and queue)."""

    kind: str  # bucket, local, column
    name: str | None = None
    width: int = 0
    zone: str = ""
    also: str | None = None

    def reads(self) -> list[str]:
        """The columns the groups are worked out from."""
        first = self.name if self.kind == "column" and self.name else "started_at"
        return [first, *([self.also] if self.also else [])]

    def expression(self, columns: Any, dialect: str, binned: bool = False) -> ColumnElement[Any]:
        """The group of a row of `columns`. `binned` (PostgreSQL 14 on): a bucket is the
        timestamp it starts at (date_bin: integer arithmetic, where date_part parses
        its unit for every row), its number worked out by `key`."""
        if self.kind == "column":
            return columns[self.name]
        started = columns.started_at
        if self.kind == "bucket":
            if binned:
                return func.date_bin(self.step(), started, EPOCH)
            if dialect == "postgresql":
                epoch = func.date_part("epoch", started)
                return func.floor(epoch / literal_column(str(self.width)))
            return cast(func.strftime("%s", started), Integer) // self.width
        if dialect == "postgresql":
            local = func.timezone(self.zone, started)
            return extract("hour", local) if self.name == "hour" else cast(local, Date)
        return (func.ivr_local_hour if self.name == "hour" else func.ivr_local_day)(
            started, self.zone
        )

    def step(self) -> ColumnElement[Any]:
        return literal_column(f"interval '{self.width} seconds'")

    def key(self, value: Any) -> Any:
        """A group's value as the rows carry it: bucket numbers stay numbers (they are
        rolled up later); hours are 00-23, days ISO dates."""
        if value is None:
            return None
        if self.kind == "bucket":
            if isinstance(value, datetime):  # the start of the bucket (date_bin)
                return (value - EPOCH_TIME) // timedelta(seconds=self.width)
            return int(value)
        if self.name == "hour":
            return f"{int(value):02d}"
        if self.name == "day" and isinstance(value, date):
            return value.isoformat()
        return str(value)


EPOCH_TIME = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH = literal_column("TIMESTAMPTZ '1970-01-01 00:00:00+00'")
MANY_BUCKETS = 100_000  # more buckets than this: PostgreSQL is not told how few there are
NUMBER_KEY = 2**32  # the customer key of the calls known by number only: no customer id


class PartsQuery:
    def __init__(
        self, db: Session, period: Period, thresholds: Thresholds, grouping: Grouping
    ) -> None:
        self.db = db
        bind = db.get_bind()
        self.dialect = bind.dialect.name
        self.start = period.start.astimezone(UTC)
        self.end = period.end.astimezone(UTC)
        self.queue = period.queue
        self.thresholds = thresholds
        self.grouping = grouping
        self.grouped = grouping.kind != "column" or grouping.name is not None
        self.postgres = self.dialect == "postgresql"
        version = bind.dialect.server_version_info or (0,)
        self.binned = self.postgres and grouping.kind == "bucket" and version >= (14,)
        if self.dialect == "sqlite" and grouping.kind == "local":
            _register_sqlite_functions(db)

    def parts(self) -> dict[Any, Parts]:
        found: dict[Any, Parts] = {}

        def parts_of(group: Any, also: Any = None) -> Parts:
            key = self.grouping.key(group) if self.grouped else None
            if self.grouping.also:
                key = (key, also)
            held = found.get(key)
            if held is None:
                held = found[key] = Parts()
            return held

        if self.postgres:
            queries = (self.surveys(), self.repeats(), self.callbacks())
        else:
            queries = (self.surveys(), self.fcr(), self.callbacks())
        for row in self.db.execute(self.main()):
            _add_outcome_row(parts_of(*self.keys_of(row)), row)
        for rows in queries:
            for row in self.db.execute(rows):
                parts_of(*self.keys_of(row)).add(row._mapping)
        return found

    def group(self, columns: Any) -> list[ColumnElement[Any]]:
        if not self.grouped:
            return []
        first = self.grouping.expression(columns, self.dialect, self.binned).label("grp")
        also = self.grouping.also
        return [first, *([columns[also].label("grp_also")] if also else [])]

    def keys_of(self, row: Any) -> tuple[Any, ...]:
        return (row.grp, row.grp_also) if self.grouping.also else (row.grp,)

    def group_columns(self, columns: Any) -> list[Any]:
        """The group's columns of a subquery of `group`."""
        return [columns.grp, *([columns.grp_also] if self.grouping.also else [])]

    def aggregate(self, inner: Any, *columns: Any) -> Select[Any]:
        if not self.grouped:
            return select(literal_column("NULL").label("grp"), *columns).select_from(inner)
        keys = self.group_columns(inner.c)
        return select(*keys, *columns).group_by(*keys)

    def ended_in_period(self, columns: Any) -> list[ColumnElement[bool]]:
        return [
            columns.started_at >= self.start,
            columns.started_at < self.end,
            columns.outcome.is_not(None),
            *self.in_queue(columns),
        ]

    def in_queue(self, columns: Any) -> list[ColumnElement[bool]]:
        return [columns.queue == self.queue] if self.queue is not None else []

    def seconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        if self.postgres:
            return extract("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0

    def known(self, columns: Any) -> ColumnElement[bool]:
        """A call whose customer is known: by id, else by a caller number."""
        return or_(columns.customer_id.is_not(None), columns.caller_number != "")

    def main(self) -> Select[Any]:
        """Counts, times and outcomes of the period's ended calls, by group and outcome:
        a dozen sums a row rather than thirty figures each with its own filter
        (`_add_outcome_row` makes the figures of them). On PostgreSQL, also FCR's
        denominator."""
        c = CALLS.c
        inner = (
            select(
                *self.group(c),
                c.outcome,
                c.kind,
                c.flow,
                c.queue_entered_at,
                c.transferred,
                c.wait_seconds,
                c.talk_seconds,
                c.hold_seconds,
                c.wrapup_seconds,
                *([c.customer_id, c.caller_number] if self.postgres else []),
            )
            .where(*self.ended_in_period(c))
            .subquery()
        )
        r = inner.c

        def count(*conditions: ColumnElement[bool]) -> Any:
            return func.count().filter(and_(*conditions))

        figures = {
            "calls": func.count(),
            "ivr_calls": func.count(r.flow),
            "offered": func.count(r.queue_entered_at),
            "short": count(r.wait_seconds < self.thresholds.short_abandon_seconds),
            "in_time": count(
                r.queue_entered_at.is_not(None),
                r.wait_seconds <= self.thresholds.answer_seconds,
            ),
            "transferred": count(r.transferred.is_(True)),
            "waited": func.count(r.wait_seconds),
            "wait": func.sum(r.wait_seconds),
            "talk": func.sum(r.talk_seconds),
            "hold": func.sum(r.hold_seconds),
            "wrapup": func.sum(r.wrapup_seconds),
            "callbacks": count(r.kind == "callback"),
        }
        if self.postgres:  # the other dialect counts them with the repeats
            figures["fcr_calls"] = count(r.kind == "inbound", self.known(r))
        columns = [r.outcome, *(value.label(name) for name, value in figures.items())]
        if not self.grouped:
            return select(literal_column("NULL").label("grp"), *columns).group_by(r.outcome)
        if self.binned and not self.grouping.also:
            buckets = self.buckets()
            if buckets is not None:
                return (
                    select(buckets.c.grp, *columns)
                    .select_from(inner.join(buckets, buckets.c.grp == r.grp))
                    .group_by(buckets.c.grp, r.outcome)
                )
        keys = self.group_columns(r)
        return select(*keys, *columns).group_by(*keys, r.outcome)

    def buckets(self) -> Any:
        """The period's buckets as a table whose size PostgreSQL knows. Grouped by its
        column, the calls are hashed into their groups in each worker; grouped by an
        expression of the start, which has no statistics, PostgreSQL expects about a
        group a call and sorts them all instead. None for more than MANY_BUCKETS."""
        width = timedelta(seconds=self.grouping.width)
        first = EPOCH_TIME + (self.start - EPOCH_TIME) // width * width
        if (self.end - first) / width > MANY_BUCKETS:
            return None
        series = func.generate_series(first, self.end, self.grouping.step()).alias("series")
        grp = series.column.label("grp")
        return select(grp).group_by(grp).subquery("buckets")

    def surveys(self) -> Select[Any]:
        """The CSAT and NPS answers given on the period's ended calls (answers come
        during their call: none before the period's start). By agent, a survey call's
        answers count for the agent of the call it follows (`origin_call_id`)."""
        a, c = ANSWERS.c, CALLS.c
        answered = ANSWERS.join(CALLS, c.id == a.call_id)
        groups = self.group(c)
        if self.grouping.kind == "column" and self.grouping.name == "agent":
            origin = CALLS.alias("origin")
            answered = answered.outerjoin(origin, origin.c.id == c.origin_call_id)
            groups = [func.coalesce(origin.c.agent, c.agent).label("grp")]
        inner = (
            select(*groups, a.scale, a.value)
            .select_from(answered)
            .where(a.answered_at >= self.start, *self.ended_in_period(c))
            .subquery()
        )
        r = inner.c
        scale5, nps = r.scale == "scale5", r.scale == "nps"
        return self.aggregate(
            inner,
            func.count().filter(scale5, r.value.in_(CSAT_VALUES)).label("csat_answers"),
            func.count().filter(scale5, r.value.in_(CSAT_SATISFIED)).label("satisfied"),
            func.count().filter(nps, r.value.in_(NPS_VALUES)).label("nps_answers"),
            func.count().filter(nps, r.value.in_(NPS_PROMOTERS)).label("promoters"),
            func.count().filter(nps, r.value.in_(NPS_DETRACTORS)).label("detractors"),
        )

    def horizon(self) -> datetime:
        """The end of the repeat window after the period."""
        try:
            return self.end + timedelta(hours=self.thresholds.repeat_hours)
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)

    def fcr(self) -> Select[Any]:
        """Answered inbound calls of a known customer (customer_id, else caller_number),
        and those followed by another inbound call of the customer within the repeat
        window: LEAD over the customer by start, over the inbound calls of the period and
        of the window after it, whatever their queue or outcome. Customers by id and by
        number only are two windows: each sorts fewer rows, ids sort as integers."""
        c = CALLS.c
        window = timedelta(hours=self.thresholds.repeat_hours)
        horizon = self.horizon()
        eligible = and_(c.outcome == "answered", c.started_at < self.end, *self.in_queue(c))
        carried = [c[name] for name in self.grouping.reads() if name != "started_at"]

        def calls(customer: ColumnElement[Any], *known: ColumnElement[bool]) -> Select[Any]:
            following = func.lead(c.started_at).over(partition_by=customer, order_by=c.started_at)
            return select(
                c.started_at, *carried, eligible.label("eligible"), following.label("next_start")
            ).where(
                c.kind == "inbound",
                c.started_at >= self.start,
                c.started_at < horizon,
                *known,
            )

        both = union_all(
            calls(c.customer_id, c.customer_id.is_not(None)),
            calls(c.caller_number, c.customer_id.is_(None), c.caller_number.is_not(None),
                  c.caller_number != ""),
        ).subquery()  # fmt: skip
        w = both.c
        inner = select(*self.group(w), w.started_at, w.next_start).where(w.eligible).subquery()
        r = inner.c
        soon = self.seconds(r.next_start, r.started_at) <= window.total_seconds()
        repeat = and_(r.next_start.is_not(None), soon)
        return self.aggregate(
            inner, func.count().label("fcr_calls"), func.count().filter(repeat).label("repeats")
        )

    def repeats(self) -> Select[Any]:
        """FCR's numerator on PostgreSQL (main() counts its denominator): the answered
        inbound calls of a known customer followed by another inbound call of the
        customer within the repeat window, whatever its queue or outcome. The same calls
        as the LEAD of fcr(): the next call is within the window if and only if some
        later call is, and of calls that start at the same instant, each but the last in
        the order of their ids has a next one at once. As a semi-join on the customer (by
        id, else by number) the calls of the period and of the window after it are
        hashed, in parallel; a window function would sort them in one process."""
        e, n = CALLS.alias("answered_call"), CALLS.alias("next_call")
        window = timedelta(hours=self.thresholds.repeat_hours)

        def customer(t: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
            by_id = func.coalesce(cast(t.c.customer_id, BigInteger), NUMBER_KEY)
            by_number = case((t.c.customer_id.is_(None), t.c.caller_number), else_="")
            return by_id, by_number

        (e_id, e_number), (n_id, n_number) = customer(e), customer(n)
        followed = exists().where(
            n.c.kind == "inbound",
            n.c.started_at >= self.start,
            n.c.started_at < self.horizon(),
            n_id == e_id,
            n_number == e_number,
            n.c.started_at >= e.c.started_at,
            n.c.started_at <= e.c.started_at + window,
            or_(n.c.started_at > e.c.started_at, n.c.id > e.c.id),
        )
        inner = (
            select(*self.group(e.c))
            .where(
                e.c.kind == "inbound",
                e.c.outcome == "answered",
                e.c.started_at >= self.start,
                e.c.started_at < self.end,
                self.known(e.c),
                *self.in_queue(e.c),
                followed,
            )
            .subquery()
        )
        return self.aggregate(inner, func.count().label("repeats"))

    def callbacks(self) -> Select[Any]:
        """Seconds from each callback request to the start of its first answered
        callback call, for the requests whose first answered call is in the period: the
        first in the period, unless one was answered before it (since the request; the
        look back goes no further than the oldest of these requests)."""
        c = CALLS.c
        reached = (
            select(*self.group(c), c.queue, c.callback_id, c.started_at, CALLBACKS.c.created_at)
            .select_from(CALLS.join(CALLBACKS, CALLBACKS.c.id == c.callback_id))
            .where(
                c.kind == "callback",
                c.outcome == "answered",
                c.started_at >= self.start,
                c.started_at < self.end,
            )
            .cte("reached")
        )
        r = reached.c
        earlier = CALLS.alias("earlier").c
        answered_before = exists().where(
            earlier.callback_id == r.callback_id,
            earlier.kind == "callback",
            earlier.outcome == "answered",
            earlier.started_at >= r.created_at,
            earlier.started_at >= select(func.min(r.created_at)).scalar_subquery(),
            earlier.started_at < self.start,
        )
        first = func.row_number().over(partition_by=r.callback_id, order_by=r.started_at)
        inner = (
            select(
                *(self.group_columns(r) if self.grouped else []),
                r.queue,
                first.label("nth"),
                self.seconds(r.started_at, r.created_at).label("took"),
            )
            .where(~answered_before)
            .subquery()
        )
        i = inner.c
        return self.aggregate(
            inner,
            func.count().label("callback_requests"),
            func.sum(i.took).label("callback_seconds"),
        ).where(i.nth == 1, *self.in_queue(i))


def _add_outcome_row(p: Parts, row: Any) -> None:
    """Add a row of main(): the sums of the calls of one group with one outcome."""
    outcome = row.outcome
    calls, ivr_calls = int(row.calls), int(row.ivr_calls)
    p.calls += calls
    p.ivr_calls += ivr_calls
    p.offered += int(row.offered)
    p.callbacks += int(row.callbacks)
    p.transferred += calls if outcome == "transferred" else int(row.transferred)
    if outcome in p.outcomes:
        p.outcomes[outcome] += calls
    if outcome == "answered":
        p.answered += calls
        p.answered_in_time += int(row.in_time)
        p.waited += int(row.waited)
        p.wait += float(row.wait or 0.0)
        p.talk += float(row.talk or 0.0)
        p.hold += float(row.hold or 0.0)
        p.wrapup += float(row.wrapup or 0.0)
        p.callbacks_reached += int(row.callbacks)
        p.fcr_calls += int(getattr(row, "fcr_calls", 0) or 0)
    elif outcome == "abandoned_queue":
        p.abandoned_queue += calls
        p.short_abandons += int(row.short)
    elif outcome == "contained":
        p.contained += ivr_calls
    elif outcome == "abandoned_ivr":
        p.abandoned_ivr += ivr_calls
    elif outcome == "callback_requested":
        p.callback_requested += calls
    elif outcome == "failed":
        p.failed += calls


# -- SQLite: the local hour and day of a start, where buckets do not fit --------------------


@lru_cache(maxsize=32)
def zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(stamp: str | datetime | None, zone: str) -> datetime | None:
    if stamp is None:
        return None
    moment = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
    if moment.tzinfo is None:  # stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone_named(zone))


def _local_hour(stamp: str | None, zone: str) -> int | None:
    local = _local(stamp, zone)
    return None if local is None else local.hour


def _local_day(stamp: str | None, zone: str) -> str | None:
    local = _local(stamp, zone)
    return None if local is None else local.date().isoformat()


def _register_sqlite_functions(db: Session) -> None:
    connection = db.connection().connection.driver_connection
    assert connection is not None
    connection.create_function("ivr_local_hour", 2, _local_hour, deterministic=True)
    connection.create_function("ivr_local_day", 2, _local_day, deterministic=True)
