"""IVR traffic and drop-off per node (cti/reports/traffic.py), from calls written through
the outcome log's own writers, on SQLite and on the real PostgreSQL. Every expected count
is worked out by hand from the calls below."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.reports import intervals
from cti.reports.parts import Period, Thresholds
from cti.reports.traffic import FlowTraffic, NodeDropoff, dropoff, node_traffic
from cti.store.calls import CallLog, IvrPart
from cti.store.models import NodeInterval

DAY = datetime(2025, 6, 2, tzinfo=UTC)  # the period: [DAY, DAY + 1 day)
NEXT_DAY = DAY + timedelta(days=1)

Step = tuple[str, str | None] | tuple[str, str | None, dict[str, Any]]


def part(call_id: str, steps: list[Step], **fields: Any) -> IvrPart:
    ivr = IvrPart(call_id, {"linkedid": call_id, **fields})
    for kind, node, *data in steps:
        ivr.note(kind, node, data[0] if data else {})
    return ivr


def queued(log: CallLog, call_id: str, queue: str, at: datetime, answered: bool = True) -> None:
    """Asterisk's side of a call the IVR routed to `queue`, answered or abandoned."""
    log.record(call_id, {"queue": queue, "queue_entered_at": at})
    if answered:
        log.record(call_id, {"answered_at": at + timedelta(seconds=20)})
    else:
        log.record(call_id, {"abandoned": True})
    log.record(call_id, {"ended_at": at + timedelta(seconds=200)})


def at(minutes: float) -> datetime:
    return DAY + timedelta(minutes=minutes)


@pytest.fixture
def log(sessions: sessionmaker[Session]) -> CallLog:
    """The calls of flow `support` (and a few of `sales_line`) the tests count."""
    log = CallLog(sessions)
    support = {"flow": "support"}

    # c1: main menu, billing, answered.
    log.save(
        part("c1", [("match", "main_menu"), ("route", "billing")], started_at=at(60), **support),
        "routed",
        "queue:billing",
        False,
    )
    queued(log, "c1", "billing", at(61))

    # c2 (starts at the first instant of the period): a wrong key, then the order
    # status; hangs up in the order menu.
    steps: list[Step] = [
        ("nomatch", "main_menu"),
        ("match", "main_menu"),
        ("valid", "order_number"),
        ("lookup", "find_order"),
        ("hangup", "order_menu", {"by": "caller"}),
    ]
    fields = {"started_at": DAY, "exit_node": "order_menu", **support}
    log.save(part("c2", steps, **fields), "abandoned_ivr", "hangup", True)

    # c3: hangs up in the main menu.
    steps = [("hangup", "main_menu", {"by": "caller"})]
    fields = {"started_at": at(90), "exit_node": "main_menu", **support}
    log.save(part("c3", steps, **fields), "abandoned_ivr", "hangup", True)

    # c4: presses 0 for an agent in the main menu (an error event without a node between),
    # then gives up waiting in the queue.
    steps = [("match", "main_menu", {"value": "0"}), ("error", None), ("route", "agent")]
    fields = {"started_at": at(120), "escape_node": "main_menu", **support}
    log.save(part("c4", steps, **fields), "routed", "queue:sales", False)
    queued(log, "c4", "sales", at(121), answered=False)

    # c5: the order status, back to the main menu from the order menu, then billing.
    steps = [
        ("match", "main_menu"),
        ("valid", "order_number"),
        ("lookup", "find_order"),
        ("match", "order_menu", {"value": "2"}),
        ("match", "main_menu"),
        ("route", "billing"),
    ]
    log.save(part("c5", steps, started_at=at(150), **support), "routed", "queue:billing", False)
    queued(log, "c5", "billing", at(153))

    # c6: through the subflow `identify`, whose node order_number shares its name with
    # one of support's, then billing.
    steps = [
        ("match", "main_menu"),
        ("subflow", "verify", {"flow": "identify"}),
        ("valid", "order_number"),
        ("return", "done", {"to": "support.billing"}),
        ("route", "billing"),
    ]
    log.save(part("c6", steps, started_at=at(180), **support), "routed", "queue:billing", False)
    queued(log, "c6", "billing", at(182))

    # c7: waits too long in tech; the overflow brings it back to the IVR (a second part)
    # and on to the sales queue (agent), where it is answered.
    first = part("c7", [("match", "main_menu"), ("route", "tech")], started_at=at(200), **support)
    log.save(first, "routed", "queue:tech", False)
    log.record("c7", {"queue": "tech", "queue_entered_at": at(201)})
    log.save(part("c7", [("overflow", "tech"), ("route", "agent")]), "routed", "queue:sales", False)
    queued(log, "c7", "sales", at(206))

    # c11: hangs up in the subflow's order_number; c12 asks for an agent in its menu `pick`
    # (the subflow's own escape) and is answered in sales. The calls' exit and escape
    # nodes are the engine's names, without the subflow's.
    into = [("match", "main_menu"), ("subflow", "verify", {"flow": "identify"})]
    steps = [*into, ("hangup", "order_number", {"by": "caller"})]
    fields = {"started_at": at(220), "exit_node": "order_number", **support}
    log.save(part("c11", steps, **fields), "abandoned_ivr", "hangup", True)
    steps = [*into, ("match", "pick", {"value": "0", "escape": True}), ("route", "agent_q")]
    fields = {"started_at": at(230), "escape_node": "pick", **support}
    log.save(part("c12", steps, **fields), "routed", "queue:sales", False)
    queued(log, "c12", "sales", at(232))

    # Not counted: c8 is still going on; c9 starts at the end of the period; c10 before it.
    steps = [("match", "main_menu"), ("route", "billing")]
    log.save(part("c8", steps, started_at=at(300), **support), "routed", "queue:billing", False)
    for call_id, started in (("c9", NEXT_DAY), ("c10", DAY - timedelta(seconds=1))):
        steps = [("hangup", "main_menu", {"by": "caller"})]
        fields = {"started_at": started, "exit_node": "main_menu", **support}
        log.save(part(call_id, steps, **fields), "abandoned_ivr", "hangup", True)

    # Flow sales_line: s1 hangs up in its menu, s2 asks for an agent there, s3 hangs up
    # before the IVR wrote any step (in the welcome).
    sales = {"flow": "sales_line"}
    steps = [("hangup", "menu", {"by": "caller"})]
    fields = {"started_at": at(400), "exit_node": "menu", **sales}
    log.save(part("s1", steps, **fields), "abandoned_ivr", "hangup", True)
    steps = [("match", "menu", {"value": "0"}), ("route", "agent")]
    fields = {"started_at": at(410), "escape_node": "menu", **sales}
    log.save(part("s2", steps, **fields), "routed", "queue:sales", False)
    queued(log, "s2", "sales", at(411))
    fields = {"started_at": at(420), "exit_node": "welcome", **sales}
    log.save(part("s3", [], **fields), "abandoned_ivr", "hangup", True)
    return log


def test_the_traffic_of_a_flow(log: CallLog) -> None:
    with log.sessions() as db:
        traffic = node_traffic(db, "support", DAY, NEXT_DAY)
    assert traffic == FlowTraffic(
        calls=9,  # c1 to c7, c11, c12
        edges={
            ("find_order", "order_menu"): 2,  # c2, c5
            ("identify.done", "billing"): 1,  # c6, back from the subflow
            ("identify.order_number", "identify.done"): 1,  # c6, in the subflow
            ("identify.pick", "identify.agent_q"): 1,  # c12
            ("main_menu", "agent"): 1,  # c4, past the error without a node
            ("main_menu", "billing"): 2,  # c1, c5
            ("main_menu", "order_number"): 2,  # c2, c5
            ("main_menu", "tech"): 1,  # c7
            ("main_menu", "verify"): 3,  # c6, c11, c12
            ("order_menu", "main_menu"): 1,  # c5
            ("order_number", "find_order"): 2,  # c2, c5
            ("tech", "agent"): 1,  # c7, after the overflow
            ("verify", "billing"): 1,  # c6: the subflow node's own way on
            ("verify", "identify.order_number"): 2,  # c6, c11: into the subflow
            ("verify", "identify.pick"): 1,  # c12
        },
        visits={
            "agent": 2,  # c4, c7
            "billing": 3,  # c1, c5, c6
            "find_order": 2,
            "identify.agent_q": 1,
            "identify.done": 1,
            "identify.order_number": 2,  # c6, c11
            "identify.pick": 1,
            "main_menu": 9,  # c5 twice, counted once
            "order_menu": 2,
            "order_number": 2,  # not c6's order_number, which is identify's
            "tech": 1,
            "verify": 3,
        },
        hangups={"identify.order_number": 1, "main_menu": 1, "order_menu": 1},  # c11, c3, c2
        escapes={"identify.pick": 1, "main_menu": 1},  # c12, c4
    )


def test_the_period_is_half_open_and_in_any_time_zone(log: CallLog) -> None:
    plus_two = timezone(timedelta(hours=2))
    with log.sessions() as db:
        same = node_traffic(db, "support", DAY.astimezone(plus_two), NEXT_DAY.astimezone(plus_two))
        assert same == node_traffic(db, "support", DAY, NEXT_DAY)
        later = node_traffic(db, "support", DAY + timedelta(seconds=1), NEXT_DAY)  # without c2
        assert (later.calls, later.hangups) == (8, {"identify.order_number": 1, "main_menu": 1})
        assert later.visits["order_number"] == 1  # c5 only
        wider = node_traffic(db, "support", DAY - timedelta(days=1), NEXT_DAY + timedelta(days=1))
        assert (wider.calls, wider.hangups["main_menu"]) == (11, 3)  # and c9, c10
        empty = node_traffic(db, "nobody", DAY, NEXT_DAY)
        assert empty == FlowTraffic()
        with pytest.raises(ValueError, match="aware"):
            node_traffic(db, "support", DAY.replace(tzinfo=None), NEXT_DAY)


def test_the_dropoff_of_every_node(log: CallLog) -> None:
    with log.sessions() as db:
        rows = dropoff(db, DAY, NEXT_DAY)
    assert rows == [
        NodeDropoff("sales_line", "menu", 2, 1, 1, 1.0),  # s1, s2
        NodeDropoff("support", "main_menu", 9, 1, 1, 2 / 9),  # c3, c4
        NodeDropoff("sales_line", "welcome", 0, 1, 0, None),  # s3 wrote no step
        NodeDropoff("support", "identify.order_number", 2, 1, 0, 0.5),  # c11
        NodeDropoff("support", "identify.pick", 1, 0, 1, 1.0),  # c12
        NodeDropoff("support", "order_menu", 2, 1, 0, 0.5),  # c2
        NodeDropoff("sales_line", "agent", 1, 0, 0, 0.0),
        NodeDropoff("support", "agent", 2, 0, 0, 0.0),
        NodeDropoff("support", "billing", 3, 0, 0, 0.0),
        NodeDropoff("support", "find_order", 2, 0, 0, 0.0),
        NodeDropoff("support", "identify.agent_q", 1, 0, 0, 0.0),
        NodeDropoff("support", "identify.done", 1, 0, 0, 0.0),
        NodeDropoff("support", "order_number", 2, 0, 0, 0.0),
        NodeDropoff("support", "tech", 1, 0, 0, 0.0),
        NodeDropoff("support", "verify", 3, 0, 0, 0.0),
    ]


def test_the_dropoff_of_the_calls_of_one_queue(log: CallLog) -> None:
    """The calls that joined sales (last): c4, c7 (after its overflow from tech), c12, s2."""
    with log.sessions() as db:
        rows = dropoff(db, DAY, NEXT_DAY, queue="sales")
        assert dropoff(db, DAY, NEXT_DAY, queue="vip") == []
    assert rows == [
        NodeDropoff("sales_line", "menu", 1, 0, 1, 1.0),
        NodeDropoff("support", "identify.pick", 1, 0, 1, 1.0),
        NodeDropoff("support", "main_menu", 3, 0, 1, 1 / 3),
        NodeDropoff("sales_line", "agent", 1, 0, 0, 0.0),
        NodeDropoff("support", "agent", 2, 0, 0, 0.0),
        NodeDropoff("support", "identify.agent_q", 1, 0, 0, 0.0),
        NodeDropoff("support", "tech", 1, 0, 0, 0.0),
        NodeDropoff("support", "verify", 1, 0, 0, 0.0),
    ]


def test_the_dropoff_from_the_interval_rollups_is_the_dropoff_from_the_calls(
    log: CallLog,
) -> None:
    """The reports page reads the node rollups (cti/reports/intervals.py) where they are
    up to date: the same rows as from the calls, rolled up or not, for all and by queue."""
    thresholds = Thresholds()
    whole, wider = Period(DAY, NEXT_DAY), Period(DAY - timedelta(days=1), NEXT_DAY + timedelta(1))

    def both(period: Period) -> tuple[list[NodeDropoff], list[NodeDropoff]]:
        with log.sessions() as db:
            rolled = intervals.dropoff(db, period, thresholds)
            return rolled, dropoff(db, period.start, period.end, period.queue)

    for state in ("from the calls", "rolled up"):
        for period in (whole, wider, replace(whole, queue="sales"), replace(whole, queue="vip")):
            rolled, expected = both(period)
            assert rolled == expected, (state, period)
        intervals.refresh(log.sessions, thresholds)
    with log.sessions.begin() as db:
        assert db.scalar(select(func.sum(NodeInterval.visits))) == sum(
            row.visits for row in dropoff(db, wider.start, wider.end)
        )
        # A rollup changed behind the log's back shows: the rows are read from them.
        s1 = (
            NodeInterval.flow == "sales_line",
            NodeInterval.node == "menu",
            NodeInterval.queue == "",
        )
        db.execute(update(NodeInterval).where(*s1).values(hangups=NodeInterval.hangups + 10))
    rolled, expected = both(whole)
    assert rolled[0] == replace(expected[0], hangups=11, rate=6.0)  # s1's and 10 more
    log.record("s1", {"disposition": "resolved"})  # s1's interval is read from the calls again
    assert both(whole) == (expected, expected)
