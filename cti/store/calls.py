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
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from queue import SimpleQueue
from typing import Any

from sqlalchemy import Insert, bindparam, case, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cti.outcomes import CallFacts, durations, outcome
from cti.store.models import Call, JourneyEvent, SurveyAnswer, utcnow
from cti.store.spool import Spool, Write, unavailable

log = logging.getLogger("cti.calls")

CALLS = Call.__table__
JOURNEY = JourneyEvent.__table__
JOURNEY_INSERT = insert(JOURNEY)
LAST_SEQ = select(JOURNEY.c.call_id, func.max(JOURNEY.c.seq)).group_by(JOURNEY.c.call_id)
BATCH = 500  # writes at most in one transaction


@dataclass
class IvrPart:
    """One stretch of a call in the IVR, as it will be written."""

    call_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def note(self, kind: str, node: str | None, data: dict[str, Any]) -> None:
        self.events.append({"at": utcnow(), "kind": kind, "node": node, "data": data})
        if data.get("escape"):
            self.fields.setdefault("escape_node", node)


# How a write merges into what the row holds, so that the IVR's and Asterisk's facts
# arriving in any order leave the same row: first value stays, earliest, latest, any
# flag set; the other columns take the newest value.
FIRST = {"linkedid", "channel", "direction", "kind", "campaign", "callback_id", "entry", "did",
         "caller_number", "flow", "flow_version", "customer_id", "escape_node",
         "queue_entered_at", "answered_at", "ended_at"}  # fmt: skip
EARLIEST = {"started_at"}
LATEST = {"ivr_ended_at", "agent_done_at", "disposed_at", "hold_seconds"}  # hold only grows
ANY = {"callback_requested", "survey_completed", "abandoned", "transferred"}
FACT_NAMES = ("kind", "started_at", "ivr_end", "route", *sorted(ANY), "queue_entered_at",
              "answered_at", "agent_done_at", "ended_at", "hold_seconds",
              "disposed_at")  # fmt: skip
FACTS = select(CALLS.c.id, CALLS.c.ivr_ended_at, *(CALLS.c[name] for name in FACT_NAMES))
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


def _coalesced(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Two writes to one row made one, by the same rules as `_merged`, so that a batch
    writes each row once."""
    if old is None:
        return dict(new)
    merged = dict(old)
    for name, value in new.items():
        prior = old.get(name)
        if name not in old or (prior is None and name not in ANY):
            merged[name] = value
        elif value is None or name in FIRST:
            continue
        elif name in EARLIEST | LATEST:
            merged[name] = max(prior, value) if name in LATEST else min(prior, value)
        elif name in ANY:
            merged[name] = bool(prior) or bool(value)
        else:
            merged[name] = value
    return merged


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


def settle(db: Session, call_ids: Iterable[str]) -> None:
    """Work out the calls' outcomes and times again from their facts as they stand."""
    rows = db.execute(FACTS.where(CALLS.c.id.in_(list(call_ids)))).all()
    settled = []
    for row in rows:
        facts = CallFacts(**{name: getattr(row, name) for name in FACT_NAMES})
        took = durations(facts, row.ivr_ended_at)
        settled.append(
            {
                "call_id": row.id,
                "outcome": outcome(facts),
                "ivr_seconds": took.ivr,
                "wait_seconds": took.wait,
                "talk_seconds": took.talk,
                "wrapup_seconds": took.wrapup,
            }
        )
    if settled:
        db.execute(SETTLE, settled)


@cache
def _answer_insert(dialect: str) -> Insert:
    module = {"sqlite": sqlite, "postgresql": postgresql}[dialect]
    statement = module.insert(SurveyAnswer.__table__)
    return statement.on_conflict_do_nothing(index_elements=["call_id", "question"])


def _answers(call_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The survey answers among a part's journey events (the engine's "answer" steps)."""
    return [
        {
            "call_id": call_id,
            "question": event["data"]["question"],
            "scale": event["data"].get("scale", "unknown"),
            "value": str(event["data"].get("answer", "")),
            "answered_at": event["at"],
        }
        for event in events
        if event["kind"] == "answer" and "question" in event["data"]
    ]


class CallLog:
    """Writes to the log go through one writer thread, which commits what has queued up
    meanwhile in one transaction (group commit): a caller waits for its own write, yet
    many calls' writes share a commit. `spool`: where writes wait while the database is
    away (none: they raise)."""

    def __init__(self, sessions: sessionmaker[Session], spool: Spool | None = None) -> None:
        self.sessions = sessions
        self.spool = spool
        self._queue: SimpleQueue[tuple[Write | None, Future[None]]] = SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def save(self, part: IvrPart, ivr_end: str, route: str | None, ended: bool) -> None:
        """Write a finished IVR part: the call's row (created, or merged into), its journey
        events after any already stored, and how the part ended. `ended` when the caller
        is gone too."""
        self.submit(self.part_write(part, ivr_end, route, ended)).result()

    def record(self, linkedid: str, facts: dict[str, Any]) -> None:
        """Facts Asterisk reported about a call (AMI side): merged into its row."""
        self.submit(self.facts_write(linkedid, facts)).result()

    @staticmethod
    def part_write(part: IvrPart, ivr_end: str, route: str | None, ended: bool) -> Write:
        """The write of `save`, for `submit`."""
        now: datetime = utcnow()
        row = {**part.fields, "id": part.call_id, "ivr_ended_at": now}
        row |= {"ivr_end": ivr_end, "route": route} | ({"ended_at": now} if ended else {})
        nodes = [event["node"] for event in part.events if event["node"]]
        row |= {"exit_node": nodes[-1]} if nodes else {}
        return ["save", row, part.events]

    @staticmethod
    def facts_write(linkedid: str, facts: dict[str, Any]) -> Write:
        """The write of `record`, for `submit`."""
        row = {**facts, "id": linkedid, "linkedid": linkedid}
        # A row this creates starts no later than its facts; the true start, earlier,
        # replaces it when it comes (EARLIEST), unlike "now" at insert, which would stay.
        times = [value for value in facts.values() if isinstance(value, datetime)]
        row.setdefault("started_at", min(times, default=utcnow()))
        return ["record", row, []]

    def submit(self, write: Write | None) -> Future[None]:
        """Queue a write (None: nothing, to wait for the ones before); done once it is
        committed or spooled."""
        done: Future[None] = Future()
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="call-log", daemon=True)
                self._writer.start()
            self._queue.put((write, done))
        return done

    def flush(self) -> None:
        """Until every write queued so far is done."""
        self.submit(None).result()

    def _write(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get())
            writes = [write for write, _ in batch if write is not None]
            try:
                self._store(writes)
            except Exception:
                for write, done in batch:  # one by one: only the bad write fails
                    try:
                        self._store([write] if write is not None else [])
                    except Exception as exc:
                        done.set_exception(exc)
                    else:
                        done.set_result(None)
            else:
                for _, done in batch:
                    done.set_result(None)

    def _store(self, writes: list[Write]) -> None:
        if not writes:
            return
        if self.spool is not None and self.spool.count:
            self.spool.extend(writes)  # behind the ones waiting: in order
            return
        try:
            self.apply(writes)
        except Exception as exc:
            if self.spool is None or not unavailable(exc):
                raise
            log.warning("database away: spooling", extra={"error": str(exc)})
            self.spool.extend(writes)

    def apply(self, writes: list[Write]) -> None:
        """Writes, in one transaction: each call's row once (the writes to it coalesced),
        its journey events after any stored, its survey answers, and the outcome and
        times that follow."""
        rows: dict[str, dict[str, Any]] = {}
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _, row, more in writes:
            rows[row["id"]] = _coalesced(rows.get(row["id"]), row)
            events[row["id"]].extend(more)
        by_columns: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows.values():
            by_columns[frozenset(row)].append(row)
        with self.sessions.begin() as db:
            dialect = db.get_bind().dialect.name
            for columns, group in by_columns.items():
                db.execute(upsert(dialect, columns), group)
            stepped = {call_id: found for call_id, found in events.items() if found}
            if stepped:
                last = dict(db.execute(LAST_SEQ.where(JOURNEY.c.call_id.in_(stepped))).all())
                db.execute(
                    JOURNEY_INSERT,
                    [
                        {**event, "call_id": call_id, "seq": seq}
                        for call_id, found in stepped.items()
                        for seq, event in enumerate(found, start=(last.get(call_id) or 0) + 1)
                    ],
                )
                answers = [a for key, found in stepped.items() for a in _answers(key, found)]
                if answers:
                    db.execute(_answer_insert(dialect), answers)
            settle(db, rows)

    def replay(self) -> int:
        """Spooled writes applied now (the database is back); how many."""
        if self.spool is None or not self.spool.count:
            return 0
        return self.spool.replay(lambda write: self.apply([write]))

    def open_calls(self, since: datetime) -> list[str]:
        """Calls started since `since` that the log still has as going on."""
        query = select(Call.id).where(Call.ended_at.is_(None), Call.started_at >= since)
        with self.sessions() as db:
            return list(db.scalars(query))
