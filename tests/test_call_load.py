"""Failure and load on real calls: an exception in a node, twenty calls at once."""

from __future__ import annotations

from pathlib import Path

from tests.support.ami import AmiClient
from tests.support.service import ServiceProcess, own_plans

BROKEN = """
# A node that fails when a call reaches it: a return outside any subflow.
entries:
  "5551099": broken
flows:
  broken:
    start: welcome
    nodes:
      welcome: {type: play, prompt: asterisk:beep, next: oops}
      oops: {type: return}
"""


def test_an_exception_in_a_node_sends_the_call_to_the_safe_queue(
    asterisk, tmp_path: Path, place_call, ami: AmiClient
) -> None:
    _plans, env = own_plans(tmp_path, **{"broken.yaml": BROKEN})
    service = ServiceProcess(tmp_path, env).start()
    try:
        place_call("5551099", hold=3, caller_id="+14155550142", agi_server=service.agi_server)
        found = service.wait_for_call(lambda c: c.ivr_end is not None)
        joined = ami.wait_event(
            lambda e: e.get("Event") == "QueueCallerJoin" and e.get("CallerIDNum") == "+14155550142"
        )
    finally:
        assert service.stop() == 0
    assert (found.ivr_end, found.route) == ("failed", "queue:main")
    assert joined["Queue"] == "main"  # the caller is with the safe queue, not in dead air
    assert [(e.kind, e.node) for e in found.journey][-1] == ("error", "oops")
    assert f'msg="call failed; routing to the safe queue" call_id={found.id}' in service.log()


def test_twenty_simultaneous_calls_all_complete(ivr_service: ServiceProcess, place_call) -> None:
    routes = {"1": "queue:sales", "2": "queue:support", "3": "queue:billing"}
    for i in range(20):
        key = "123"[i % 3]
        place_call(
            "5551001",
            press=key,
            hold=4,
            caller_id=f"+141555502{i:02d}",
            agi_server=ivr_service.agi_server,
        )
    calls = ivr_service.wait_for_calls(20, lambda c: c.ivr_end is not None, timeout=60)
    assert all(c.ivr_end == "routed" for c in calls)
    for found in calls:
        key = found.journey[0].data["value"]
        assert found.route == routes[key]
    started = sorted(c.started_at for c in calls)
    assert (started[-1] - started[0]).total_seconds() < 4  # all twenty were up at once
