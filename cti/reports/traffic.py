"""IVR traffic and drop-off per node, from the outcome log: what `ivr graph --from --to`
draws on a flow and what the reports page lists.

The calls counted are the ended calls (an outcome set) of a flow that started in
``[start, end)``. A call's path is its journey (`journey_events`, in ``seq`` order):
its events at one node, then at the next, ... Consecutive events at different nodes are
a pass along the edge between them; ``goto`` nodes record no event, so a pass through one
shows as a pass from the node before it to the node after it (`ivr.flows.graph` puts it
back on the picture's arrows).

A subflow's nodes carry the names they have in their own flow (the engine's
``state.node``), which may also be names of the calling flow's nodes. To keep them
apart, events between a ``subflow`` event and its ``return`` are counted as
``SUBFLOW.NODE`` (node names never hold a dot; the ``return`` event's ``to`` uses the same
form), and a call that comes back from a subflow also passes from the subflow node to
the node after it, which is the subflow node's arrow in the picture.

Counts are of distinct calls: a call that passed an edge or reached a node twice counts
once there. Hang-ups are the calls whose outcome is ``abandoned_ivr``, by ``exit_node``;
escapes the calls by ``escape_node``. For the calls that never entered a subflow all of it
is SQL aggregates (``GROUP BY``; ``COUNT(DISTINCT)``; the edges with the ``LAG`` window
function, on SQLite and PostgreSQL). Only the journeys of calls that entered a subflow are
walked here, their exit and escape nodes (the engine's names) matched to their steps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, true
from sqlalchemy.orm import Session, aliased

from cti.reports.parts import INTERVAL, Grouping
from cti.store.models import Call, JourneyEvent

__all__ = [
    "FlowTraffic",
    "NodeDropoff",
    "Tally",
    "dropoff",
    "dropoff_rows",
    "node_tally",
    "node_traffic",
]

HUNG_UP = "abandoned_ivr"  # the outcome of a caller who hung up in the IVR


@dataclass
class FlowTraffic:
    """One flow's traffic over a period. Nodes are the flow's node names (a subflow's as
    ``SUBFLOW.NODE``); every count is of distinct calls."""

    calls: int = 0  # ended calls of the flow
    edges: dict[tuple[str, str], int] = field(default_factory=dict)  # passed from A to B
    visits: dict[str, int] = field(default_factory=dict)  # reached the node
    hangups: dict[str, int] = field(default_factory=dict)  # abandoned_ivr, by exit_node
    escapes: dict[str, int] = field(default_factory=dict)  # asked for an agent, by escape_node


@dataclass(frozen=True)
class NodeDropoff:
    """Callers lost at one IVR node: hung up there, or asked for an agent there.
    `rate` is (hangups + escapes) ÷ visits, None when no call reached the node."""

    flow: str
    node: str
    visits: int
    hangups: int
    escapes: int
    rate: float | None


def node_traffic(db: Session, flow: str, start: datetime, end: datetime) -> FlowTraffic:
    """The traffic of `flow` among its calls started in ``[start, end)`` (aware times)."""
    where = _calls(start, end, Call.flow == flow)
    tally = _tally(db, where, with_edges=True)
    return FlowTraffic(
        calls=db.scalar(select(func.count()).select_from(Call).where(*where)) or 0,
        edges=_sorted({(a, b): n for (_, a, b), n in tally.edges.items()}),
        visits=_by_node(tally.visits),
        hangups=_by_node(tally.hangups),
        escapes=_by_node(tally.escapes),
    )


def dropoff(
    db: Session, start: datetime, end: datetime, queue: str | None = None
) -> list[NodeDropoff]:
    """Every IVR node that calls started in ``[start, end)`` reached or left the IVR at,
    in every flow, most callers lost first. With `queue`, only the calls that joined that
    queue (``calls.queue``, the last one a call joined): a caller who hung up in the IVR
    before any queue belongs to none, so these are its escapes, and hang-ups after the
    queue's overflow brought callers back to the IVR."""
    return dropoff_rows(node_tally(db, start, end, queue))


def node_tally(
    db: Session, start: datetime, end: datetime, queue: str | None = None, by_interval: bool = False
) -> Tally:
    """What `dropoff` counts, per (flow, node); with `by_interval`, per (15-minute
    interval, queue or '', flow, node): the interval rollups (cti/reports/intervals.py)."""
    where = _calls(start, end, Call.flow.is_not(None))
    if queue is not None:
        where.append(Call.queue == queue)
    group: list[Any] = []
    if by_interval:
        dialect = db.get_bind().dialect.name
        bucket = Grouping("bucket", width=INTERVAL).expression(Call.__table__.c, dialect)
        group = [bucket.label("bucket"), func.coalesce(Call.queue, "").label("queue")]
    return _tally(db, where, with_edges=False, group=group)


def dropoff_rows(tally: Tally) -> list[NodeDropoff]:
    """A tally's nodes as `dropoff` lists them."""
    visits, hangups, escapes = tally.visits, tally.hangups, tally.escapes
    rows = []
    for flow, node in set(visits) | set(hangups) | set(escapes):
        seen, hung, escaped = visits[flow, node], hangups[flow, node], escapes[flow, node]
        rate = (hung + escaped) / seen if seen else None
        rows.append(NodeDropoff(flow, node, seen, hung, escaped, rate))
    rows.sort(key=lambda r: (-(r.hangups + r.escapes), r.flow, r.node))
    return rows


def _calls(start: datetime, end: datetime, *more: ColumnElement[bool]) -> list[Any]:
    """The calls counted: ended, started in ``[start, end)``."""
    return [
        Call.outcome.is_not(None),
        Call.started_at >= _utc(start),
        Call.started_at < _utc(end),
        *more,
    ]


def _utc(moment: datetime) -> datetime:
    # SQLite keeps times as text without their offset, written in UTC: compare in UTC.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a report period needs aware times, not {moment.isoformat()}")
    return moment.astimezone(UTC)


@dataclass
class Tally:
    """Calls per (flow, node): reached, hung up at, escaped at; per (flow, from, to) passed
    (keys led by the groups of `_tally`'s `group`, if any)."""

    visits: Counter[tuple[str, str]] = field(default_factory=Counter)
    hangups: Counter[tuple[str, str]] = field(default_factory=Counter)
    escapes: Counter[tuple[str, str]] = field(default_factory=Counter)
    edges: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, counts: Counter[Any], rows: Iterable[Any]) -> None:
        for *key, n in rows:
            counts[tuple(key)] += n


def _tally(db: Session, where: Sequence[Any], with_edges: bool, group: Sequence[Any] = ()) -> Tally:
    """SQL aggregates over the calls that never entered a subflow; a walk of the journeys
    of those that did. `group`: columns of the calls (labelled) that lead the keys."""
    inner = aliased(JourneyEvent)
    entered = exists().where(inner.call_id == Call.id, inner.kind == "subflow")
    steps = and_(JourneyEvent.call_id == Call.id, JourneyEvent.node.is_not(None))
    plain = [*where, ~entered]
    tally = Tally()

    tally.add(
        tally.visits,
        db.execute(
            select(*group, Call.flow, JourneyEvent.node, func.count(func.distinct(Call.id)))
            .join(JourneyEvent, steps)
            .where(*plain)
            .group_by(*group, Call.flow, JourneyEvent.node)
        ),
    )
    for column, counts, only in (
        (Call.exit_node, tally.hangups, Call.outcome == HUNG_UP),
        (Call.escape_node, tally.escapes, true()),
    ):
        query = (
            select(*group, Call.flow, column, func.count())
            .where(*plain, only, column.is_not(None))
            .group_by(*group, Call.flow, column)
        )
        tally.add(counts, db.execute(query))
    if with_edges:
        previous = func.lag(JourneyEvent.node).over(
            partition_by=JourneyEvent.call_id, order_by=JourneyEvent.seq
        )
        path = (
            select(
                Call.flow.label("flow"),
                Call.id.label("call_id"),
                previous.label("a"),
                JourneyEvent.node.label("b"),
            )
            .join(JourneyEvent, steps)
            .where(*plain)
            .subquery()
        )
        query = (
            select(path.c.flow, path.c.a, path.c.b, func.count(func.distinct(path.c.call_id)))
            .where(path.c.a != path.c.b)  # the first step (no a) and stays at a node drop out
            .group_by(path.c.flow, path.c.a, path.c.b)
        )
        tally.add(tally.edges, db.execute(query))

    nested = (
        select(
            Call.id,
            *group,
            Call.flow,
            Call.outcome,
            Call.exit_node,
            Call.escape_node,
            JourneyEvent.kind,
            JourneyEvent.node,
            JourneyEvent.data,
        )
        .join(JourneyEvent, steps)
        .where(*where, entered)
        .order_by(Call.id, JourneyEvent.seq)
    )
    for _, rows in groupby(db.execute(nested), key=lambda row: row.id):
        calls = list(rows)
        _walk(calls, tally, tuple(calls[0][1 : 1 + len(group)]))
    return tally


def _walk(rows: Sequence[Any], tally: Tally, group: tuple[Any, ...] = ()) -> None:
    """Add one call's nodes, edges, hang-up and escape (keys led by `group`), its journey
    going in and out of subflows. The call's exit and escape nodes are the engine's
    names: each is matched to its step (the last step at the exit node, the first marked
    as the escape) for its name here."""
    call = rows[0]
    key = (*group, call.flow)  # what the call's counts are keyed by, before the node
    steps: list[tuple[str, str, bool]] = []  # (node, name here, marked as the escape)
    passed: set[tuple[str, str]] = set()
    stack: list[tuple[str, str]] = []  # (subflow, the subflow node that called it)
    back_from: str | None = None  # the subflow node of a subflow just returned from
    here: str | None = None
    for row in rows:
        data = row.data if isinstance(row.data, dict) else {}
        name = f"{stack[-1][0]}.{row.node}" if stack else row.node
        steps.append((row.node, name, bool(data.get("escape"))))
        if name != here:
            if here is not None:
                passed.add((here, name))
            if back_from is not None:
                if back_from != name:
                    passed.add((back_from, name))
                back_from = None
            here = name
        if row.kind == "subflow":
            stack.append((str(data.get("flow") or "subflow"), name))
        elif row.kind == "return" and stack:
            back_from = stack.pop()[1]
    for name in {name for _, name, _ in steps}:
        tally.visits[(*key, name)] += 1
    for a, b in passed:
        tally.edges[(*key, a, b)] += 1
    if call.outcome == HUNG_UP and call.exit_node is not None:
        at = [name for node, name, _ in reversed(steps) if node == call.exit_node]
        tally.hangups[(*key, at[0] if at else call.exit_node)] += 1
    if call.escape_node is not None:
        at = [name for node, name, _ in steps if node == call.escape_node]
        marked = [name for node, name, mark in steps if node == call.escape_node and mark]
        tally.escapes[(*key, (marked or at or [call.escape_node])[0])] += 1


def _by_node(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    return _sorted({node: n for (_, node), n in counts.items()})


def _sorted(counts: dict[Any, int]) -> dict[Any, int]:
    return dict(sorted(counts.items()))
