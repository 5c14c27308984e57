"""The KPI interval rollups (cti/reports/intervals.py), on SQLite and on PostgreSQL.

- The dashboard reads the rollups where they are up to date.
- The database's triggers mark every write, whatever makes it.
- A write makes stale the intervals whose figures it moves, its own and others: a
  customer's earlier calls (repeats), a callback request's later calls.
- At every moment the figures are those of the calls, rolled up or not. This holds in
  whatever order the writes come and whenever the refresher runs.
- New thresholds start the rollups over.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cti.reports import intervals
from cti.reports.kpis import Kpis, Period, Thresholds, _kpis, breakdowns
from cti.reports.parts import OUTCOMES, PART_TYPES, Grouping, Parts, PartsQuery
from cti.store.calls import CallLog
from cti.store.models import Call, Callback, Customer, KpiInterval, KpiMark, SurveyAnswer

ZONE = ZoneInfo("America/New_York")
DAY = datetime(2026, 3, 6, tzinfo=ZONE)  # the clocks go forward on the 8th
PERIOD = Period(DAY, DAY + timedelta(days=5))
T = Thresholds(repeat_hours=24)
BYS = (None, "hour", "day", "queue")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return (DAY + timedelta(days=day, hours=hour, minutes=minute)).astimezone(UTC)


def reference(db: Session, period: Period, thresholds: Thresholds, by: str | None) -> list[Kpis]:
    """The figures straight from the calls, as PartsQuery sums them: no rollup read."""
    grouping = {
        None: Grouping("column"),
        "hour": Grouping("local", "hour", zone=str(ZONE)),
        "day": Grouping("local", "day", zone=str(ZONE)),
        "queue": Grouping("column", "queue"),
    }[by]
    found = PartsQuery(db, period, thresholds, grouping).parts()
    if by is None and not found:
        found = {None: Parts()}
    rows = [_kpis(group, parts) for group, parts in found.items()]
    return sorted(rows, key=lambda row: (row.group is None, row.group or ""))


def assert_same(found: list[Kpis], expected: list[Kpis], context: str) -> None:
    """The same rows: counts equal, sums of seconds and ratios equal but for the last
    bits (added up in another order)."""
    assert [row.group for row in found] == [row.group for row in expected], context
    for a, b in zip(found, expected, strict=True):
        for f in fields(Kpis):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=1e-9), (context, a.group, f.name, x, y)
            else:
                assert x == y, (context, a.group, f.name, x, y)


def assert_figures_are_the_calls(db: Session, context: str, period: Period = PERIOD) -> None:
    found = breakdowns(db, period, T, ZONE, *BYS)
    for by in BYS:
        assert_same(found[by], reference(db, period, T, by), f"{context}, by {by}")


def rolled_up_calls(db: Session) -> int:
    return db.scalar(select(func.coalesce(func.sum(KpiInterval.calls), 0))) or 0


def marks(db: Session) -> set[tuple[int, int | None, str | None]]:
    """The marks, as (interval, former customer id, former number)."""
    rows = db.execute(select(KpiMark.bucket, KpiMark.customer_id, KpiMark.caller_number))
    return {(b, c, n) for b, c, n in rows}


def answered(start: datetime, queue: str = "support", wait: float = 10, talk: float = 60) -> dict:
    queued = start + timedelta(seconds=20)
    done = queued + timedelta(seconds=wait + talk)
    return {
        "started_at": start, "ivr_end": "routed", "route": f"queue:{queue}",
        "ivr_ended_at": queued, "queue": queue, "queue_entered_at": queued,
        "answered_at": queued + timedelta(seconds=wait), "agent": "ana",
        "agent_done_at": done, "ended_at": done, "kind": "inbound", "flow": "main",
    }  # fmt: skip


def contained(start: datetime) -> dict:
    end = start + timedelta(seconds=40)
    return {"started_at": start, "ivr_end": "contained", "ivr_ended_at": end, "ended_at": end,
            "route": "hangup", "kind": "inbound", "flow": "main"}  # fmt: skip


@pytest.fixture
def customers(sessions: sessionmaker[Session]) -> list[int]:
    with sessions.begin() as db:
        people = [Customer(name=f"customer {n}") for n in range(4)]
        db.add_all(people)
        db.flush()
        return [person.id for person in people]


def test_the_rollup_table_has_a_column_for_every_sum_and_outcome() -> None:
    columns = {column.name for column in KpiInterval.__table__.columns}
    assert columns == {"bucket", "queue", *PART_TYPES, *(f"outcome_{o}" for o in OUTCOMES)}


def test_stale_intervals_are_read_in_few_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gaps shorter than JOIN_GAP are read too; past MOST_RANGES, the shortest gaps."""
    gap = intervals.JOIN_GAP
    assert intervals.spans([]) == []
    assert intervals.spans([5, 3, 4, 4]) == [(3, 6)]
    assert intervals.spans([0, gap + 1]) == [(0, gap + 2)]  # a gap of JOIN_GAP: read
    assert intervals.spans([0, gap + 2]) == [(0, 1), (gap + 2, gap + 3)]
    monkeypatch.setattr(intervals, "MOST_RANGES", 2)
    far = [0, 100 + gap, 300 + 2 * gap, 301 + 2 * gap]  # gaps of 100 + gap, then 200 + gap
    assert intervals.spans(far) == [(0, 101 + gap), (300 + 2 * gap, 302 + 2 * gap)]


def test_the_dashboard_reads_the_rollups_where_they_are_up_to_date(
    sessions: sessionmaker[Session],
) -> None:
    log = CallLog(sessions)
    log.record("a", answered(at(0, 10)))
    log.record("b", contained(at(1, 10)))
    with sessions() as db:
        assert [row.calls for row in breakdowns(db, PERIOD, T, ZONE, None)[None]] == [2]
        assert rolled_up_calls(db) == 0  # nothing rolled up yet: read from the calls
    assert intervals.refresh(sessions, T) > 0
    with sessions.begin() as db:
        assert rolled_up_calls(db) == 2
        assert intervals.pending(db) == []
        # A rollup changed behind the log's back shows: the figures are read from it.
        db.execute(update(KpiInterval).where(KpiInterval.calls == 1).values(calls=101))
    with sessions() as db:
        [total] = breakdowns(db, PERIOD, T, ZONE, None)[None]
        assert total.calls == 202
        # Under other thresholds, the rollups do not hold: the calls are read.
        [other] = breakdowns(db, PERIOD, replace(T, answer_seconds=30), ZONE, None)[None]
        assert other.calls == 2
    log.record("b", {"disposition": "resolved"})  # marks b's interval: read from the calls
    with sessions() as db:
        assert breakdowns(db, PERIOD, T, ZONE, None)[None][0].calls == 102
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert breakdowns(db, PERIOD, T, ZONE, None)[None][0].calls == 102  # a still tampered
        assert_same(
            breakdowns(db, Period(at(1, 0), at(2, 0)), T, ZONE, None)[None],
            reference(db, Period(at(1, 0), at(2, 0)), T, None),
            "b's day",
        )


def test_the_triggers_mark_every_write(sessions: sessionmaker[Session], customers: list) -> None:
    """The log's writer, a plain ORM update and survey answers: one mark an interval,
    and the former customer of a call whose customer changed."""
    log = CallLog(sessions)
    first, second = at(0, 10, 5), at(0, 11, 20)
    b1, b2 = intervals.bucket_of(first), intervals.bucket_of(second)
    log.record("a", answered(first) | {"caller_number": "+15550100"})
    log.record("b", contained(second) | {"caller_number": "+15550100"})
    with sessions() as db:
        assert {bucket for bucket, _, _ in marks(db)} == {b1, b2}
    intervals.refresh(sessions, T)
    with sessions.begin() as db:
        assert marks(db) == set()
        db.execute(update(Call).where(Call.id == "b").values(customer_id=customers[0]))
    with sessions.begin() as db:
        assert marks(db) == {(b2, None, None), (b2, None, "+15550100")}
        db.add(SurveyAnswer(call_id="a", question="csat", scale="scale5", value="5",
                            answered_at=first + timedelta(minutes=2)))  # fmt: skip
    with sessions.begin() as db:
        assert (b1, None, None) in marks(db)
        # An earlier start found later (the log keeps the earliest).
        db.execute(update(Call).where(Call.id == "a").values(started_at=at(0, 9)))
    with sessions() as db:
        assert (b1, None, "+15550100") in marks(db)  # its old interval, its customer then
        assert (intervals.bucket_of(at(0, 9)), None, None) in marks(db)
        assert_figures_are_the_calls(db, "after the moves")


def test_a_later_call_makes_the_customers_earlier_interval_stale(
    sessions: sessionmaker[Session], customers: list
) -> None:
    """Rolled up, a's day has no repeat; b, the next day, makes a a repeat; then b turns
    out to be another customer's call, and a is not a repeat any more."""
    log = CallLog(sessions)
    day0 = Period(at(0, 0), at(1, 0))
    log.record("a", answered(at(0, 20)) | {"caller_number": "+15550100"})
    intervals.refresh(sessions, T)
    with sessions() as db:
        [row] = breakdowns(db, day0, T, ZONE, None)[None]
        assert (row.fcr_calls, row.repeats) == (1, 0)
    log.record("b", contained(at(1, 6)) | {"caller_number": "+15550100"})
    with sessions() as db:
        [row] = breakdowns(db, day0, T, ZONE, None)[None]
        assert (row.fcr_calls, row.repeats) == (1, 1)
        assert intervals.bucket_of(at(0, 20)) not in {b for b, _, _ in marks(db)}
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert breakdowns(db, day0, T, ZONE, None)[None][0].repeats == 1
    log.record("b", {"customer_id": customers[1]})
    with sessions() as db:
        [row] = breakdowns(db, day0, T, ZONE, None)[None]
        assert (row.fcr_calls, row.repeats) == (1, 0)
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert breakdowns(db, day0, T, ZONE, None)[None][0].repeats == 0
        assert_figures_are_the_calls(db, "after the refresh")


def test_an_earlier_answered_callback_call_makes_the_later_one_stale(
    sessions: sessionmaker[Session], customers: list
) -> None:
    with sessions.begin() as db:
        request = Callback(customer_id=customers[0], number="+15550100", due_at=at(0, 9),
                           created_at=at(0, 8))  # fmt: skip
        db.add(request)
        db.flush()
        request_id = request.id
    log = CallLog(sessions)
    callback = {"kind": "callback", "callback_id": request_id, "customer_id": customers[0]}
    log.record("late", answered(at(2, 10)) | callback)
    intervals.refresh(sessions, T)
    day2 = Period(at(2, 0), at(3, 0))
    with sessions() as db:
        assert breakdowns(db, day2, T, ZONE, None)[None][0].time_to_callback is not None
    log.record("early", answered(at(1, 10)) | callback)  # reached the day before
    with sessions() as db:
        [row] = breakdowns(db, day2, T, ZONE, None)[None]
        assert (row.callbacks_reached, row.time_to_callback) == (1, None)
        assert_figures_are_the_calls(db, "before the refresh")
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert breakdowns(db, day2, T, ZONE, None)[None][0].time_to_callback is None


def test_new_thresholds_start_the_rollups_over(sessions: sessionmaker[Session]) -> None:
    log = CallLog(sessions)
    log.record("a", answered(at(0, 10), wait=25))
    intervals.refresh(sessions, T)
    later = replace(T, answer_seconds=30)
    with sessions() as db:
        assert breakdowns(db, PERIOD, later, ZONE, None)[None][0].answered_in_time == 1
        assert db.scalar(select(func.sum(KpiInterval.answered_in_time))) == 0
    assert intervals.refresh(sessions, later) > 0
    with sessions() as db:
        assert db.scalar(select(func.sum(KpiInterval.answered_in_time))) == 1
        assert intervals.pending(db) == []
        assert breakdowns(db, PERIOD, T, ZONE, None)[None][0].answered_in_time == 0


def test_the_refresher_works_in_chunks_newest_first(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = CallLog(sessions)
    for day in range(5):
        log.record(f"a{day}", answered(at(day, 10)) | {"caller_number": "+15550100"})
    intervals.refresh(sessions, T)  # starts over: every interval with calls marked
    monkeypatch.setattr(intervals, "CHUNK", 2)
    with sessions.begin() as db:
        db.execute(update(Call).values(talk_seconds=Call.talk_seconds + 1))
    with sessions.begin() as db:
        assert intervals._refresh_chunk(db, T, ceiling=2**62) is not None
    with sessions() as db:  # the two newest done, the three oldest still marked
        left = sorted({b for b, _, _ in marks(db)})
        assert left == [intervals.bucket_of(at(day, 10)) for day in range(3)]
        assert_figures_are_the_calls(db, "halfway")
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert marks(db) == set()
        assert_figures_are_the_calls(db, "done")


@pytest.mark.postgres
def test_a_write_committed_during_a_refresh_stays_marked(postgres_url: str) -> None:
    """The refresher drops the marks it read, not the ones written meanwhile (on
    PostgreSQL; SQLite's writers wait for the refresher's write lock)."""
    from cti.store.db import make_engine, session_factory, upgrade

    engine = make_engine(postgres_url)
    upgrade(engine)
    sessions = session_factory(engine)
    log = CallLog(sessions)
    log.record("a", answered(at(0, 10)))
    intervals.refresh(sessions, T)
    writer = sessions()
    writer.execute(text("SELECT 1"))
    log.record("a", {"disposition": "resolved"})  # a committed mark the refresher drops
    log_row = answered(at(0, 10, 1)) | {"id": "b", "linkedid": "b", "outcome": "answered"}
    writer.add(Call(**log_row))
    writer.flush()  # b and its mark written, not committed
    done = threading.Event()
    threading.Thread(target=lambda: (intervals.refresh(sessions, T), done.set())).start()
    assert done.wait(30)
    writer.commit()
    writer.close()
    with sessions() as db:
        assert marks(db) == {(intervals.bucket_of(at(0, 10)), None, None)}
        assert breakdowns(db, PERIOD, T, ZONE, None)[None][0].calls == 2
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert rolled_up_calls(db) == 2
    engine.dispose()


# -- writes in any order, refreshes at any moment ----------------------------------------------


def scenario(rng: random.Random, customers: list[int], requests: list[int]) -> list[tuple]:
    """Forty calls over the period, each written in two to four parts (its start and
    IVR part, its queue and agent, its customer found later, its end), and survey
    answers: (call id, facts) and ("answer", call id, question, value, when)."""
    numbers = ["+15550100", "+15550101", "+15550102"]
    writes: list[tuple] = []
    for n in range(40):
        start = at(rng.randrange(0, 5), rng.randrange(0, 24), rng.randrange(0, 60))
        kind = rng.choices(["inbound", "callback", "survey"], [8, 1, 1])[0]
        call = f"c{n}"
        facts = answered(start, rng.choice(["support", "sales"]), rng.uniform(1, 40))
        if kind == "survey":
            facts = contained(start) | {
                "kind": "survey",
                "flow": "survey",
                "survey_completed": True,
            }
            for q, scale, value in (("csat", "scale5", "45321"), ("nps", "nps", "0123456789")):
                when = start + timedelta(seconds=10)
                writes.append(("answer", call, q, scale, rng.choice(value), when))
        elif rng.random() < 0.3:
            facts = contained(start) | ({"ivr_end": "abandoned_ivr"} if rng.random() < 0.5 else {})
        if kind == "callback":
            facts |= {"kind": "callback", "callback_id": rng.choice(requests)}
        facts["caller_number"] = rng.choice(numbers)
        who = {"customer_id": rng.choice(customers)} if rng.random() < 0.5 else {}
        parts = [{k: facts[k] for k in ("started_at", "kind", "caller_number") if k in facts}]
        rest = {k: v for k, v in facts.items() if k not in parts[0]}
        cut = rng.randrange(1, len(rest))
        parts += [dict(list(rest.items())[:cut]), dict(list(rest.items())[cut:])]
        if who:
            parts.append(who)
        writes += [(call, part) for part in parts]
    rng.shuffle(writes)
    return writes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_are_the_calls_whatever_the_order_of_writes_and_refreshes(
    sessions: sessionmaker[Session], customers: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    with sessions.begin() as db:
        made = [Callback(customer_id=c, number="+15550100", due_at=at(0, 0),
                         created_at=at(0, 0)) for c in customers[:2]]  # fmt: skip
        db.add_all(made)
        db.flush()
        requests = [r.id for r in made]
    log = CallLog(sessions)
    writes = scenario(rng, customers, requests)
    answers: list[tuple] = []
    for step, write in enumerate(writes):
        if write[0] == "answer":
            answers.append(write)  # once its call is there
        else:
            call, facts = write
            log.record(call, facts)
        ready = [a for a in answers if a[1] in {w[0] for w in writes[: step + 1]}]
        if ready:
            with sessions.begin() as db:
                for _, call, question, scale, value, when in ready:
                    db.add(SurveyAnswer(call_id=call, question=question, scale=scale,
                                        value=value, answered_at=when))  # fmt: skip
            answers = [a for a in answers if a not in ready]
        if rng.random() < 0.25:
            intervals.refresh(sessions, T)
        if step % 10 == 9:
            with sessions() as db:
                assert_figures_are_the_calls(db, f"seed {seed}, after write {step}")
    intervals.refresh(sessions, T)
    with sessions() as db:
        assert intervals.pending(db) == []
        assert_figures_are_the_calls(db, f"seed {seed}, all rolled up")
        assert rolled_up_calls(db) == db.scalar(
            select(func.count()).where(Call.outcome.is_not(None))
        )
