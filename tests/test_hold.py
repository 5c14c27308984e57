"""Hold time: the tracker adds up the time a call's channels are on hold (AMI Hold and
Unhold, as Asterisk 22 sends them), and the outcome log takes it out of the talk time.

The sandbox has no SIP phone to press hold, so the events are given to the tracker
as the AMI bridge would hand them over, with the headers Asterisk sends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import InProcessBus
from cti.recorder import Recorder
from cti.store.calls import CallLog
from cti.store.models import Call
from cti.tracker import CallTracker

LINKEDID = "1700000000.41"
CALLER, AGENT = "PJSIP/trunk-00000001", "Local/1001@ivr-agent-00000002;1"


def event(name: str, channel: str, **more: str) -> dict[str, Any]:
    return {"Event": name, "Channel": channel, "Linkedid": LINKEDID, "Uniqueid": LINKEDID} | more


def test_hold_is_summed_over_holds_and_overlapping_channels_and_left_out_of_talk(
    sessions: sessionmaker[Session],
) -> None:
    bus = InProcessBus()
    tracker = CallTracker(bus)
    recorder = Recorder(bus, CallLog(sessions), lambda: tracker.calls.keys())
    unheld: list[float] = []

    async def on_unheld(_topic: str, call: dict[str, Any]) -> None:
        unheld.append(call["hold_seconds"])

    bus.subscribe("call.unheld", on_unheld)

    async def call() -> None:
        await tracker.handle(event("Newchannel", CALLER, CallerIDNum="4155550100"))
        await tracker.handle(event("Newchannel", AGENT))
        await tracker.handle(event("AgentConnect", AGENT, Interface="Local/1001@ivr-agent"))
        await tracker.handle(event("Hold", AGENT, MusicClass="default"))
        await asyncio.sleep(0.3)
        await tracker.handle(event("Hold", CALLER))  # both ends on hold: still one hold
        await tracker.handle(event("Unhold", AGENT))
        await asyncio.sleep(0.2)
        await tracker.handle(event("Unhold", CALLER))  # 0.5 s in all
        await tracker.handle(event("Unhold", CALLER))  # a repeated Unhold adds nothing
        await tracker.handle(event("Hold", CALLER))
        await asyncio.sleep(0.2)
        await tracker.handle(event("Hangup", CALLER))  # the hang-up ends the hold: 0.7 s
        await tracker.handle(event("Hangup", AGENT))
        await recorder.drain()

    asyncio.run(call())
    assert len(unheld) == 2 and 0.5 <= unheld[0] < 0.7 and 0.7 <= unheld[1] < 1.0
    with sessions() as db:
        row = db.scalars(select(Call).where(Call.id == LINKEDID)).one()
    assert row.hold_seconds == unheld[1]
    assert row.answered_at is not None and row.ended_at is not None
    held_through = (row.ended_at - row.answered_at).total_seconds()
    assert row.talk_seconds == max(0.0, held_through - unheld[1])
    assert row.outcome == "answered"
