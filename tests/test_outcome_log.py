"""The outcome log's row of a call, written by both sides (the IVR's part, Asterisk's
events), on SQLite and on the real PostgreSQL: the same row whatever the order."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cti.bus import InProcessBus
from cti.recorder import Recorder
from cti.store.calls import CallLog, IvrPart
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Call
from cti.store.spool import Spool
from tests.support.relay import Relay

T0 = datetime(2025, 11, 22, 23, 59, 30, tzinfo=UTC)  # over midnight, in the past


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def log(sessions: sessionmaker[Session]) -> CallLog:
    return CallLog(sessions)


def ivr_part(linkedid: str, **fields: Any) -> IvrPart:
    part = IvrPart(linkedid, {"linkedid": linkedid, "entry": "5551000", **fields})
    part.note("match", "main_menu", {"mode": "dtmf", "value": "3"})
    return part


def row(sessions: sessionmaker[Session], linkedid: str) -> Call:
    with sessions() as db:
        query = select(Call).where(Call.id == linkedid).options(selectinload(Call.journey))
        return db.scalars(query).one()


def summary(call: Call) -> tuple[Any, ...]:
    return (
        call.outcome,
        call.ivr_end,
        call.queue,
        call.wait_seconds,
        call.talk_seconds,
        call.abandoned,
    )


def answered_call_writes(log: CallLog, linkedid: str) -> list[Callable[[], None]]:
    """Each write of one answered call, as the IVR and the recorder make them."""
    return [
        lambda: log.save(ivr_part(linkedid, started_at=at(1)), "routed", "queue:support", False),
        lambda: log.record(linkedid, {"started_at": at(0), "caller_number": "+14155550100"}),
        lambda: log.record(linkedid, {"queue": "support", "queue_entered_at": at(20)}),
        lambda: log.record(linkedid, {"answered_at": at(32.5)}),
        lambda: log.record(linkedid, {"agent_done_at": at(152.5)}),
        lambda: log.record(linkedid, {"ended_at": at(153)}),
    ]


def test_an_answered_call_is_the_same_row_in_any_order(log: CallLog) -> None:
    rows = set()
    for n, order in enumerate(itertools.permutations(range(6))):
        if n % 7:  # 720 orders: a spread of 103 of them keeps the test quick
            continue
        linkedid = f"1800.{n}"
        writes = answered_call_writes(log, linkedid)
        for i in order:
            writes[i]()
        found = row(log.sessions, linkedid)
        rows.add((*summary(found), found.started_at.replace(tzinfo=None), len(found.journey)))
    assert len(rows) == 1
    (result,) = rows
    outcome, ivr_end, queue, wait, talk, abandoned, started, steps = result
    assert (outcome, ivr_end, queue, abandoned, steps) == (
        "answered",
        "routed",
        "support",
        False,
        1,
    )
    assert started == at(0).replace(tzinfo=None)  # the earliest start either side saw
    assert (wait, talk) == (12.5, 120.0)
    found = row(log.sessions, "1800.0")  # the IVR's time: to when its part was written
    assert found.ivr_ended_at is not None
    assert found.ivr_seconds == (found.ivr_ended_at - found.started_at).total_seconds()


def test_a_writes_repeated_changes_nothing(log: CallLog) -> None:
    writes = answered_call_writes(log, "1801.1")
    for write in writes:
        write()
    first = summary(row(log.sessions, "1801.1"))
    for write in writes[1:]:  # the IVR's part is written once; Asterisk's events may repeat
        write()
    assert summary(row(log.sessions, "1801.1")) == first


def test_the_ivr_finished_it(log: CallLog) -> None:
    log.save(ivr_part("1802.1", started_at=at(0)), "contained", "hangup", True)
    assert row(log.sessions, "1802.1").outcome == "contained"
    log.record("1802.1", {"started_at": at(0.2)})  # Asterisk's events come after
    log.record("1802.1", {"ended_at": at(50)})
    found = row(log.sessions, "1802.1")
    assert (found.outcome, found.wait_seconds, found.talk_seconds) == ("contained", None, None)


def test_a_queue_abandon(log: CallLog) -> None:
    log.record("1803.1", {"started_at": at(0)})
    log.save(ivr_part("1803.1"), "routed", "queue:support", False)
    log.record("1803.1", {"queue": "support", "queue_entered_at": at(10)})
    assert row(log.sessions, "1803.1").outcome is None  # still waiting
    log.record("1803.1", {"abandoned": True})
    log.record("1803.1", {"ended_at": at(100)})
    found = row(log.sessions, "1803.1")
    assert (found.outcome, found.abandoned, found.wait_seconds) == ("abandoned_queue", True, 90.0)


def test_a_callback_asked_for_in_the_ivr(log: CallLog) -> None:
    part = ivr_part("1804.1", started_at=at(0), callback_requested=True)
    log.save(part, "contained", "hangup", True)
    assert row(log.sessions, "1804.1").outcome == "callback_requested"


def test_a_caller_who_hung_up_before_the_ivr_wrote_anything(log: CallLog) -> None:
    log.record("1805.1", {"started_at": at(0), "caller_number": "+14155550100"})
    log.record("1805.1", {"ended_at": at(2)})
    found = row(log.sessions, "1805.1")
    assert (found.outcome, found.entry, found.caller_number) == ("failed", None, "+14155550100")


def test_after_an_ami_gap_the_reconciler_closes_calls_asterisk_no_longer_has(
    log: CallLog,
) -> None:
    """A call whose hang-up fell in the gap is closed; one still going stays open."""
    now = datetime.now(UTC)
    log.record("1806.1", {"started_at": now, "queue": "support", "queue_entered_at": now})
    log.record("1806.2", {"started_at": now})
    log.record("1806.3", {"started_at": now - timedelta(days=3)})  # too old: left alone
    live = {"1806.2"}
    bus = InProcessBus()
    recorder = Recorder(bus, log, lambda: live)

    async def resync() -> None:
        await bus.publish("ami.resynced", {"resyncs": 2})
        await recorder.drain()

    asyncio.run(resync())
    gone, going, old = (row(log.sessions, f"1806.{n}") for n in (1, 2, 3))
    assert (gone.outcome, gone.ended_at is not None) == ("abandoned_queue", True)
    assert (going.outcome, going.ended_at) == (None, None)
    assert old.ended_at is None
    assert recorder.health() == {"status": "ok", "failed": 0, "closed": 1}


def test_nothing_is_lost_while_the_database_is_away(postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL goes away mid-call (its connections cut, new ones refused) and comes
    back: the writes in between wait in the spool, survive a restart of the service,
    and are replayed in order."""
    upgrade(make_engine(postgres_url))
    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(port=relay.port).render_as_string(hide_password=False)
    log = CallLog(session_factory(make_engine(through)), Spool(tmp_path / "spool"))
    writes = answered_call_writes(log, "1807.1")
    writes[0]()  # the IVR's part, while the database is there
    relay.cut()
    for write in writes[1:]:
        write()
    assert log.spool is not None and log.spool.count == 5
    assert log.replay() == 0  # still away: nothing replayed, nothing dropped

    restarted = Spool(tmp_path / "spool")  # the service restarts meanwhile
    assert restarted.count == 5
    relay.restore()
    back = CallLog(session_factory(make_engine(through)), restarted)
    assert back.replay() == 5 and restarted.count == 0
    found = row(back.sessions, "1807.1")
    assert (found.outcome, found.queue, found.wait_seconds, found.talk_seconds) == (
        "answered",
        "support",
        12.5,
        120.0,
    )
    assert len(found.journey) == 1
    back.record("1807.1", {"transferred": True})  # and writes go straight in again
    assert row(back.sessions, "1807.1").transferred and restarted.count == 0
