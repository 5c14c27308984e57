"""A queue's max wait on the real Asterisk: the call comes back to the flow's overflow node."""

from __future__ import annotations

from pathlib import Path

from tests.support.ami import AmiClient
from tests.support.service import ServiceProcess, own_plans

PLAN = """
entries:
  "5551077": waiting
flows:
  waiting:
    start: sales
    nodes:
      sales: {type: queue, queue: sales, max_wait: 2, overflow: sorry}
      sorry: {type: play, prompt: asterisk:beep, next: general}
      general: {type: queue, queue: main, priority: 3}
"""


def test_max_wait_then_overflow(asterisk, tmp_path: Path, place_call, ami: AmiClient) -> None:
    _plans, env = own_plans(tmp_path, **{"waiting.yaml": PLAN})
    service = ServiceProcess(tmp_path, env).start()
    try:
        place_call(
            "5551077", hold=8, wait=0, caller_id="+14155550177", agi_server=service.agi_server
        )
        found = service.wait_for_call(lambda c: c.route == "queue:main", timeout=20)
        joined = ami.wait_event(
            lambda e: (
                e.get("Event") == "QueueCallerJoin"
                and e.get("CallerIDNum") == "+14155550177"
                and e.get("Queue") == "main"
            )
        )
    finally:
        assert service.stop() == 0
    assert [(e.kind, e.node) for e in found.journey] == [
        ("route", "sales"),
        ("overflow", "sales"),
        ("play", "sorry"),
        ("route", "general"),
    ]
    assert found.journey[1].data == {"queue": "sales", "max_wait": 2}
    assert joined["Linkedid"] == found.linkedid  # the same call, moved by us
    assert "call back from its queue" in service.log()
