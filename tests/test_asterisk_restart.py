"""Asterisk restarts with a call waiting; after the resync the tracker matches it.

Restarting the shared sandbox would cut every other test's calls, so this test is
marked ``restart``: `make test` runs it alone, after the parallel suite
(tests/conftest.py leaves it out of any run that does not ask for it).
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from tests.conftest import SANDBOX, Sandbox
from tests.support.ami import AmiClient
from tests.test_tracker import WAITING, Scenario, place_queued_caller

pytestmark = [pytest.mark.asterisk, pytest.mark.restart]


def asterisk_calls(ami: AmiClient) -> dict[str, str | None]:
    """Asterisk's own view: each call's Linkedid and the queue it waits in, if any."""
    channels = ami.action({"Action": "CoreShowChannels"})
    entries = ami.action({"Action": "QueueStatus"})
    calls: dict[str, str | None] = {}
    by_channel = {}
    for channel in _events(channels, "CoreShowChannel"):
        calls[channel["Linkedid"]] = None
        by_channel[channel["Channel"]] = channel["Linkedid"]
    for entry in _events(entries, "QueueEntry"):
        calls[by_channel[entry["Channel"]]] = entry["Queue"]
    return calls


def _events(reply: Any, name: str) -> list[dict[str, Any]]:
    return [
        dict(m) for m in (reply if isinstance(reply, list) else [reply]) if m.get("Event") == name
    ]


def queued(s: Scenario, linkedid: str) -> bool:
    call = s.tracker.calls.get(linkedid)
    return call is not None and call.state == "queued"


def test_after_an_asterisk_restart_the_tracker_equals_asterisk(asterisk: Sandbox) -> None:
    settings = asterisk.ami.model_copy(update={"reconnect_max_delay": 1})

    async def scenario() -> None:
        async with Scenario(settings) as s:
            before = AmiClient(asterisk.ami)
            try:
                waiting = await asyncio.to_thread(place_queued_caller, before, 120, WAITING)
                await s.until("call.offered", waiting)
            finally:
                before.close()
            resyncs = s.bridge.resyncs
            for step in ("stop", "start"):
                await asyncio.to_thread(subprocess.run, [SANDBOX, step], check=True)
            after = AmiClient(asterisk.ami)
            try:
                # A caller joins as soon as Asterisk is back, maybe before the bridge is.
                joined = await asyncio.to_thread(place_queued_caller, after, 30, WAITING)
                async with asyncio.timeout(30):  # seen joining, or adopted by the resync
                    while s.bridge.resyncs == resyncs or not queued(s, joined):
                        await asyncio.sleep(0.05)
                truth = await asyncio.to_thread(asterisk_calls, after)
                ours = {linkedid: call.queue for linkedid, call in s.tracker.calls.items()}
                assert waiting not in ours  # the restart ended it
                assert ours == truth
                after.action(
                    {"Action": "Hangup", "Channel": sorted(s.tracker.calls[joined].channels)[0]}
                )
                await s.until("call.ended", joined)
            finally:
                after.close()

    asyncio.run(scenario())
