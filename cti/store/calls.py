"""The outcome log's writes: what the IVR and Asterisk each learn about a call, merged
into its one row (keyed by Linkedid), and the outcome that follows (cti/outcomes.py).

The IVR keeps a call's facts and journey in memory (`IvrPart`) and writes them in one
transaction when its part of the call ends: routed, hung up, or failed. One commit per
call instead of one per event is what keeps the service's cost per call near the
native dialplan's (bench/RESULTS.md, asterisk_cost). A call that comes back to the IVR
(queue overflow) is a second part; its events follow the first part's.

Writes go through `CallLog`'s writer threads, which commit what queued up meanwhile in
one transaction, in sets: each row once, with its outcome worked out in the same
transaction. Async callers wait for theirs in a worker thread (`asyncio.to_thread`) so
the event loop never blocks on the database. While the database is away, writes wait
in the spool (cti/store/spool.py) and the service replays them when it is back.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from queue import SimpleQueue
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Insert,
    Row,
    Table,
    TableValuedAlias,
    Text,
    Update,
    bindparam,
    case,
    cast,
    column,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cti.outcomes import CallFacts, durations, outcome
from cti.store.models import Call, JourneyEvent, SurveyAnswer, UtcDateTime, utcnow
from cti.store.spool import Spool, Write, shard_of, unavailable
from ivr.numbers import normalise_number

log = logging.getLogger("cti.calls")

CALLS = Call.__table__
JOURNEY = JourneyEvent.__table__
DIALECTS = {"sqlite": sqlite, "postgresql": postgresql}
LAST_SEQ = select(JOURNEY.c.call_id, func.max(JOURNEY.c.seq)).group_by(JOURNEY.c.call_id)
BATCH = 5000  # writes at most in one transaction
# SQLite takes one writer at a time; PostgreSQL works on one batch while the next is made
# (and replays the spool's files side by side).
WRITERS = {"sqlite": 1, "postgresql": 2}
COUNTED = {"preserve_rowcount": True}  # an INSERT's rowcount, which SQLAlchemy drops else


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
FIRST = {"linkedid", "channel", "direction", "kind", "campaign", "callback_id",
         "origin_call_id", "entry", "did",
         "caller_number", "flow", "flow_version", "customer_id", "escape_node",
         "queue_entered_at", "answered_at", "ended_at"}  # fmt: skip
EARLIEST = {"started_at"}
LATEST = {"ivr_ended_at", "agent_done_at", "disposed_at", "hold_seconds"}  # hold only grows
ANY = {"callback_requested", "survey_completed", "abandoned", "transferred"}
FACT_NAMES = ("kind", "started_at", "ivr_end", "route", *sorted(ANY), "queue_entered_at",
              "answered_at", "agent_done_at", "ended_at", "hold_seconds",
              "disposed_at")  # fmt: skip
SETTLED = ("outcome", "ivr_seconds", "wait_seconds", "talk_seconds", "wrapup_seconds")
# What settling a row reads: its facts, and what it last worked out from them.
SETTLING = (CALLS.c.id, CALLS.c.ivr_ended_at, *(CALLS.c[name] for name in FACT_NAMES + SETTLED))
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
def _many(dialect: str, table: Table, columns: tuple[str, ...]) -> Insert:
    """INSERT of many rows of `columns`. On PostgreSQL the rows go as one JSON document
    (`_document`): one short statement for a whole batch, where an executemany costs a
    statement per row. Elsewhere, an executemany."""
    module = DIALECTS[dialect]
    if dialect != "postgresql":
        return module.insert(table)
    return module.insert(table).from_select(columns, select(*_recordset(table, columns).c))


def _recordset(table: Table, columns: tuple[str, ...]) -> TableValuedAlias:
    """The rows of parameter `rows` (`_document`), as a table of these columns of `table`."""
    document = cast(bindparam("rows", type_=Text), JSON)
    typed = (column(name, table.c[name].type) for name in columns)
    return func.json_to_recordset(document).table_valued(*typed).render_derived(with_types=True)


def _document(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {"rows": orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()}


def _insert_many(db: Session, statement: Insert, rows: list[dict[str, Any]]) -> int:
    """Run an INSERT of `_many` for rows of the same columns, without SQLAlchemy's work
    per row and value (a third of the log's ingest time): PostgreSQL takes one JSON
    document, SQLite the values as it stores them (`_positional`). How many rows went
    in."""
    if db.get_bind().dialect.name == "postgresql":
        return db.execute(statement, _document(rows), execution_options=COUNTED).rowcount
    sql, names, converts = _positional(statement, tuple(rows[0]))
    defaults = {name: _default(statement.table.c[name]) for name in names if name not in rows[0]}
    values: list[tuple[Any, ...]] = []
    for row in rows:
        value = [row[name] if name in row else defaults[name] for name in names]
        for at, convert in converts:
            if value[at] is not None:
                value[at] = convert(value[at])
        values.append(tuple(value))
    return db.connection().exec_driver_sql(sql, values, COUNTED).rowcount


@cache
def _positional(
    statement: Insert, columns: tuple[str, ...]
) -> tuple[str, tuple[str, ...], tuple[tuple[int, Callable[[Any], str]], ...]]:
    """The SQLite text of `statement` for rows of these columns, the names of its
    parameters in order (columns with a default of their own among them), and where
    a value needs turning into what SQLAlchemy stores: times as UTC text, JSON as text."""
    compiled = statement.compile(dialect=sqlite.dialect(), column_keys=list(columns))
    names = tuple(compiled.positiontup or ())
    types = [statement.table.c[name].type for name in names]
    converts = [
        (at, _sqlite_time) for at, kind in enumerate(types) if isinstance(kind, UtcDateTime)
    ]
    converts += [(at, _json_text) for at, kind in enumerate(types) if isinstance(kind, JSON)]
    return compiled.string, names, tuple(converts)


def _default(column: Any) -> Any:
    default = column.default
    return default.arg(None) if default.is_callable else default.arg


def _sqlite_time(value: datetime) -> str:
    if value.tzinfo not in (None, UTC):
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@cache
def _upsert(dialect: str, columns: tuple[str, ...]) -> Insert:
    """INSERT into calls that merges into the row if it exists, for these `columns`
    (sorted). Built once per set of columns: building a statement costs more than
    running it."""
    statement = _many(dialect, CALLS, columns)
    # The row as merged comes back (RETURNING), for `_settle` to work out without reading
    # it, and to store only if its facts changed what follows from them.
    return statement.on_conflict_do_update(
        index_elements=[CALLS.c.id],
        set_={
            name: _merged(name, CALLS.c[name], statement.excluded[name])
            for name in columns
            if name != "id"
        },
    ).returning(*SETTLING)


def merge(db: Session, rows: Iterable[dict[str, Any]]) -> list[Row[Any]]:
    """Write rows into calls, each merged into the one stored (one row per id); the rows
    as they stand now, for `_settle`."""
    dialect = db.get_bind().dialect.name
    return [
        merged
        for columns, group in _by_columns(rows).items()
        for merged in db.execute(
            _upsert(dialect, columns), _document(group) if dialect == "postgresql" else group
        )
    ]


def _by_columns(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by their columns (sorted): a statement takes one set of columns."""
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[tuple(sorted(row))].append(row)
    return grouped


def _create(db: Session, rows: list[dict[str, Any]]) -> list[Row[Any]]:
    """Write rows that the log did not hold when the batch began, settled already: the
    outcome is worked out once, and nothing comes back to read. A row another process
    wrote meanwhile is left, and then the group is merged instead (merging a row into
    itself changes nothing); those rows as they stand, for `_settle`."""
    dialect = db.get_bind().dialect.name
    raced = []
    for columns, group in _by_columns(rows).items():
        settled = [row | _settled(row) for row in group]
        if _insert_many(db, _create_statement(dialect, columns), settled) < len(group):
            raced += merge(db, group)
    return raced


@cache
def _create_statement(dialect: str, columns: tuple[str, ...]) -> Insert:
    statement = _many(dialect, CALLS, (*columns, *SETTLED))
    return statement.on_conflict_do_nothing(index_elements=[CALLS.c.id])


def _settled(row: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome and times that follow from a row's facts (those it has)."""
    facts = CallFacts(**{name: row[name] for name in FACT_NAMES if name in row})
    took = durations(facts, row.get("ivr_ended_at"))
    return dict(
        zip(SETTLED, (outcome(facts), took.ivr, took.wait, took.talk, took.wrapup), strict=True)
    )


def settle(db: Session, call_ids: Iterable[str]) -> None:
    """Work out the calls' outcomes and times again from their facts as they stand."""
    _settle(db, db.execute(select(*SETTLING).where(CALLS.c.id.in_(list(call_ids)))).all())


def _settle(db: Session, rows: Iterable[Row[Any]]) -> None:
    """Store the outcome and times that follow from these rows' facts, where they changed."""
    changed = []
    for row in rows:
        now = _settled(row._mapping)
        if any(now[name] != row._mapping[name] for name in SETTLED):
            changed.append({"call_id": row.id, **now})
    if not changed:
        return
    if db.get_bind().dialect.name == "postgresql":  # one statement for them all, as in `_many`
        db.execute(_settle_many(), _document([{**c, "id": c["call_id"]} for c in changed]))
    else:
        db.execute(SETTLE, changed)


@cache
def _settle_many() -> Update:
    settled = _recordset(CALLS, ("id", *SETTLED))
    return (
        CALLS.update()
        .where(CALLS.c.id == settled.c.id)
        .values({name: settled.c[name] for name in SETTLED})
    )


TIMES = frozenset(c.name for c in CALLS.c if isinstance(c.type, UtcDateTime))


def _revived(writes: list[Write]) -> list[Write]:
    """Spooled writes with their times as datetimes again (the spool holds ISO text; an
    older spool, {"$dt": text})."""

    def when(value: str | dict[str, str] | None) -> datetime | None:
        if isinstance(value, dict):
            value = value["$dt"]
        return None if value is None else datetime.fromisoformat(value)

    for _, row, events in writes:
        for name in TIMES.intersection(row):
            row[name] = when(row[name])
        for event in events:
            event["at"] = when(event["at"])
    return writes


ANSWER_COLUMNS = ("call_id", "question", "scale", "value", "answered_at")
JOURNEY_COLUMNS = ("call_id", "seq", "at", "kind", "node", "data")


@cache
def _answer_insert(dialect: str) -> Insert:
    statement = _many(dialect, SurveyAnswer.__table__, ANSWER_COLUMNS)
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
    """Writes to the log go through writer threads, each committing what has queued up
    for it meanwhile in one transaction (group commit): a caller waits for its own write,
    yet many calls' writes share a commit. A call's writes always go to the same writer,
    in order; two writers let one prepare a batch while the database works on the
    other's. `spool`: where writes wait while the database is away (none: they raise).
    `region`: where a caller number without a country code is from (cti.region): the
    log keeps caller numbers in E.164, whichever side reports them."""

    def __init__(
        self, sessions: sessionmaker[Session], spool: Spool | None = None, region: str = "US"
    ) -> None:
        self.sessions = sessions
        self.spool = spool
        self.region = region
        self._queues: list[SimpleQueue[tuple[Write | None, Future[None]]]] = []
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
        # Without its start, the part started no later than its first step (EARLIEST keeps
        # Asterisk's, earlier): not at whatever time the batch is written.
        row.setdefault("started_at", min([event["at"] for event in part.events], default=now))
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

    def submit(self, write: Write) -> Future[None]:
        """Queue a write; done once it is committed or spooled."""
        done: Future[None] = Future()
        row = write[1]
        if raw := row.get("caller_number"):
            row["caller_number"] = normalise_number(raw, self.region) or None
        queues = self._writers()
        queues[shard_of(row["id"]) % len(queues)].put((write, done))
        return done

    def flush(self) -> None:
        """Until every write queued so far is done."""
        waits: list[Future[None]] = []
        for queue in self._writers():
            waits.append(Future())
            queue.put((None, waits[-1]))
        for done in waits:
            done.result()

    @property
    def _writer_count(self) -> int:
        return WRITERS[self.sessions.kw["bind"].dialect.name]

    def _writers(self) -> list[SimpleQueue[tuple[Write | None, Future[None]]]]:
        """The writers' queues, the threads started on first use."""
        with self._lock:
            while len(self._queues) < self._writer_count:
                queue: SimpleQueue[tuple[Write | None, Future[None]]] = SimpleQueue()
                name = f"call-log-{len(self._queues)}"
                threading.Thread(target=self._write, args=(queue,), name=name, daemon=True).start()
                self._queues.append(queue)
        return self._queues

    def _write(self, queue: SimpleQueue[tuple[Write | None, Future[None]]]) -> None:
        while True:
            batch = [queue.get()]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get())
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
        if self.spool is not None and self.spool.waiting:
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
        with self.sessions.begin() as db:
            dialect = db.get_bind().dialect.name
            stored = set(db.scalars(select(CALLS.c.id).where(CALLS.c.id.in_(rows))))
            merged = merge(db, [row for key, row in rows.items() if key in stored])
            raced = _create(db, [row for key, row in rows.items() if key not in stored])
            stepped = {call_id: found for call_id, found in events.items() if found}
            if stepped:
                held = stored.union(row.id for row in raced).intersection(stepped)
                last_seq = LAST_SEQ.where(JOURNEY.c.call_id.in_(held))
                last = dict(db.execute(last_seq).all()) if held else {}
                journey = [
                    {**event, "call_id": call_id, "seq": seq}
                    for call_id, found in stepped.items()
                    for seq, event in enumerate(found, start=(last.get(call_id) or 0) + 1)
                ]
                _insert_many(db, _many(dialect, JOURNEY, JOURNEY_COLUMNS), journey)
                answers = [a for key, found in stepped.items() for a in _answers(key, found)]
                if answers:
                    _insert_many(db, _answer_insert(dialect), answers)
            _settle(db, merged + raced)

    def replay(self) -> int:
        """Spooled writes applied now (the database is back); how many."""
        if self.spool is None or not self.spool.waiting:
            return 0
        return self.spool.replay(lambda w: self.apply(_revived(w)), BATCH, self._writer_count)

    def open_calls(self, since: datetime) -> list[str]:
        """Calls started since `since` that the log still has as going on."""
        query = select(Call.id).where(Call.ended_at.is_(None), Call.started_at >= since)
        with self.sessions() as db:
            return list(db.scalars(query))
