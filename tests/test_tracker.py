"""The call tracker on the real Asterisk 22: AMI events in, business events out.

Callers wait in queues no flow routes to, so no other test's calls meet them: in
``training`` a simulated agent, a Local channel in ``[ivr-agent]``, rings for a second,
answers and talks for five (only the first test adds one); ``waiting-room`` never has
agents. Tests run in parallel, so each follows only its own calls.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from cti.ami.bridge import AmiBridge
from cti.bus import InProcessBus
from cti.tracker import CallTracker, TrackedCall

QUEUE, WAITING = "training", "waiting-room"
pytestmark = pytest.mark.asterisk


class Scenario:
    """An AMI bridge and tracker in this test's event loop, recording `call.*` events."""

    def __init__(self, settings: Any) -> None:
        self.bus = InProcessBus()
        self.tracker = CallTracker(self.bus)
        self.bridge = AmiBridge(settings, self.bus, self.tracker)
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()
        self.bus.subscribe("*", self._record)

    async def _record(self, topic: str, event: dict[str, Any]) -> None:
        if topic.startswith("call."):
            self.seen.append((topic, event))
            self.changed.set()

    async def __aenter__(self) -> Scenario:
        await self.bridge.start()
        async with asyncio.timeout(10):
            while self.bridge.resyncs == 0:  # logged in, and the first resync done
                await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.bridge.stop()

    async def action(self, as_list: bool | None = None, **fields: str) -> Any:
        """panoramisk waits for more after "Added interface to queue" (QueueAdd) unless
        told the reply is one message: as_list=False."""
        assert self.bridge.manager is not None
        async with asyncio.timeout(10):
            return await self.bridge.manager.send_action(fields, as_list=as_list)

    async def caller(self, hold: float, queue: str = QUEUE) -> str:
        """A caller queued in `queue` for at most `hold` seconds; its Linkedid."""
        assert self.bridge.manager is not None
        async with asyncio.timeout(10):
            return linkedid_of(await self.bridge.manager.send_action(queued_caller(hold, queue)))

    async def until(self, topic: str, linkedid: str, timeout: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for seen, event in self.seen:
                    if seen == topic and event["linkedid"] == linkedid:
                        return event
                self.changed.clear()
                await self.changed.wait()

    async def in_bridge(self, channel: str, timeout: float = 10) -> None:
        """app_queue reports AgentConnect before it bridges the agent's leg; a transfer
        asked for in between is refused with "Transfer invalid"."""
        async with asyncio.timeout(timeout):
            while True:
                listed = await self.action(True, Action="CoreShowChannels")
                if any(
                    e.get("Channel") == channel and e.get("BridgeId")
                    for e in listed
                    if e.get("Event") == "CoreShowChannel"
                ):
                    return
                await asyncio.sleep(0.05)

    def topics(self, linkedid: str) -> list[str]:
        return [t for t, e in self.seen if e["linkedid"] == linkedid]


def test_offered_ringing_answered_transferred_ended_then_an_abandon(asterisk) -> None:
    async def scenario() -> None:
        async with Scenario(asterisk.ami) as s:
            agent = f"Local/agent{uuid.uuid4().hex[:8]}@ivr-agent/n"
            added = await s.action(False, Action="QueueAdd", Queue=QUEUE, Interface=agent)
            assert added.get("Response") == "Success", dict(added)
            try:
                call = await s.caller(hold=40)
                answered = await s.until("call.answered", call)
                assert answered["queue"] == QUEUE and answered["agent"] == agent
                assert answered["caller"] == "+14155550123"
                assert s.tracker.calls[call].state == "answered"
                # The agent blind-transfers the caller back into the queue (to a colleague:
                # here the same simulated phone, rung again after its wrap-up time).
                phone = next(
                    c
                    for c in s.tracker.calls[call].channels
                    if c.startswith(agent.split("/n")[0].replace("@ivr-agent", "@ivr-agent-"))
                    and c.endswith(";1")
                )
                await s.in_bridge(phone)
                moved = await s.action(
                    Action="BlindTransfer", Channel=phone, Context="ivr-route", Exten="queue"
                )
                assert moved.get("Response") == "Success", dict(moved)
                transferred = await s.until("call.transferred", call)
                assert transferred["how"] == "Blind"
                await s.until("call.ended", call, timeout=40)
                assert s.topics(call) == [
                    "call.started",
                    "call.offered",
                    "call.ringing",
                    "call.answered",
                    "call.transferred",
                    "call.completed",  # the first agent's part ends with the transfer
                    "call.offered",
                    "call.ringing",
                    "call.answered",
                    "call.completed",
                    "call.ended",
                ]
                assert call not in s.tracker.calls
            finally:
                await s.action(False, Action="QueueRemove", Queue=QUEUE, Interface=agent)
            # Nobody to answer now: the caller gives up after two seconds.
            gone = await s.caller(hold=2)
            abandoned = await s.until("call.abandoned", gone)
            assert abandoned["hold_seconds"] is not None
            await s.until("call.ended", gone)
            assert s.topics(gone) == [
                "call.started",
                "call.offered",
                "call.abandoned",
                "call.ended",
            ]

    asyncio.run(scenario())


def test_resync_replaces_the_state_with_asterisks(asterisk) -> None:
    """A stale call (its hang-up was missed) goes; a waiting call we never saw comes in."""

    async def scenario() -> None:
        async with Scenario(asterisk.ami) as s:
            call = await s.caller(hold=6, queue=WAITING)
            await s.until("call.offered", call)
            del s.tracker.calls[call]  # as if we had been away when it joined
            s.tracker.calls["stale-1"] = TrackedCall("stale-1", state="queued", queue=WAITING)
            await s.bridge.resync()
            assert "stale-1" not in s.tracker.calls
            found = s.tracker.calls[call]
            assert (found.queue, found.state) == (WAITING, "queued")
            assert found.caller == "+14155550123" and len(found.channels) == 2
            await s.until("call.abandoned", call)  # and it is followed from there on
            await s.until("call.ended", call)

    asyncio.run(scenario())


class AmiProxy:
    """A TCP relay between the bridge and Asterisk's AMI that the test can cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every connection and refuse new ones until `start` again."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )


def test_after_a_dropped_ami_connection_the_tracker_matches_asterisk(asterisk, ami) -> None:
    """While the bridge is cut off, one call ends and another joins the queue; after the
    reconnect and resync the tracker has the second and not the first."""

    async def scenario() -> None:
        proxy = AmiProxy((asterisk.ami.host, asterisk.ami.port))
        await proxy.start()
        settings = asterisk.ami.model_copy(update={"port": proxy.port})
        async with Scenario(settings) as s:
            first = await s.caller(hold=3, queue=WAITING)
            await s.until("call.offered", first)
            await proxy.cut()
            async with asyncio.timeout(10):
                while s.bridge.state != "disconnected":
                    await asyncio.sleep(0.05)
            # Meanwhile, through another AMI session: a second caller joins.
            second = await asyncio.to_thread(place_queued_caller, ami, 20, WAITING)
            await asyncio.sleep(4)  # the first caller hangs up in the gap
            resyncs = s.bridge.resyncs
            await proxy.start()
            async with asyncio.timeout(20):
                while s.bridge.resyncs == resyncs:
                    await asyncio.sleep(0.05)
            assert first not in s.tracker.calls
            found = s.tracker.calls[second]
            assert (found.queue, found.state) == (WAITING, "queued")
            await s.action(Action="Hangup", Channel=sorted(found.channels)[0])
            await s.until("call.ended", second)

    asyncio.run(scenario())


def queued_caller(hold: float, queue: str) -> dict[str, Any]:
    """The Originate for a caller queued in `queue` for at most `hold` seconds."""
    return {
        "Action": "Originate",
        "Channel": "Local/queue@ivr-route/n",
        "Context": "ivr-caller",
        "Exten": "silent",
        "Priority": "1",
        "CallerID": '"Tracker test" <+14155550123>',
        "Variable": [f"IVR_QUEUE={queue}", f"CALLER_HOLD={hold}"],
        "Async": "true",
        "ActionID": uuid.uuid4().hex,
    }


def linkedid_of(reply: Any) -> str:
    final = reply[-1] if isinstance(reply, list) else reply
    assert final.get("Response") == "Success", dict(final)
    return final["Uniqueid"]  # the ;1 half's: the Linkedid of the whole call


def place_queued_caller(ami, hold: float, queue: str) -> str:
    """A caller in `queue` placed through the test's own AMI client; its Linkedid."""
    return linkedid_of(ami.action(queued_caller(hold, queue)))
