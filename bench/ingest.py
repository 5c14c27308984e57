"""Outcome-log ingest: calls per second into the log, on SQLite and PostgreSQL.

Each call is what the service writes for an answered call: the IVR's part (four journey
steps, one a survey answer) and Asterisk's five facts (start, queue, answer, agent done,
end), six writes. Three ways, in alternating rounds:

- finished calls: a backlog of finished calls replayed from the spool (the database was
  away for a while), each call's six writes together: one record per call. The goal,
  5,000 calls/s, is this rate.
- live: the writes interleaved with 200 calls going on at once, as Asterisk and the IVR
  send them on a busy system, through `CallLog.submit`, whose writer threads commit what
  queued up meanwhile in one transaction each; a batch rarely holds two writes of one
  call. The producer's own time is counted.
- one write per transaction, as before batching (the baseline of the ratio).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench.scratch import ScratchDatabase
from cti.store.calls import CallLog, IvrPart
from cti.store.models import Call
from cti.store.spool import Spool, Write

CALLS = 10000  # per round, finished and live
SINGLE_CALLS = 300  # one write per transaction is slow: fewer calls
CONCURRENT = 200
ROUNDS = 3
GOAL = 5000
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def call_writes(n: int) -> list[Write]:
    linkedid = f"{1800000000 + n}.{n}"

    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=n * 0.2 + seconds)

    part = IvrPart(linkedid, {"linkedid": linkedid, "entry": "5551000", "flow": "support"})
    part.note("play", "welcome", {"prompt": ["welcome"]})
    part.note("match", "main_menu", {"mode": "dtmf", "value": "2", "goto": "billing"})
    part.note("answer", "csat", {"question": "csat", "scale": "scale5", "answer": "5"})
    part.note("route", "billing", {"queue": "billing"})
    fact = CallLog.facts_write
    return [
        fact(linkedid, {"started_at": at(0), "caller_number": "+14155550100"}),
        CallLog.part_write(part, "routed", "queue:billing", False),
        fact(linkedid, {"queue": "billing", "queue_entered_at": at(20)}),
        fact(linkedid, {"answered_at": at(45)}),
        fact(linkedid, {"agent_done_at": at(200)}),
        fact(linkedid, {"ended_at": at(201)}),
    ]


def finished(calls: int) -> list[Write]:
    """The writes of `calls` calls, each call's together."""
    return [write for n in range(calls) for write in call_writes(n)]


def interleaved(calls: int) -> list[Write]:
    """The writes of `calls` calls, CONCURRENT of them going on at once."""
    out: list[Write] = []
    for first in range(0, calls, CONCURRENT):
        group = [call_writes(n) for n in range(first, min(first + CONCURRENT, calls))]
        for step in range(6):
            out += [writes[step] for writes in group]
    return out


class Database(ScratchDatabase):
    """An empty log."""

    def __init__(self, kind: str, folder: str) -> None:
        super().__init__(kind, folder, "ingest")
        self.folder = folder
        self.log = CallLog(self.sessions)

    def answered(self) -> int:
        with self.sessions() as db:
            query = select(func.count()).where(Call.outcome == "answered", Call.talk_seconds > 0)
            return db.scalar(query) or 0


def replayed(db: Database, writes: list[Write]) -> float:
    db.log.spool = Spool(Path(db.folder) / f"spool-{uuid.uuid4().hex[:8]}")
    db.log.spool.extend(writes)
    began = time.perf_counter()
    db.log.replay()
    took = time.perf_counter() - began
    assert db.log.spool.count == 0, "the spool was not emptied"
    return took


def batched(db: Database, writes: list[Write]) -> float:
    began = time.perf_counter()
    pending = [db.log.submit(write) for write in writes]
    db.log.flush()
    took = time.perf_counter() - began
    for done in pending:
        done.result()  # raises if a write failed
    return took


def one_by_one(db: Database, writes: list[Write]) -> float:
    began = time.perf_counter()
    for write in writes:
        db.log.apply([write])
    return time.perf_counter() - began


WAYS = (
    ("finished calls", CALLS, finished, replayed),
    ("live", CALLS, interleaved, batched),
    ("one write per transaction", SINGLE_CALLS, interleaved, one_by_one),
)


def measure(kind: str, folder: str) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name, *_ in WAYS}
    for _ in range(ROUNDS):
        for name, calls, order, how in WAYS:
            db = Database(kind, folder)
            try:
                took = how(db, order(calls))
                assert db.answered() == calls, f"{kind} {name}: not every call was logged"
            finally:
                db.drop()
            rates[name].append(calls / took)
    return rates


def run(folder: str = "var/bench") -> None:
    os.makedirs(folder, exist_ok=True)
    print(f"ingest: answered calls (6 writes each) into the outcome log, {ROUNDS} rounds")
    for kind in ("sqlite", "postgresql"):
        rates = measure(kind, folder)
        median = {name: sorted(r)[len(r) // 2] for name, r in rates.items()}
        print(f"  {kind}")
        for name, found in rates.items():
            rounds = ", ".join(f"{r:.0f}" for r in found)
            print(f"    {name:28} {median[name]:6.0f} calls/s  (rounds: {rounds})")
        base = median["one write per transaction"]
        print(f"    ratio live / one write per transaction  {median['live'] / base:.1f}")
        print(
            f"    headroom = finished / goal {GOAL}         {median['finished calls'] / GOAL:.2f}"
        )


if __name__ == "__main__":
    run()
