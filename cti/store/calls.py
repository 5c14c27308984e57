"""Writes what the IVR learns about a call.

The IVR keeps a call's facts and journey in memory (`IvrPart`) and writes them in one
transaction when its part of the call ends: routed, hung up, or failed. One commit per
call instead of one per event is what keeps the service's cost per call near the
native dialplan's (bench/RESULTS.md, asterisk_cost). A call that comes back to the IVR
(queue overflow) is a second part; its events follow the first part's.

Writers are synchronous SQLAlchemy; async callers run them in a worker thread
(`asyncio.to_thread`) so the event loop never blocks on the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cti.store.models import Call, JourneyEvent, utcnow

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


@cache
def upsert(dialect: str, columns: frozenset[str]) -> Insert:
    """INSERT into calls that updates the row if it exists, for these `columns`; an
    ``ended_at`` already stored is kept. Built once per set of columns: building a
    statement costs more than running it."""
    module = {"sqlite": sqlite, "postgresql": postgresql}[dialect]
    statement = module.insert(CALLS)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[CALLS.c.id],
        set_={
            name: func.coalesce(CALLS.c[name], excluded[name])
            if name == "ended_at"
            else excluded[name]
            for name in sorted(columns - {"id"})
        },
    )


class CallLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def save(self, part: IvrPart, outcome: str, route: str | None, ended: bool) -> None:
        """Write a finished IVR part: the call's row (created, or updated if it exists),
        its journey events after any already stored, and how the part ended. `ended`
        when the caller is gone too."""
        now: datetime = utcnow()
        row = {**part.fields, "id": part.call_id, "ivr_ended_at": now}
        row |= {"outcome": outcome, "route": route} | ({"ended_at": now} if ended else {})
        with self.sessions.begin() as db:
            db.execute(upsert(db.get_bind().dialect.name, frozenset(row)), row)
            if not part.events:
                return
            last = db.scalar(LAST_SEQ, {"call_id": part.call_id})
            first = (last or 0) + 1
            db.execute(
                JOURNEY_INSERT,
                [
                    {**event, "call_id": part.call_id, "seq": seq}
                    for seq, event in enumerate(part.events, start=first)
                ],
            )
