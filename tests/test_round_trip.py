"""The first round trip on the real Asterisk: DID -> AGI -> our service -> database."""

from __future__ import annotations

import random
import socket

from tests.support.ami import AmiClient
from tests.support.service import ServiceProcess


def test_call_into_did_plays_menu_reads_key_and_is_stored(
    ivr_service: ServiceProcess, place_call, ami: AmiClient
) -> None:
    place_call("5551001", press="2", hold=6, agi_server=ivr_service.agi_server)

    call = ivr_service.wait_for_call(lambda c: c.ivr_end is not None)
    assert call.entry == "5551001"
    assert call.did == "5551001"
    assert call.caller_number == "+14155550100"
    assert call.flow == "front_desk"
    assert call.ivr_end == "routed"
    assert call.route == "queue:support"
    assert call.linkedid and call.channel.startswith("Local/5551001@ivr-inbound")
    assert call.flow_version and len(call.flow_version) == 12
    match, route = call.journey
    assert (match.kind, match.node, route.kind, route.node) == (
        "match",
        "welcome",
        "route",
        "support",
    )
    assert match.data["prompt"] == ["asterisk:basic-pbx-ivr-main"]
    assert (match.data["mode"], match.data["value"], match.data["goto"]) == ("dtmf", "2", "support")
    assert 500 < match.data["ms"] < 15000  # the caller pressed about a second into the prompt
    assert route.data == {"queue": "support", "priority": 0}
    # The dialplan carried out our route: the call joined the support queue.
    joined = ami.wait_event(
        lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Linkedid") == call.linkedid
    )
    assert joined["Queue"] == "support"
    # And the channel carries our call id, for the AMI side to correlate.
    var = ami.action({"Action": "Getvar", "Channel": joined["Channel"], "Variable": "IVR_CALL_ID"})
    assert var.get("Value") == call.id


def test_caller_hanging_up_in_the_menu_is_recorded(ivr_service: ServiceProcess, place_call) -> None:
    place_call("5551001", hold=1, wait=0, agi_server=ivr_service.agi_server)

    call = ivr_service.wait_for_call(lambda c: c.ivr_end is not None)
    assert call.ivr_end == "abandoned_ivr"
    assert call.ended_at is not None
    assert call.journey[-1].kind == "hangup"
    assert call.journey[-1].node == "welcome"


def test_unreachable_service_sends_the_call_to_the_safe_queue(
    asterisk, place_call, ami: AmiClient
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket closes
    caller = f"+1415555{random.randrange(10000):04d}"
    place_call("5551001", hold=2, wait=0, caller_id=caller, agi_server=f"127.0.0.1:{port}")
    joined = ami.wait_event(
        lambda e: e.get("Event") == "QueueCallerJoin" and e.get("CallerIDNum") == caller
    )
    assert joined["Queue"] == "main"
