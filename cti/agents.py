"""Agent states as Asterisk reports them: which queues each agent's phone is a member
of, paused (and why) or not, and the device state.

Fed by the QueueMember* AMI events and replaced wholesale by `resync` from
QueueStatus after a gap, like the call tracker. The desktop shows only this: after a
click on "pause", the agent sees "paused" when Asterisk says so, not before.
Each change is published as ``agent.state`` with the agent's whole state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cti.bus import Bus

# Asterisk's AST_DEVICE_* numbers, as QueueMember events give them.
DEVICE_STATES = {
    "0": "unknown",
    "1": "idle",
    "2": "in call",
    "3": "busy",
    "4": "invalid",
    "5": "unavailable",
    "6": "ringing",
    "7": "ringing",
    "8": "on hold",
}


@dataclass
class Membership:
    queue: str
    paused: bool = False
    reason: str = ""
    device: str = "unknown"


class AgentStates:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.members: dict[str, dict[str, Membership]] = {}  # interface -> queue -> state
        self.queues: set[str] = set()

    async def handle(self, event: dict[str, Any]) -> None:
        """One AMI event (a dict of its headers); only QueueMember* events count."""
        name, interface, queue = event.get("Event", ""), _interface(event), event.get("Queue", "")
        if not name.startswith("QueueMember") or not interface or not queue:
            return
        self.queues.add(queue)
        if name == "QueueMemberRemoved":
            self.members.get(interface, {}).pop(queue, None)
        else:  # QueueMemberAdded, QueueMemberStatus, QueueMemberPause
            self._update(event)
        await self.publish(interface)

    def _update(self, event: dict[str, Any]) -> None:
        queues = self.members.setdefault(_interface(event), {})
        member = queues.setdefault(event["Queue"], Membership(event["Queue"]))
        if "Paused" in event:
            member.paused = event["Paused"] == "1"
            member.reason = event.get("PausedReason", "") if member.paused else ""
        if "Status" in event:
            member.device = DEVICE_STATES.get(event["Status"], "unknown")

    def state(self, interface: str) -> dict[str, Any]:
        queues = self.members.get(interface, {})
        return {
            "interface": interface,
            "queues": [asdict(m) for _, m in sorted(queues.items())],
            "paused": bool(queues) and all(m.paused for m in queues.values()),
            "all_queues": sorted(self.queues),
        }

    async def publish(self, interface: str) -> None:
        await self.bus.publish("agent.state", self.state(interface))

    def resync(self, params: Iterable[dict[str, Any]], members: Iterable[dict[str, Any]]) -> None:
        """Replace the state with Asterisk's: QueueParams and QueueMember events from
        QueueStatus."""
        self.queues = {p["Queue"] for p in params if p.get("Queue")}
        self.members = {}
        for member in members:
            if _interface(member) and member.get("Queue"):
                self._update(member)

    def everyone(self) -> list[dict[str, Any]]:
        return [self.state(interface) for interface in sorted(self.members)]


def _interface(event: dict[str, Any]) -> str:
    # Asterisk 12+ calls it Interface; QueueMember events from QueueStatus use Location
    # in some versions.
    return event.get("Interface") or event.get("Location") or ""
