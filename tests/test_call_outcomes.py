"""One real call through Asterisk 22 to each outcome, and the record each leaves in the
outcome log (docs/kpis.md): the IVR's part and Asterisk's events merged into one row.

The five callers ring at once into this test's own dial plan, each with its own caller
ID and Linkedid. The queues are this test's own (queues.conf): ``outcomes-agent`` has a
simulated phone, a Local channel in ``[ivr-agent]`` that rings a second, answers, talks
five seconds and hangs up; ``outcomes-empty`` never has agents. Callers hang up on their
own: the ``silent`` caller of ``[ivr-caller]`` leaves after CALLER_HOLD seconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cti.store.db import make_engine, session_factory
from cti.store.models import Call, KpiInterval
from tests.conftest import Sandbox
from tests.support.service import ServiceProcess, own_plans

pytestmark = pytest.mark.asterisk

PLAN = """
entries:
  "5554101": outcome_contained
  "5554102": outcome_answered
  "5554103": outcome_queue_abandon
  "5554104": outcome_ivr_abandon
  "5554105": outcome_callback
flows:
  outcome_contained:
    start: bye
    nodes:
      bye: {type: hangup, prompt: "asterisk:vm-goodbye"}
  outcome_answered:
    start: hello
    nodes:
      hello: {type: play, prompt: "asterisk:beep", next: agents}
      agents: {type: queue, queue: outcomes-agent}
  outcome_queue_abandon:
    start: hello
    nodes:
      hello: {type: play, prompt: "asterisk:beep", next: nobody}
      nobody: {type: queue, queue: outcomes-empty}
  outcome_ivr_abandon:
    start: welcome
    nodes:
      welcome:
        type: menu
        prompt: "asterisk:basic-pbx-ivr-main"
        options:
          - {key: "1", goto: bye}
        failure: bye
      bye: {type: hangup}
  outcome_callback:
    start: later
    nodes:
      later:
        type: callback
        reason: after_hours
        eta_minutes: 30
        prompt: "asterisk:auth-thankyou"
        next: bye
      bye: {type: hangup, prompt: "asterisk:vm-goodbye"}
"""

# outcome -> DID, flow, the node the IVR part ends at, how long the caller stays (seconds
# after the IVR answers: long enough to hear it out, or to hang up where intended)
CALLS = {
    "contained": ("5554101", "outcome_contained", "bye", 10),
    "answered": ("5554102", "outcome_answered", "agents", 25),  # the agent hangs up first
    "abandoned_queue": ("5554103", "outcome_queue_abandon", "nobody", 4),  # ~3 s queued
    "abandoned_ivr": ("5554104", "outcome_ivr_abandon", "welcome", 1.5),  # its prompt: 25 s
    "callback_requested": ("5554105", "outcome_callback", "bye", 10),
}


@pytest.fixture
def line(asterisk: Sandbox, tmp_path: Path) -> Iterator[ServiceProcess]:
    """`ivr serve` on this test's plan, with AMI on: Asterisk's side of the log too."""
    _plans, env = own_plans(tmp_path, **{"outcomes.yaml": PLAN})
    env |= {"IVR_AMI__ENABLED": "true", "IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value()}
    env["IVR_REPORTS__ROLLUP_SECONDS"] = "0.5"
    service = ServiceProcess(tmp_path, env).start()
    yield service
    assert service.stop() == 0, service.log()


def settled(call: Call) -> bool:
    """Both sides have written their last word: the IVR's part, the end, the agent's."""
    done = call.ivr_end is not None and call.ended_at is not None
    return done and (call.answered_at is None or call.agent_done_at is not None)


def in_order(*times: datetime | None) -> bool:
    return all(t is not None for t in times) and list(times) == sorted(times)


def test_one_call_to_each_outcome(line: ServiceProcess, place_call: Callable) -> None:
    base = random.randrange(1000, 9000, 10)  # this run's caller IDs: +1 415 555 XXXX
    numbers = {name: f"+1415555{base + i:04d}" for i, name in enumerate(CALLS)}

    def place(name: str) -> str:
        did, _flow, _exit, hold = CALLS[name]
        answered = place_call(did, hold=hold, caller_id=numbers[name], agi_server=line.agi_server)
        return answered["Uniqueid"]  # the caller's ;1 half: the call's Linkedid

    with ThreadPoolExecutor(len(CALLS)) as pool:
        linkedids = dict(zip(CALLS, pool.map(place, CALLS), strict=True))
    stored = line.wait_for_calls(len(CALLS), settled, timeout=40)
    rows = {call.id: call for call in stored}
    assert set(rows) == set(linkedids.values())
    calls = {name: rows[linkedid] for name, linkedid in linkedids.items()}

    for name, call in calls.items():  # every record
        did, flow, exit_node, _hold = CALLS[name]
        got = (call.outcome, call.linkedid, call.entry, call.did, call.flow, call.caller_number)
        assert got == (name, linkedids[name], did, did, flow, numbers[name]), name
        assert in_order(call.started_at, call.ended_at), name
        assert call.exit_node == exit_node, name
        assert call.ivr_seconds is not None and call.ivr_seconds >= 0, name

    contained = calls["contained"]
    assert (contained.ivr_end, contained.route) == ("contained", "hangup")
    assert (contained.queue, contained.answered_at, contained.callback_requested) == (
        None,
        None,
        False,
    )
    assert steps(contained)[-1] == ("hangup", "bye")

    answered = calls["answered"]
    assert (answered.ivr_end, answered.route) == ("routed", "queue:outcomes-agent")
    assert answered.queue == "outcomes-agent" and not answered.abandoned
    assert in_order(
        answered.started_at,
        answered.queue_entered_at,
        answered.answered_at,
        answered.agent_done_at,
        answered.ended_at,
    )
    assert answered.wait_seconds is not None and answered.wait_seconds > 0.5  # it rang first
    assert answered.talk_seconds is not None and 3 < answered.talk_seconds < 15  # 5 s talk

    waited = calls["abandoned_queue"]
    assert (waited.ivr_end, waited.route) == ("routed", "queue:outcomes-empty")
    assert (waited.queue, waited.abandoned, waited.answered_at) == ("outcomes-empty", True, None)
    assert in_order(waited.started_at, waited.queue_entered_at, waited.ended_at)
    assert waited.wait_seconds is not None and waited.wait_seconds > 1
    assert waited.talk_seconds is None

    gone = calls["abandoned_ivr"]
    assert (gone.ivr_end, gone.route, gone.queue) == ("abandoned_ivr", None, None)
    assert steps(gone)[-1] == ("hangup", "welcome")  # during the menu's prompt

    later = calls["callback_requested"]
    assert (later.ivr_end, later.route, later.callback_requested) == (
        "contained",
        "hangup",
        True,
    )
    assert later.queue is None and later.answered_at is None
    callback = next(e for e in later.journey if e.kind == "callback")
    assert (callback.node, callback.data.get("reason")) == ("later", "after_hours")

    # The service's refresher rolls the calls up into the KPI intervals.
    queues = rolled_up(line)
    assert (queues.get("outcomes-agent"), queues.get("outcomes-empty")) == ((1, 1, 0), (1, 0, 1))


def steps(call: Call) -> list[tuple[str, Any]]:
    return [(e.kind, e.node) for e in call.journey]


def rolled_up(service: ServiceProcess, timeout: float = 20) -> dict[str, tuple[int, int, int]]:
    """(calls, answered, abandoned in the queue) of the service's interval rollups by
    queue, once the refresher has rolled up both of this test's queues."""
    sessions = session_factory(make_engine(service.db_url))
    i = KpiInterval
    by_queue = select(
        i.queue,
        func.sum(i.calls),
        func.sum(i.outcome_answered),
        func.sum(i.outcome_abandoned_queue),
    ).group_by(i.queue)
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as db:
            found = {queue: tuple(sums) for queue, *sums in db.execute(by_queue)}
        if {"outcomes-agent", "outcomes-empty"} <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
