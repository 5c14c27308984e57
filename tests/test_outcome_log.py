"""The outcome log's row of a call, written by both sides (the IVR's part, Asterisk's
events), on SQLite and on the real PostgreSQL: the same row whatever the order."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cti.bus import InProcessBus
from cti.recorder import Recorder
from cti.store.calls import CallLog, IvrPart, _create, _settle
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Call, SurveyAnswer
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


def test_many_calls_written_in_one_batch_give_the_rows_written_one_by_one(log: CallLog) -> None:
    """The writer commits what queued up meanwhile in one transaction, several writes to
    a row coalesced first: the rows are the same as from one write at a time."""
    writes = []
    for n, order in enumerate(itertools.permutations(range(6))):
        if n % 36:
            continue
        linkedid = f"1808.{n}"
        part = ivr_part(linkedid, started_at=at(1))
        part.note("answer", "csat", {"question": "csat", "scale": "scale5", "answer": "4"})
        call = [
            CallLog.part_write(part, "routed", "queue:support", False),
            CallLog.facts_write(linkedid, {"started_at": at(0)}),
            CallLog.facts_write(linkedid, {"queue": "support", "queue_entered_at": at(20)}),
            CallLog.facts_write(linkedid, {"answered_at": at(32.5), "hold_seconds": 10.0}),
            CallLog.facts_write(linkedid, {"agent_done_at": at(152.5), "hold_seconds": 30.0}),
            CallLog.facts_write(linkedid, {"ended_at": at(153)}),
        ]
        writes += [call[i] for i in order]
    log.apply(writes)
    one_by_one = CallLog(log.sessions)
    for kind, fields, events in writes:  # the same writes, to other rows, one at a time
        one_by_one.apply([[kind, {**fields, "id": "x" + fields["id"]}, events]])
    with log.sessions() as db:
        answers = db.scalars(select(SurveyAnswer.call_id)).all()
    for linkedid in {write[1]["id"] for write in writes}:
        batched, single = row(log.sessions, linkedid), row(log.sessions, "x" + linkedid)
        assert summary(batched) == summary(single) == (
            "answered", "routed", "support", 12.5, 90.0, False
        )  # fmt: skip
        assert batched.hold_seconds == 30.0 and batched.exit_node == "csat"
        assert [e.seq for e in batched.journey] == [e.seq for e in single.journey] == [1, 2]
        assert answers.count(linkedid) == answers.count("x" + linkedid) == 1


def test_where_the_caller_left_the_ivr_and_asked_for_an_agent(log: CallLog) -> None:
    part = IvrPart("1809.1", {"linkedid": "1809.1", "started_at": at(0)})
    part.note("match", "main_menu", {"value": "0", "goto": "agent", "escape": True})
    part.note("match", "agent_menu", {"value": "2", "goto": "billing"})
    part.note("hangup", "billing", {"by": "caller"})
    log.save(part, "abandoned_ivr", None, True)
    found = row(log.sessions, "1809.1")
    assert (found.outcome, found.exit_node, found.escape_node) == (
        "abandoned_ivr",
        "billing",
        "main_menu",
    )


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


def test_caller_numbers_are_kept_in_e164_whichever_side_reports_them(
    sessions: sessionmaker[Session],
) -> None:
    """A national caller ID is read in the center's region; one with no digits is none."""
    log = CallLog(sessions, region="GB")
    log.save(ivr_part("1806.1", started_at=at(0), caller_number="020 7946 0018"), "contained",
             "hangup", True)  # fmt: skip
    log.record("1806.2", {"started_at": at(0), "caller_number": "+33 1 42 68 53 00"})
    log.record("1806.3", {"started_at": at(0), "caller_number": "anonymous"})
    numbers = [row(sessions, call).caller_number for call in ("1806.1", "1806.2", "1806.3")]
    assert numbers == ["+442079460018", "+33142685300", None]


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


def test_a_spooled_write_the_database_rejects_is_set_aside_and_the_rest_go_in(
    log: CallLog, tmp_path: Path
) -> None:
    """Replayed in batches; a batch that fails for a bad write goes one by one, the bad
    write kept in calls.rejected.jsonl for a person, the others applied in order."""
    spool = Spool(tmp_path / "spool")
    bad = CallLog.facts_write("1810.2", {"ended_at": at(5)})
    bad[1]["started_at"] = "not a time"  # the database refuses it, for itself
    spool.extend(
        [
            CallLog.facts_write("1810.1", {"started_at": at(0)}),
            bad,
            CallLog.facts_write("1810.1", {"ended_at": at(9)}),
        ]
    )
    back = CallLog(log.sessions, spool)
    assert back.replay() == 3 and spool.count == 0
    assert row(log.sessions, "1810.1").ended_at is not None
    rejected = (tmp_path / "spool" / "calls.rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and "not a time" in rejected[0]
    with log.sessions() as db:
        assert db.scalar(select(Call.id).where(Call.id == "1810.2")) is None


def test_a_row_another_process_created_meanwhile_is_merged_into_not_lost(log: CallLog) -> None:
    """The writer looks up which of a batch's calls the log holds and inserts the others
    settled already; a call another process (process AGI) inserted in between is merged
    into instead, both sides' facts kept and the outcome worked out from them all."""
    log.record("1812.1", {"started_at": at(0), "queue": "support", "queue_entered_at": at(20)})
    part = CallLog.part_write(ivr_part("1812.1", started_at=at(1)), "routed", "queue:support", True)
    with log.sessions.begin() as db:  # as if the look-up had missed the stored row
        _settle(db, _create(db, [part[1]]))
    found = row(log.sessions, "1812.1")
    assert (found.queue, found.entry, found.ivr_end, found.outcome) == (
        "support",
        "5551000",
        "routed",
        "abandoned_queue",
    )
    assert found.started_at.replace(tzinfo=None) == at(0).replace(tzinfo=None)


def test_spooled_calls_are_kept_in_order_per_call_and_replayed_side_by_side(
    log: CallLog, tmp_path: Path
) -> None:
    """Each call's writes go to one of the spool's files, in order; the files replay
    side by side (two on PostgreSQL), and a call whose IVR came back for a second part
    keeps its journey in order."""
    spool = Spool(tmp_path / "spool")
    writes = []
    for n in range(40):
        linkedid = f"1813.{n}"
        first, second = ivr_part(linkedid, started_at=at(1)), IvrPart(linkedid)
        second.note("play", "overflow_menu", {"prompt": ["sorry"]})
        writes += [
            CallLog.facts_write(linkedid, {"started_at": at(0)}),
            CallLog.part_write(first, "routed", "queue:support", False),
            CallLog.facts_write(linkedid, {"queue": "support", "queue_entered_at": at(20)}),
            CallLog.part_write(second, "hangup", None, True),
        ]
    spool.extend(writes)
    assert all(shard.waiting for shard in spool.shards) and spool.count == 160
    assert CallLog(log.sessions, spool).replay() == 160 and not spool.waiting
    for n in range(40):
        found = row(log.sessions, f"1813.{n}")
        assert [(e.seq, e.node) for e in found.journey] == [(1, "main_menu"), (2, "overflow_menu")]
        assert (found.queue, found.ivr_end, found.exit_node) == (
            "support",
            "hangup",
            "overflow_menu",
        )


def test_a_spool_written_before_times_were_plain_text_still_replays(
    log: CallLog, tmp_path: Path
) -> None:
    """Spools of earlier versions tagged each time {"$dt": ...}: they replay as well."""
    spool = Spool(tmp_path / "spool")
    times = {"started_at": {"$dt": at(0).isoformat()}, "ended_at": {"$dt": at(9).isoformat()}}
    line = json.dumps(["record", {"id": "1814.1", "linkedid": "1814.1", **times}, []])
    spool.shards[0].path.write_text(line + "\n")
    assert CallLog(log.sessions, spool).replay() == 1
    found = row(log.sessions, "1814.1")
    assert (found.ended_at - found.started_at).total_seconds() == 9
