"""The outcome log's writes: what the IVR and Asterisk each learn about a call, merged
into its one row (keyed by Linkedid), and the outcome that follows (cti/outcomes.py).

The IVR keeps a call's facts and journey in memory (`IvrPart`) and writes them in one
transaction when its part of the call ends: routed, hung up, or failed. One commit per
call instead of one per event is what keeps the service's cost per call near the
native dialplan's (bench/RESULTS.md, asterisk_cost). A call that comes back to the IVR
(queue overflow) is a second part; its events follow the first part's.

Writers are synchronous SQLAlchemy; async callers run them in a worker thread
(`asyncio.to_thread`) so the event loop never blocks on the database. While the
database is away, writes wait in the spool (cti/store/spool.py) and the service
replays them when it is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam, case, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cti.outcomes import CallFacts, durations, outcome
from cti.store.models import Call, JourneyEvent, utcnow
from cti.store.spool import Spool, Write, unavailable

log = logging.getLogger("cti.calls")

CALLS = Call.__table__
JOURNEY_INSERT = insert(JourneyEvent.__table__)
LAST_SEQ = select(func.max(JourneyEvent.seq)).where(JourneyEvent.call_id == bindparam("call_id"))


@dataclass
class IvrPart:
    """One stretch of a call in the IVR, as it will be written."""

    call_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def note(self, kind: str, node: str | None, data: dict[str, Any]) -> None:
        self.events.append({"at": utcnow(), "kind": kind, "node": node, "data": data})


# How a write merges into what the row holds, so that the IVR's and Asterisk's facts
# arriving in any order leave the same row: first value stays, earliest, latest, any
# flag set; the other columns take the newest value.
FIRST = {"linkedid", "channel", "direction", "kind", "entry", "did", "caller_number", "flow",
         "flow_version", "customer_id", "queue_entered_at", "answered_at", "ended_at"}  # fmt: skip
EARLIEST = {"started_at"}
LATEST = {"ivr_ended_at", "agent_done_at"}
ANY = {"callback_requested", "survey_completed", "abandoned", "transferred"}
FACTS = select(
    *(CALLS.c[name] for name in ("kind", "started_at", "ivr_end", "route", "ivr_ended_at")),
    *(CALLS.c[name] for name in sorted(ANY)),
    *(CALLS.c[name] for name in ("queue_entered_at", "answered_at", "agent_done_at", "ended_at")),
).where(CALLS.c.id == bindparam("call_id"))
SETTLE = CALLS.update().where(CALLS.c.id == bindparam("call_id"))


def _merged(name: str, old: Any, new: Any) -> Any:
    if name in FIRST:
        return func.coalesce(old, new)
    if name in EARLIEST | LATEST:
        newer = new > old if name in LATEST else new < old
        return case((old.is_(None), new), (new.is_(None), old), (newer, new), else_=old)
    if name in ANY:
        return or_(old, new)
    return new


@cache
def upsert(dialect: str, columns: frozenset[str]) -> Insert:
    """INSERT into calls that merges into the row if it exists, for these `columns`.
    Built once per set of columns: building a statement costs more than running it."""
    module = {"sqlite": sqlite, "postgresql": postgresql}[dialect]
    statement = module.insert(CALLS)
    return statement.on_conflict_do_update(
        index_elements=[CALLS.c.id],
        set_={
            name: _merged(name, CALLS.c[name], statement.excluded[name])
            for name in sorted(columns - {"id"})
        },
    )


def settle(db: Session, call_id: str) -> None:
    """Work out the call's outcome and times again from its facts as they stand."""
    row = db.execute(FACTS, {"call_id": call_id}).one()
    facts = CallFacts(
        kind=row.kind,
        started_at=row.started_at,
        ivr_end=row.ivr_end,
        route=row.route,
        callback_requested=bool(row.callback_requested),
        survey_completed=bool(row.survey_completed),
        queue_entered_at=row.queue_entered_at,
        answered_at=row.answered_at,
        abandoned=bool(row.abandoned),
        transferred=bool(row.transferred),
        agent_done_at=row.agent_done_at,
        ended_at=row.ended_at,
    )
    took = durations(facts, row.ivr_ended_at)
    db.execute(
        SETTLE,
        {
            "call_id": call_id,
            "outcome": outcome(facts),
            "ivr_seconds": took.ivr,
            "wait_seconds": took.wait,
            "talk_seconds": took.talk,
        },
    )


class CallLog:
    """`spool`: where writes wait while the database is away (none: they raise)."""

    def __init__(self, sessions: sessionmaker[Session], spool: Spool | None = None) -> None:
        self.sessions = sessions
        self.spool = spool

    def save(self, part: IvrPart, ivr_end: str, route: str | None, ended: bool) -> None:
        """Write a finished IVR part: the call's row (created, or merged into), its journey
        events after any already stored, and how the part ended. `ended` when the caller
        is gone too."""
        now: datetime = utcnow()
        row = {**part.fields, "id": part.call_id, "ivr_ended_at": now}
        row |= {"ivr_end": ivr_end, "route": route} | ({"ended_at": now} if ended else {})
        self._write(["save", row, part.events])

    def record(self, linkedid: str, facts: dict[str, Any]) -> None:
        """Facts Asterisk reported about a call (AMI side): merged into its row."""
        row = {**facts, "id": linkedid, "linkedid": linkedid}
        # A row this creates starts no later than its facts; the true start, earlier,
        # replaces it when it comes (EARLIEST), unlike "now" at insert, which would stay.
        times = [value for value in facts.values() if isinstance(value, datetime)]
        row.setdefault("started_at", min(times, default=utcnow()))
        self._write(["record", row, []])

    def _write(self, write: Write) -> None:
        if self.spool is not None and self.spool.count:
            self.spool.append(write)  # behind the ones waiting: in order
            return
        try:
            self.apply(write)
        except Exception as exc:
            if self.spool is None or not unavailable(exc):
                raise
            log.warning("database away: spooling", extra={"error": str(exc)})
            self.spool.append(write)

    def apply(self, write: Write) -> None:
        """One write, in one transaction: the row, the journey events after any stored,
        and the outcome and times that follow."""
        _, row, events = write
        call_id = row["id"]
        with self.sessions.begin() as db:
            db.execute(upsert(db.get_bind().dialect.name, frozenset(row)), row)
            if events:
                first = (db.scalar(LAST_SEQ, {"call_id": call_id}) or 0) + 1
                db.execute(
                    JOURNEY_INSERT,
                    [
                        {**event, "call_id": call_id, "seq": seq}
                        for seq, event in enumerate(events, start=first)
                    ],
                )
            settle(db, call_id)

    def replay(self) -> int:
        """Spooled writes applied now (the database is back); how many."""
        return self.spool.replay(self.apply) if self.spool is not None and self.spool.count else 0

    def open_calls(self, since: datetime) -> list[str]:
        """Calls started since `since` that the log still has as going on."""
        query = select(Call.id).where(Call.ended_at.is_(None), Call.started_at >= since)
        with self.sessions() as db:
            return list(db.scalars(query))
