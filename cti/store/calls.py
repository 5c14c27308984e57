"""Writes what the IVR learns about a call: its start, each journey step, its end.

Writers are synchronous SQLAlchemy; async callers run them in a worker thread
(`asyncio.to_thread`) so the event loop never blocks on the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.store.models import Call, JourneyEvent, utcnow


class CallLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def start(self, call_id: str, **fields: Any) -> None:
        """Create the call's row; a repeated start for the same id updates it (idempotent)."""
        with self.sessions.begin() as db:
            call = db.get(Call, call_id) or Call(id=call_id)
            for name, value in fields.items():
                setattr(call, name, value)
            db.add(call)

    def journey(self, call_id: str, kind: str, node: str | None, data: dict[str, Any]) -> None:
        with self.sessions.begin() as db:
            last = db.scalar(
                select(func.max(JourneyEvent.seq)).where(JourneyEvent.call_id == call_id)
            )
            db.add(
                JourneyEvent(call_id=call_id, seq=(last or 0) + 1, kind=kind, node=node, data=data)
            )

    def finish(self, call_id: str, outcome: str, route: str | None, ended: bool) -> None:
        """Close the IVR part of the call; `ended` when the caller is gone too."""
        now: datetime = utcnow()
        with self.sessions.begin() as db:
            call = db.get(Call, call_id)
            if call is None:
                return
            call.ivr_ended_at = call.ivr_ended_at or now
            call.outcome = outcome
            call.route = route
            if ended:
                call.ended_at = call.ended_at or now
