"""Asterisk's side of the outcome log: what the call tracker saw happen to each call,
written to its row (cti/store/calls.py merges it with what the IVR wrote).

Every tracked call gets a row, wherever its caller hung up, because ``call.ended``
comes for every call. Writes run in one thread of their own, in the order the events
came, with the time each event was seen.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cti.bus import Bus
from cti.store.calls import CallLog
from cti.store.models import utcnow

log = logging.getLogger("cti.recorder")


def facts_of(topic: str, call: dict[str, Any]) -> dict[str, Any] | None:
    """The log's facts in one tracker event; None for events that add none."""
    now = utcnow()
    match topic:
        case "call.started":
            return {"started_at": now, "caller_number": call.get("caller") or None}
        case "call.offered":
            return {"queue": call.get("queue"), "queue_entered_at": now}
        case "call.answered":
            return {"answered_at": now}
        case "call.completed":
            return {"agent_done_at": now}
        case "call.abandoned":
            return {"abandoned": True}
        case "call.transferred":
            return {"transferred": True}
        case "call.ended":
            return {"ended_at": now}
    return None


class Recorder:
    def __init__(self, bus: Bus, calls: CallLog) -> None:
        self.calls = calls
        self.writing = ThreadPoolExecutor(1, thread_name_prefix="recorder")
        self.failed = 0
        bus.subscribe("*", self._on_event)

    async def _on_event(self, topic: str, call: dict[str, Any]) -> None:
        facts = facts_of(topic, call) if topic.startswith("call.") else None
        if facts is None:
            return
        loop = asyncio.get_running_loop()
        write = loop.run_in_executor(self.writing, self.calls.record, call["linkedid"], facts)
        write.add_done_callback(lambda done: self._done(done, topic, call["linkedid"]))

    def _done(self, write: asyncio.Future[None], topic: str, linkedid: str) -> None:
        if write.exception() is not None:
            self.failed += 1
            log.error(
                "call not recorded",
                extra={"linkedid": linkedid, "event": topic, "error": str(write.exception())},
            )

    async def drain(self) -> None:
        """Until every write queued so far is done (the service stops)."""
        await asyncio.get_running_loop().run_in_executor(self.writing, lambda: None)

    def health(self) -> dict[str, Any]:
        return {"status": "ok" if not self.failed else "degraded", "failed": self.failed}
