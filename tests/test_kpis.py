"""KPIs over the outcome log (cti/reports/kpis.py, docs/kpis.md) on SQLite and on the
real PostgreSQL, from a set of calls whose figures are worked out by hand below.

The center is in America/New_York; the period is 1-3 November 2025 there, across the
end of daylight saving time (2 November, 02:00 EDT becomes 01:00 EST, so 01:30 comes
twice). The calls are written through the outcome log (CallLog.record), so their
outcomes and times come from the real rule.

    call  local start     kind     flow queue   agent wait talk hold wrap outcome
    A1    11-01 09:00 EDT in       cs   support ana   10   100  20   30   answered
    A2    11-01 10:00 EDT in       cs   support bo    30   60   -    -    answered (1)
    A12   11-01 15:00 EDT in       cs   sales   bo    20   60   -    -    answered
    A3    11-02 01:30 EDT in       cs   sales   ana   5    200  -    10   answered
    A4    11-02 01:30 EST in       cs   sales   -     3 (short)          abandoned_queue
    A5    11-02 23:59:50  in       cs   support -     40 (to 00:00:35)   abandoned_queue
    A6    11-03 08:00     in       cs   -                                contained
    A7    11-03 08:10     in       cs   -                                abandoned_ivr
    A8    11-03 08:20     in       cs   -       (asks for callback R1)   callback_requested
    A9    11-03 08:30     in       cs   -       (IVR transfer node)      transferred
    A10   11-03 08:40     in       -    -                                failed
    CB1   11-03 09:21     callback cb   support bo    10   50   -    -    answered (R1)
    CB2   11-03 10:00     callback -    -       (not reached)            failed (R2)
    CB3   11-03 12:00     callback cb   support ana   25   30   -    -    answered (R2)
    S1-S2 11-03 13:00/10  survey   sv   -                                survey_completed (2)
    S3-S4 11-03 13:20/30  survey   sv   -                                abandoned_ivr
    A11   11-03 14:00     in       cs   support bo    15   240  60   60   answered

    (1) then transferred by the agent. (2) S1 follows A12, S2 A1 (post-call surveys),
    S3 S4 no call (a list). Customers: A1 A2 c1, A12 c6, A3 A4 a caller
    known only by number, A5 c2, A6 c3, A8 and the callbacks c4, A11 c5, S1 c6.

    not counted: B1 (10-31 23:30 EDT, before the period though 11-01 in UTC), P1 (still
    going on), O2 (c5, 11-05 14:00: 48 h after A11) and O3 (c6, 11-04 16:00: 74 h after
    A12), after the period: they only count as the next call of a customer.

cs, cb, sv: the customer_service, callback and survey flows; surveys are campaign csat,
callback calls campaign callbacks.
Callback R1 asked 11-03 08:21 (reached 1 h later), R2 asked 11-02 12:00 EST (reached
at the second attempt, 24 h later).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cti.reports import intervals
from cti.reports.export import to_csv, to_json, to_table
from cti.reports.kpis import (
    DIMENSIONS,
    Kpis,
    Period,
    Thresholds,
    _bucket_width,
    _kpis,
    _roll_up,
    breakdowns,
    commitments_past_due,
    kpis,
)
from cti.reports.parts import Grouping, Parts, PartsQuery
from cti.store.calls import CallLog
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Callback, Commitment, Customer, SurveyAnswer
from ivr.config import ConfigError, load_settings
from tests.support.service import IVR

NY = ZoneInfo("America/New_York")
PERIOD = Period(datetime(2025, 11, 1, tzinfo=NY), datetime(2025, 11, 4, tzinfo=NY))
THRESHOLDS = Thresholds()  # 20 s, 5 s, 72 h


def local(day: int, hour: int, minute: int, second: float = 0, fold: int = 0) -> datetime:
    """A wall-clock time in New York in November 2025 (fold=1: the second 01:30 of
    the 2nd), as the UTC time the log stores."""
    whole = int(second)
    moment = datetime(2025, 11, day, hour, minute, whole, tzinfo=NY, fold=fold)
    return (moment + timedelta(seconds=second - whole)).astimezone(UTC)


def later(start: datetime, seconds: float) -> datetime:
    return start + timedelta(seconds=seconds)


def answered(
    start: datetime,
    queue: str,
    agent: str,
    *,
    ivr: float,
    wait: float,
    talk: float,
    hold: float | None = None,
    wrapup: float | None = None,
    agent_done: bool = True,
    **facts: Any,
) -> dict[str, Any]:
    """An answered call: `ivr` s in the IVR, `wait` in the queue, then `talk` + `hold`
    with the agent (their part ends the call), then `wrapup` to the disposition."""
    queued = later(start, ivr)
    answer = later(queued, wait)
    done = later(answer, talk + (hold or 0))
    row = {
        "started_at": start,
        "ivr_end": "routed",
        "route": f"queue:{queue}",
        "ivr_ended_at": queued,
        "queue": queue,
        "queue_entered_at": queued,
        "answered_at": answer,
        "agent": agent,
        "ended_at": done,
    }
    if agent_done:
        row["agent_done_at"] = done
    if hold is not None:
        row["hold_seconds"] = hold
    if wrapup is not None:
        row["disposed_at"] = later(done, wrapup)
    return row | facts


def abandoned(start: datetime, queue: str, *, ivr: float, wait: float, **facts: Any) -> dict:
    queued = later(start, ivr)
    row = {
        "started_at": start,
        "ivr_end": "routed",
        "route": f"queue:{queue}",
        "ivr_ended_at": queued,
        "queue": queue,
        "queue_entered_at": queued,
        "abandoned": True,
        "ended_at": later(queued, wait),
    }
    return row | facts


def ivr_only(start: datetime, ivr_end: str, seconds: float, **facts: Any) -> dict[str, Any]:
    end = later(start, seconds)
    return {"started_at": start, "ivr_end": ivr_end, "ivr_ended_at": end, "ended_at": end} | facts


CS = {"kind": "inbound", "flow": "customer_service", "entry": "5551000"}
SURVEY = {"kind": "survey", "flow": "survey", "campaign": "csat", "entry": "survey"}


def seed(sessions: sessionmaker[Session]) -> None:
    """The calls of the module docstring, their callbacks, survey answers and commitments."""
    with sessions.begin() as db:
        c = {n: Customer(name=f"customer {n}") for n in range(1, 7)}
        db.add_all(c.values())
        db.flush()
        r1 = Callback(
            customer_id=c[4].id, number="+15550004", due_at=local(3, 9, 0),
            created_at=local(3, 8, 21), linkedid="A8",
        )  # fmt: skip
        r2 = Callback(
            customer_id=c[4].id, number="+15550004", due_at=local(3, 9, 0),
            created_at=local(2, 12, 0),
        )  # fmt: skip
        db.add_all([r1, r2])
        db.flush()
        ids = {n: customer.id for n, customer in c.items()} | {"R1": r1.id, "R2": r2.id}

    log = CallLog(sessions)
    calls: dict[str, dict[str, Any]] = {
        "A1": answered(
            local(1, 9, 0), "support", "ana", ivr=30, wait=10, talk=100, hold=20, wrapup=30,
            customer_id=ids[1], caller_number="+15551001", **CS,
        ),
        "A2": answered(
            local(1, 10, 0), "support", "bo", ivr=20, wait=30, talk=60, agent_done=False,
            transferred=True, customer_id=ids[1], caller_number="+15551001", **CS,
        ),
        "A12": answered(
            local(1, 15, 0), "sales", "bo", ivr=10, wait=20, talk=60,
            customer_id=ids[6], **CS,
        ),
        "A3": answered(
            local(2, 1, 30), "sales", "ana", ivr=15, wait=5, talk=200, wrapup=10,
            caller_number="+15550001", **CS,
        ),
        "A4": abandoned(
            local(2, 1, 30, fold=1), "sales", ivr=10, wait=3, caller_number="+15550001", **CS
        ),
        "A5": abandoned(local(2, 23, 59, 50), "support", ivr=5, wait=40, customer_id=ids[2], **CS),
        "A6": ivr_only(local(3, 8, 0), "contained", 60, route="hangup", customer_id=ids[3], **CS),
        "A7": ivr_only(local(3, 8, 10), "abandoned_ivr", 30, **CS),
        "A8": ivr_only(
            local(3, 8, 20), "contained", 60, route="hangup", callback_requested=True,
            customer_id=ids[4], **CS,
        ),
        "A9": ivr_only(local(3, 8, 30), "routed", 60, route="transfer:+15559999", **CS),
        "A10": {"started_at": local(3, 8, 40), "ended_at": local(3, 8, 40, 5)},
        "CB1": answered(
            local(3, 9, 21), "support", "bo", ivr=30, wait=10, talk=50, agent_done=False,
            kind="callback", flow="callback", campaign="callbacks", callback_id=ids["R1"],
            customer_id=ids[4],
        ),
        "CB2": {
            "started_at": local(3, 10, 0), "ended_at": local(3, 10, 0, 30), "kind": "callback",
            "campaign": "callbacks", "callback_id": ids["R2"], "customer_id": ids[4],
        },
        "CB3": answered(
            local(3, 12, 0), "support", "ana", ivr=5, wait=25, talk=30, agent_done=False,
            kind="callback", flow="callback", campaign="callbacks", callback_id=ids["R2"],
            customer_id=ids[4],
        ),
        "S1": ivr_only(
            local(3, 13, 0), "contained", 60, survey_completed=True, customer_id=ids[6],
            origin_call_id="A12", **SURVEY,
        ),
        "S2": ivr_only(
            local(3, 13, 10), "contained", 60, survey_completed=True, origin_call_id="A1",
            **SURVEY,
        ),
        "S3": ivr_only(local(3, 13, 20), "abandoned_ivr", 40, **SURVEY),
        "S4": ivr_only(local(3, 13, 30), "abandoned_ivr", 10, **SURVEY),
        "A11": answered(
            local(3, 14, 0), "support", "bo", ivr=30, wait=15, talk=240, hold=60, wrapup=60,
            customer_id=ids[5], **CS,
        ),
        # Not counted, or only as a customer's next call:
        "B1": ivr_only(
            datetime(2025, 10, 31, 23, 30, tzinfo=NY).astimezone(UTC), "contained", 60,
            customer_id=ids[1], **CS,
        ),
        "P1": {"started_at": local(3, 15, 0), "queue": "support",
               "queue_entered_at": local(3, 15, 0, 20), "customer_id": ids[2], **CS},
        "O2": ivr_only(local(5, 14, 0), "contained", 60, customer_id=ids[5], **CS),
        "O3": ivr_only(local(4, 16, 0), "contained", 60, customer_id=ids[6], **CS),
    }  # fmt: skip
    for linkedid, facts in calls.items():
        log.record(linkedid, facts)

    with sessions.begin() as db:
        answers = {
            "S1": {"csat": ("scale5", "5"), "nps": ("nps", "10"), "solved": ("yesno", "yes")},
            "S2": {"csat": ("scale5", "3"), "nps": ("nps", "9"), "solved": ("yesno", "no")},
            "S3": {"csat": ("scale5", "4"), "nps": ("nps", "2")},  # hung up before the end
        }  # S4: hung up before the first answer
        for call, questions in answers.items():
            for question, (scale, value) in questions.items():
                db.add(SurveyAnswer(call_id=call, question=question, scale=scale, value=value))
        for due, status in [
            (date(2025, 11, 1), "open"),  # past due on the 3rd
            (date(2025, 11, 2), "open"),  # past due on the 3rd
            (date(2025, 11, 3), "open"),  # due today: not past
            (date(2025, 11, 20), "open"),
            (date(2025, 10, 30), "kept"),
            (date(2025, 10, 29), "broken"),
        ]:
            db.add(Commitment(linkedid="A1", text="send the form", due=due, status=status,
                              created_by="ana"))  # fmt: skip


@pytest.fixture(params=["from the calls", "from the interval rollups"])
def db(request: pytest.FixtureRequest, sessions: sessionmaker[Session]) -> Any:
    """The fixture calls, read as they are written (every interval stale) or after the
    refresher has rolled every interval up: the same figures either way."""
    seed(sessions)
    if request.param == "from the interval rollups":
        assert intervals.refresh(sessions, THRESHOLDS) > 0
        with sessions() as session:
            assert intervals.pending(session) == []
    with sessions() as session:
        yield session


def by_group(rows: list[Kpis]) -> dict[str | None, Kpis]:
    return {row.group: row for row in rows}


def test_the_whole_period(db: Session) -> None:
    [row] = kpis(db, PERIOD, THRESHOLDS, NY)
    assert row.group is None
    # A1-A12 (12), CB1-CB3 (3), S1-S4 (4); not B1, P1, O2, O3
    assert row.calls == 19
    assert row.outcomes == {
        "answered": 7,  # A1 A2 A3 A11 A12 CB1 CB3
        "abandoned_queue": 2,  # A4 A5
        "contained": 1,  # A6
        "abandoned_ivr": 3,  # A7 S3 S4
        "callback_requested": 1,  # A8
        "transferred": 1,  # A9, by the IVR
        "survey_completed": 2,  # S1 S2
        "failed": 2,  # A10 CB2
    }
    # IVR: every call but A10 and CB2 ran a flow: 19 - 2 = 17
    assert (row.ivr_calls, row.contained, row.abandoned_ivr) == (17, 1, 3)
    assert row.containment == pytest.approx(1 / 17)
    assert row.abandon_rate_ivr == pytest.approx(3 / 17)
    # Queues: A1 A2 A3 A4 A5 A11 A12 CB1 CB3 joined one; A4 left within 3 s < 5 s
    assert (row.offered, row.short_abandons, row.abandoned_queue) == (9, 1, 2)
    # within 20 s: A1 10, A3 5, A11 15, A12 20 (the threshold itself), CB1 10; not A2 30, CB3 25
    assert (row.answered, row.answered_in_time) == (7, 5)
    assert row.service_level == pytest.approx(5 / (9 - 1))  # 0.625
    assert row.abandon_rate_queue == pytest.approx((2 - 1) / (9 - 1))  # A5 only: 0.125
    assert row.asa == pytest.approx((10 + 30 + 5 + 15 + 20 + 10 + 25) / 7)  # 115 / 7
    assert (row.callback_requested, row.failed) == (1, 2)
    assert row.transferred == 2  # A2 by its agent (still answered), A9 by the IVR
    # talk: A1 100, A2 60, A3 200, A11 240, A12 60, CB1 50, CB3 30 = 740
    assert row.avg_talk == pytest.approx(740 / 7)
    assert row.avg_hold == pytest.approx((20 + 60) / 7)  # A1, A11; none for the others
    assert row.avg_wrapup == pytest.approx((30 + 10 + 60) / 7)  # A1, A3, A11
    assert row.aht == pytest.approx((740 + 80 + 100) / 7)  # 131.43
    # FCR: answered inbound calls of a known customer: A1 A2 (c1), A3 (n1), A11 (c5),
    # A12 (c6). Repeats: A1 (A2 1 h later), A3 (A4 1 h later, abandoned: still a call),
    # A11 (O2 48 h later, after the period). A2: none after; A12: O3 74 h later > 72 h,
    # S1 (c6) 47 h later is a survey call, not an inbound one.
    assert (row.fcr_calls, row.repeats) == (5, 3)
    assert row.fcr == pytest.approx(2 / 5)
    assert row.repeat_rate == pytest.approx(3 / 5)
    # Callbacks: CB1 CB2 CB3 dialled, CB1 CB3 reached
    assert (row.callbacks, row.callbacks_reached) == (3, 2)
    assert row.callback_success == pytest.approx(2 / 3)
    # R1: 08:21 -> 09:21 = 3600 s; R2: 11-02 12:00 -> 11-03 12:00 EST = 86400 s
    assert row.time_to_callback == pytest.approx((3600 + 86400) / 2)  # 45000
    # CSAT: 5, 3, 4 -> 4 and 5 are 2 of 3; the yes/no answers count in neither
    assert (row.csat_answers, row.csat) == (3, pytest.approx(2 / 3))
    # NPS: 10, 9 promoters, 2 a detractor: (2 - 1) / 3 * 100
    assert (row.nps_answers, row.nps) == (3, pytest.approx(100 / 3))


def test_thresholds_move_the_figures(db: Session) -> None:
    thresholds = Thresholds(answer_seconds=10, short_abandon_seconds=0, repeat_hours=48)
    [row] = kpis(db, PERIOD, thresholds, NY)
    # within 10 s: A1 10, A3 5, CB1 10; no abandon is short now
    assert (row.answered_in_time, row.short_abandons) == (3, 0)
    assert row.service_level == pytest.approx(3 / 9)
    assert row.abandon_rate_queue == pytest.approx(2 / 9)
    # O2 comes 48 h after A11: still within 48 h
    assert (row.fcr_calls, row.repeats) == (5, 3)
    [row] = kpis(db, PERIOD, replace(thresholds, repeat_hours=47.9), NY)
    assert (row.fcr_calls, row.repeats) == (5, 2)  # A1, A3


def test_by_queue_and_one_queue(db: Session) -> None:
    rows = kpis(db, PERIOD, THRESHOLDS, NY, by="queue")
    assert [row.group for row in rows] == ["sales", "support", None]  # no queue last
    groups = by_group(rows)
    sales, support, none = groups["sales"], groups["support"], groups[None]
    # sales: A3 answered in 5 s, A4 short abandon, A12 answered in 20 s
    assert (sales.calls, sales.offered, sales.short_abandons, sales.answered) == (3, 3, 1, 2)
    assert sales.service_level == pytest.approx(2 / (3 - 1))
    assert sales.abandon_rate_queue == pytest.approx(0.0)  # the short abandon left out
    assert sales.asa == pytest.approx((5 + 20) / 2)
    assert (sales.fcr_calls, sales.repeats) == (2, 1)  # A3 repeated, A12 not
    # support: A1 A2 A5 A11 CB1 CB3; in time A1 A11 CB1; A5 abandoned after 40 s
    assert (support.calls, support.offered, support.answered, support.answered_in_time) == (
        6, 6, 5, 3,
    )  # fmt: skip
    assert support.service_level == pytest.approx(3 / 6)
    assert support.abandon_rate_queue == pytest.approx(1 / 6)
    assert support.fcr == pytest.approx(1 / 3)  # A1 A11 repeated, A2 not
    assert support.time_to_callback == pytest.approx(45000)
    # none: A6-A10, CB2, S1-S4
    assert (none.calls, none.offered, none.service_level, none.asa) == (10, 0, None, None)
    assert none.csat == pytest.approx(2 / 3)
    assert sum(row.calls for row in rows) == 19

    [only] = kpis(db, replace(PERIOD, queue="sales"), THRESHOLDS, NY)
    assert only == replace(sales, group=None)
    assert kpis(db, replace(PERIOD, queue="sales"), THRESHOLDS, NY, by="queue") == [sales]
    [nothing] = kpis(db, replace(PERIOD, queue="nobody"), THRESHOLDS, NY)
    assert nothing.calls == 0 and nothing.service_level is None and nothing.nps is None
    assert nothing.outcomes["answered"] == 0


def test_by_agent_with_hold_and_wrapup_in_the_handle_time(db: Session) -> None:
    groups = by_group(kpis(db, PERIOD, THRESHOLDS, NY, by="agent"))
    assert list(groups) == ["ana", "bo", None]
    ana, bo = groups["ana"], groups["bo"]
    # ana: A1 100 + 20 hold + 30 wrap-up, A3 200 + 10 wrap-up, CB3 30
    assert ana.answered == 3
    assert ana.aht == pytest.approx((150 + 210 + 30) / 3)  # 130
    assert ana.avg_hold == pytest.approx(20 / 3)
    # bo: A2 60, A11 240 + 60 hold + 60 wrap-up, A12 60, CB1 50
    assert bo.answered == 4
    assert bo.aht == pytest.approx((60 + 360 + 60 + 50) / 4)  # 132.5
    assert bo.avg_talk == pytest.approx((60 + 240 + 60 + 50) / 4)
    assert bo.avg_wrapup == pytest.approx(60 / 4)
    assert bo.transferred == 1  # A2
    assert groups[None].answered == 0 and groups[None].aht is None
    # A survey's answers count for the agent of the call it follows: S1 (5, 10) follows
    # bo's A12, S2 (3, 9) ana's A1; S3 (4, 2) follows no call.
    assert (bo.csat_answers, bo.csat, bo.nps) == (1, 1.0, 100.0)
    assert (ana.csat_answers, ana.csat, ana.nps) == (1, 0.0, 100.0)
    assert (groups[None].csat_answers, groups[None].csat, groups[None].nps) == (1, 1.0, -100.0)


def test_by_flow_and_by_campaign(db: Session) -> None:
    flows = by_group(kpis(db, PERIOD, THRESHOLDS, NY, by="flow"))
    assert list(flows) == ["callback", "customer_service", "survey", None]
    cs, survey = flows["customer_service"], flows["survey"]
    assert (cs.calls, cs.ivr_calls, cs.contained) == (11, 11, 1)  # A1-A9, A11, A12
    assert cs.containment == pytest.approx(1 / 11)
    assert cs.abandon_rate_ivr == pytest.approx(1 / 11)  # A7
    assert (survey.calls, survey.abandoned_ivr, survey.outcomes["survey_completed"]) == (4, 2, 2)
    assert survey.containment == pytest.approx(0.0)
    assert survey.abandon_rate_ivr == pytest.approx(2 / 4)  # S3, S4 unfinished
    assert (flows["callback"].calls, flows[None].calls) == (2, 2)  # CB1 CB3; A10 CB2
    assert flows[None].ivr_calls == 0 and flows[None].containment is None

    campaigns = by_group(kpis(db, PERIOD, THRESHOLDS, NY, by="campaign"))
    assert list(campaigns) == ["callbacks", "csat", None]
    callbacks, csat = campaigns["callbacks"], campaigns["csat"]
    assert (callbacks.callbacks, callbacks.callbacks_reached) == (3, 2)
    assert callbacks.callback_success == pytest.approx(2 / 3)
    assert callbacks.time_to_callback == pytest.approx(45000)
    assert (csat.calls, csat.csat_answers, csat.nps_answers) == (4, 3, 3)
    assert csat.csat == pytest.approx(2 / 3)
    assert csat.nps == pytest.approx(100 / 3)
    assert campaigns[None].csat is None and campaigns[None].callback_success is None


def test_by_hour_and_day_in_the_centers_zone(db: Session) -> None:
    hours = by_group(kpis(db, PERIOD, THRESHOLDS, NY, by="hour"))
    # A3 at 01:30 EDT and A4 at 01:30 EST: both in hour 01 (05:30 and 06:30 UTC).
    # A5 starts 23:59:50 EST (04:59:50 UTC the next day): hour 23.
    assert {hour: row.calls for hour, row in hours.items()} == {
        "01": 2,  # A3 A4
        "08": 5,  # A6-A10
        "09": 2,  # A1, CB1
        "10": 2,  # A2, CB2
        "12": 1,  # CB3
        "13": 4,  # S1-S4
        "14": 1,  # A11
        "15": 1,  # A12
        "23": 1,  # A5
    }
    assert list(hours) == sorted(hours)
    assert hours["01"].short_abandons == 1
    assert hours["09"].time_to_callback == pytest.approx(3600)  # CB1
    assert hours["12"].time_to_callback == pytest.approx(86400)  # CB3
    assert hours["13"].nps == pytest.approx(100 / 3)

    days = by_group(kpis(db, PERIOD, THRESHOLDS, NY, by="day"))
    # A5 started before midnight on the 2nd and ended on the 3rd: the 2nd's.
    # B1 (10-31 23:30 EDT, 11-01 03:30 UTC) is before the period.
    assert {day: row.calls for day, row in days.items()} == {
        "2025-11-01": 3,  # A1 A2 A12
        "2025-11-02": 3,  # A3 A4 A5
        "2025-11-03": 13,  # A6-A11, CB1-CB3, S1-S4
    }
    assert days["2025-11-02"].abandoned_queue == 2
    assert days["2025-11-01"].fcr == pytest.approx(2 / 3)  # A1 repeated, A2 and A12 not
    assert days["2025-11-01"].fcr_calls == 3

    # The same calls in UTC: A5 falls on the 3rd, B1 on the 1st (and in the period).
    utc = Period(datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 11, 4, tzinfo=UTC))
    in_utc = by_group(kpis(db, utc, THRESHOLDS, ZoneInfo("UTC"), by="day"))
    assert {day: row.calls for day, row in in_utc.items()} == {
        "2025-11-01": 4,  # B1 A1 A2 A12 (B1 03:30 UTC; A12 19:00 UTC)
        "2025-11-02": 2,  # A3 A4
        "2025-11-03": 14,  # A5 and the 13 of the 3rd
    }


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Australia/Eucla"])
def test_hours_from_utc_buckets_are_the_local_hours(db: Session, zone: str) -> None:
    """Hours and days add up from UTC hours (quarter hours where the offset is not whole
    hours: +05:30, +08:45), and come out as the time zone arithmetic per call gives."""
    tz = ZoneInfo(zone)
    period = Period(datetime(2025, 11, 1, tzinfo=tz), datetime(2025, 11, 4, tzinfo=tz))
    assert _bucket_width(tz) == (3600 if zone == "America/New_York" else 900)
    for by in ("hour", "day"):
        per_call = PartsQuery(db, period, THRESHOLDS, Grouping("local", by, zone=zone)).parts()
        expected = sorted((_kpis(group, parts) for group, parts in per_call.items()),
                          key=lambda row: row.group or "")  # fmt: skip
        assert kpis(db, period, THRESHOLDS, tz, by=by) == expected


def test_buckets_across_the_end_of_daylight_saving_time_roll_up() -> None:
    """01:00-01:59 EDT and 01:00-01:59 EST are two UTC hours of one local hour."""
    first = int(datetime(2025, 11, 2, 5, tzinfo=UTC).timestamp()) // 3600
    buckets = {first: Parts(calls=1), first + 1: Parts(calls=2), first + 2: Parts(calls=4)}
    hours = _roll_up(buckets, 3600, NY, "hour")
    assert hours is not None
    assert {hour: parts.calls for hour, parts in hours.items()} == {"01": 3, "02": 4}
    kolkata = _roll_up(buckets, 3600, ZoneInfo("Asia/Kolkata"), "hour")
    assert kolkata is None  # an hour bucket spans two local hours at +05:30


def test_breakdowns_at_once_are_the_breakdowns_one_by_one(db: Session) -> None:
    """All, by hour and by day share one pass; the figures are kpis' own."""
    found = breakdowns(db, PERIOD, THRESHOLDS, NY, None, "hour", "day", "queue")
    assert list(found) == [None, "hour", "day", "queue"]
    for by, rows in found.items():
        assert rows == kpis(db, PERIOD, THRESHOLDS, NY, by=by)
    assert sum(row.calls for row in found["hour"]) == 19


def test_every_breakdown_adds_up_to_the_whole(db: Session) -> None:
    [whole] = kpis(db, PERIOD, THRESHOLDS, NY)
    for by in DIMENSIONS:
        rows = kpis(db, PERIOD, THRESHOLDS, NY, by=by)
        for name in ("calls", "answered", "offered", "repeats", "csat_answers", "callbacks"):
            assert sum(getattr(row, name) for row in rows) == getattr(whole, name), (by, name)


def test_an_unknown_breakdown_names_the_allowed_ones(db: Session) -> None:
    with pytest.raises(ValueError, match="queue, agent, campaign, flow, hour, day"):
        kpis(db, PERIOD, THRESHOLDS, NY, by="week")
    with pytest.raises(ValueError, match="time zone"):
        kpis(db, Period(datetime(2025, 11, 1), datetime(2025, 11, 4)), THRESHOLDS, NY)


def test_an_empty_period(db: Session) -> None:
    empty = Period(datetime(2024, 1, 1, tzinfo=NY), datetime(2024, 1, 2, tzinfo=NY))
    [row] = kpis(db, empty, THRESHOLDS, NY)
    assert (row.group, row.calls, row.fcr, row.time_to_callback, row.csat) == (
        None, 0, None, None, None,
    )  # fmt: skip
    assert kpis(db, empty, THRESHOLDS, NY, by="hour") == []


def test_the_widest_period(db: Session) -> None:
    """The reports page takes days from 1900 to 9998: every ended call but P1's."""
    ever = Period(datetime(1900, 1, 1, tzinfo=NY), datetime(9999, 1, 1, tzinfo=NY))
    [row] = kpis(db, ever, replace(THRESHOLDS, repeat_hours=8784), NY)
    assert row.calls == 22  # the 19, B1, O2, O3
    assert sum(day.calls for day in kpis(db, ever, THRESHOLDS, NY, by="day")) == 22


def test_commitments_past_due(db: Session) -> None:
    assert commitments_past_due(db, date(2025, 11, 3)) == 2  # due the 1st and the 2nd
    assert commitments_past_due(db, date(2025, 11, 4)) == 3
    assert commitments_past_due(db, date(2025, 11, 1)) == 0


def test_csv_and_json_exports(db: Session) -> None:
    rows = kpis(db, PERIOD, THRESHOLDS, NY, by="queue")
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [line["group"] for line in table] == ["sales", "support", ""]
    assert table[0]["service_level"] == "1.0"
    assert table[1]["service_level"] == "0.5"
    assert table[1]["abandon_rate_queue"] == "0.1667"  # 1/6, to 4 decimals
    assert table[2]["service_level"] == ""  # none
    assert table[1]["outcome_answered"] == "5"
    data = json.loads(to_json(rows))
    assert data[1]["group"] == "support"
    assert data[1]["answered"] == 5
    assert data[1]["outcomes"]["abandoned_queue"] == 1
    assert data[2]["group"] is None and data[2]["asa"] is None
    assert json.loads(to_json([])) == []


def figure(line: str) -> tuple[str, str]:
    """A line of a one-column table: (label, value)."""
    label, value = line.rsplit(maxsplit=1)
    return label.strip(), value


def test_the_table_for_the_terminal(db: Session) -> None:
    text = to_table(kpis(db, PERIOD, THRESHOLDS, NY))
    lines = dict(figure(line) for line in text.splitlines()[1:])
    assert text.splitlines()[0].split() == ["all"]
    assert lines["service level"] == "62.5%"
    assert lines["average handle time"] == "131.4s"
    assert lines["NPS"] == "+33.3"
    assert lines["calls"] == "19"
    assert lines["outcome answered"] == "7"
    hours = to_table(kpis(db, PERIOD, THRESHOLDS, NY, by="hour"), width=60)
    assert max(len(line) for line in hours.splitlines()) <= 60  # in blocks of columns
    assert hours.count("service level") > 1


def test_report_settings() -> None:
    settings = load_settings(environ={})
    assert settings.reports.timezone == "UTC"
    assert settings.reports.thresholds() == Thresholds(20, 5, 72)
    env = {"IVR_REPORTS__TIMEZONE": "America/New_York", "IVR_REPORTS__REPEAT_HOURS": "24"}
    settings = load_settings(environ=env)
    assert settings.reports.zone() == NY
    assert settings.reports.thresholds().repeat_hours == 24
    with pytest.raises(ConfigError, match=r"reports.timezone: .*unknown time zone.*'Mars/Base'"):
        load_settings(environ={"IVR_REPORTS__TIMEZONE": "Mars/Base"})
    with pytest.raises(ConfigError, match=r"reports\.repeat_hours"):
        load_settings(environ={"IVR_REPORTS__REPEAT_HOURS": "0"})


def ivr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "", "IVR_REPORTS__TIMEZONE": "America/New_York"}
    return subprocess.run(
        [IVR, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def test_ivr_report(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'ivr.sqlite3'}")  # the default URL
    upgrade(engine)
    seed(session_factory(engine))
    engine.dispose()

    table = ivr("report", "--from", "2025-11-01", "--to", "2025-11-03", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "KPIs of 2025-11-01 to 2025-11-03 (America/New_York)" in table.stdout
    assert "answered within 20 s" in table.stdout
    rows = dict(figure(line) for line in table.stdout.splitlines() if len(line.split()) > 1)
    assert rows["calls"] == "19"
    assert rows["service level"] == "62.5%"
    assert rows["queue abandon rate"] == "12.5%"
    assert rows["average speed of answer"] == "16.4s"  # 115 / 7
    assert rows["time to callback"] == "45000.0s"

    # --to is inclusive: the 2nd alone has A3 A4 A5
    one_day = ivr("report", "--from", "2025-11-02", "--to", "2025-11-02", "--format", "json",
                  cwd=tmp_path)  # fmt: skip
    [data] = json.loads(one_day.stdout)
    assert (data["calls"], data["short_abandons"], data["abandoned_queue"]) == (3, 1, 2)

    by_day = ivr("report", "--from", "2025-11-01", "--to", "2025-11-03", "--by", "day",
                 "--queue", "support", "--format", "csv", cwd=tmp_path)  # fmt: skip
    assert by_day.returncode == 0, by_day.stderr
    lines = list(csv.DictReader(io.StringIO(by_day.stdout)))
    assert [(line["group"], line["calls"]) for line in lines] == [
        ("2025-11-01", "2"), ("2025-11-02", "1"), ("2025-11-03", "3"),
    ]  # fmt: skip

    bad = ivr("report", "--from", "2025-11-31", "--to", "2025-12-01", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--from '2025-11-31': expected a day" in bad.stderr
    backwards = ivr("report", "--from", "2025-11-03", "--to", "2025-11-01", cwd=tmp_path)
    assert backwards.returncode == 2 and "--from is after --to" in backwards.stderr
    unknown = ivr("report", "--from", "2025-11-01", "--to", "2025-11-01", "--by", "week",
                  cwd=tmp_path)  # fmt: skip
    assert unknown.returncode == 2 and "--by" in unknown.stderr
