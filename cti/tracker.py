"""Call tracker: follows each call through Asterisk from AMI events, keyed by Linkedid,
and publishes what happened to it as business events on the bus.

AMI events are triggers; the tracker keeps only what the CTI side needs (the call's
channels, its queue, the agents rung and the agent who answered) and turns the
low-level events into a few typed ones:

======================  =========================================================
``call.started``        its first channel appeared (Newchannel)
``call.offered``        the caller joined a queue (QueueCallerJoin)
``call.ringing``        an agent's phone rings for it (AgentCalled)
``call.ring_no_answer`` that agent did not answer (AgentRingNoAnswer)
``call.answered``       an agent answered (AgentConnect)
``call.completed``      the agent's part ended (AgentComplete): talk time, who hung up
``call.transferred``    a blind or attended transfer moved it (Blind/AttendedTransfer)
``call.held``           one of its channels was put on hold (Hold)
``call.unheld``         none is on hold any more (Unhold, or it hung up): hold time so far
``call.abandoned``      the caller hung up while queued (QueueCallerAbandon)
``call.ended``          its last channel hung up
======================  =========================================================

After a gap in the AMI stream (a reconnect, or Asterisk restarted) the state may be
stale; `resync` replaces it with the channels and queue entries Asterisk reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cti.bus import Bus

log = logging.getLogger("cti.tracker")


@dataclass
class TrackedCall:
    linkedid: str
    caller: str = ""
    channels: set[str] = field(default_factory=set)
    queue: str | None = None
    state: str = "new"  # new, queued, ringing, answered, ended, abandoned
    ringing: set[str] = field(default_factory=set)  # agent interfaces being rung
    agent: str | None = None
    queued_at: float | None = None  # epoch seconds it joined its queue
    ivr_call_id: str | None = None  # our IVR's id for the call, when it passed the IVR
    held: set[str] = field(default_factory=set)  # its channels on hold now
    held_since: float = 0.0  # epoch seconds the current hold began
    hold_seconds: float = 0.0  # on hold in all, for holds that ended

    def public(self) -> dict[str, Any]:
        return {
            "linkedid": self.linkedid,
            "caller": self.caller,
            "queue": self.queue,
            "state": self.state,
            "agent": self.agent,
            "queued_at": self.queued_at,
            "ivr_call_id": self.ivr_call_id,
            "ringing": sorted(self.ringing),
            "channels": sorted(self.channels),
        }


class CallTracker:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.calls: dict[str, TrackedCall] = {}
        bus.subscribe("ivr.queued", self._on_ivr)

    async def _on_ivr(self, _topic: str, event: dict[str, Any]) -> None:
        if event.get("linkedid") in self.calls:
            self.calls[event["linkedid"]].ivr_call_id = event.get("call_id")

    async def handle(self, event: dict[str, Any]) -> None:
        """One AMI event (a dict of its headers)."""
        name = event.get("Event", "")
        if name == "Newchannel":  # a call's first channel opens it; later ones share its Linkedid
            linkedid = event.get("Linkedid") or event.get("Uniqueid") or ""
            call = self.calls.get(linkedid)
            if call is None:
                call = self.calls[linkedid] = TrackedCall(linkedid, _number(event))
                call.channels.add(event.get("Channel", ""))
                await self._publish("call.started", call)
                return
            call.channels.add(event.get("Channel", ""))
            call.caller = call.caller or _number(event)
            return
        if name in ("AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer"):
            # Agent events carry both sides; the caller's Linkedid is the call.
            linkedid = event.get("Linkedid") or event.get("DestLinkedid")
        elif name in ("BlindTransfer", "AttendedTransfer"):  # the party moved is the call
            linkedid = event.get("TransfereeLinkedid") or event.get("OrigTransfererLinkedid")
        else:
            linkedid = event.get("Linkedid")
        call = self.calls.get(linkedid or "")
        if call is None:
            return
        agent = event.get("Interface") or event.get("MemberName")
        if name == "QueueCallerJoin":
            call.queue, call.state, call.queued_at = event.get("Queue"), "queued", time.time()
            call.caller = _number(event) or call.caller  # the queued channel's caller ID
            await self._publish("call.offered", call, position=event.get("Position"))
        elif name == "AgentCalled" and call.state in ("queued", "ringing"):
            call.state = "ringing"
            call.ringing.add(agent or "")
            await self._publish("call.ringing", call, agent=agent)
        elif name == "AgentRingNoAnswer":
            call.ringing.discard(agent or "")
            if not call.ringing and call.state == "ringing":
                call.state = "queued"
            await self._publish("call.ring_no_answer", call, agent=agent)
        elif name == "AgentConnect":
            call.state, call.agent = "answered", agent
            call.ringing.clear()
            await self._publish("call.answered", call, hold_seconds=_int(event, "HoldTime"))
        elif name == "AgentComplete":
            await self._publish(
                "call.completed",
                call,
                talk_seconds=_int(event, "TalkTime"),
                hung_up_by=event.get("Reason"),
            )
        elif name == "QueueCallerAbandon":
            call.state = "abandoned"
            await self._publish("call.abandoned", call, hold_seconds=_int(event, "HoldTime"))
        elif name in ("BlindTransfer", "AttendedTransfer"):
            await self._publish("call.transferred", call, how=name.removesuffix("Transfer"))
        elif name == "Hold":
            if not call.held:
                call.held_since = time.time()
                await self._publish("call.held", call)
            call.held.add(event.get("Channel", ""))
        elif name == "Unhold":
            await self._unhold(call, event.get("Channel", ""))
        elif name == "Hangup":
            await self._unhold(call, event.get("Channel", ""))
            call.channels.discard(event.get("Channel", ""))
            if not call.channels:
                del self.calls[call.linkedid]
                if call.state != "abandoned":
                    call.state = "ended"
                await self._publish("call.ended", call, cause=event.get("Cause-txt"))

    async def _unhold(self, call: TrackedCall, channel: str) -> None:
        """The channel is off hold (or gone); the hold ends when no channel is held."""
        if channel not in call.held:
            return
        call.held.discard(channel)
        if not call.held:
            call.hold_seconds += max(0.0, time.time() - call.held_since)
            await self._publish("call.unheld", call, hold_seconds=round(call.hold_seconds, 3))

    async def _publish(self, topic: str, call: TrackedCall, **more: Any) -> None:
        await self.bus.publish(topic, {**call.public(), **more})

    def resync(self, channels: Iterable[dict[str, Any]], entries: Iterable[dict[str, Any]]) -> None:
        """Replace the state with Asterisk's: `channels` from CoreShowChannels
        (CoreShowChannel events), `entries` from QueueStatus (QueueEntry events)."""
        fresh: dict[str, TrackedCall] = {}
        for channel in channels:
            linkedid = channel.get("Linkedid") or channel.get("Uniqueid") or ""
            call = fresh.get(linkedid) or self.calls.get(linkedid) or TrackedCall(linkedid)
            if linkedid not in fresh:
                call.channels = set()
            call.channels.add(channel.get("Channel", ""))
            call.caller = call.caller or _number(channel)
            fresh[linkedid] = call
        # A queue entry names the queued channel; its call is the one holding that channel.
        by_channel = {name: call.linkedid for call in fresh.values() for name in call.channels}
        queued = {by_channel.get(e.get("Channel", "")): e for e in entries}
        for linkedid, call in fresh.items():
            entry = queued.get(linkedid)
            if entry is not None:
                call.queue = entry.get("Queue")
                call.queued_at = call.queued_at or time.time() - (_int(entry, "Wait") or 0)
                if call.state != "ringing":
                    call.state = "queued"
            elif call.state in ("queued", "ringing"):
                call.state = "answered" if call.agent else "new"
        dropped = set(self.calls) - set(fresh)
        if dropped:
            log.info("resync dropped calls Asterisk no longer has", extra={"calls": len(dropped)})
        self.calls = fresh


def _int(event: dict[str, Any], key: str) -> int | None:
    try:
        return int(event.get(key, ""))
    except ValueError:
        return None


def _number(event: dict[str, Any]) -> str:
    """The caller ID number, or "" where Asterisk does not know it yet."""
    number = event.get("CallerIDNum", "")
    return "" if number in ("", "<unknown>") else number
