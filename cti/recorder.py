"""Asterisk's side of the outcome log: what the call tracker saw happen to each call,
written to its row (cti/store/calls.py merges it with what the IVR wrote).

Every tracked call gets a row, wherever its caller hung up, because ``call.ended``
comes for every call. Writes queue in the order the events came, with the time each
event was seen, and the log commits them in batches. After an AMI gap, calls the log
still has open but Asterisk no longer carries (their hang-up fell in the gap) are
closed: the reconciler, run at each resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from cti.bus import Bus
from cti.store.calls import CallLog
from cti.store.models import utcnow

log = logging.getLogger("cti.recorder")

RECONCILE_WINDOW = timedelta(days=2)  # open calls older than this are left to a person


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
        case "call.unheld":
            return {"hold_seconds": call["hold_seconds"]}
        case "call.ended":
            return {"ended_at": now}
    return None


class Recorder:
    """`live`: the Linkedids Asterisk carries now (the tracker's, just resynced)."""

    def __init__(self, bus: Bus, calls: CallLog, live: Callable[[], Collection[str]]) -> None:
        self.calls = calls
        self.live = live
        self.failed = 0
        self.closed = 0  # calls the reconciler closed
        self.reconciling: asyncio.Task[None] | None = None
        bus.subscribe("*", self._on_event)

    async def _on_event(self, topic: str, call: dict[str, Any]) -> None:
        if topic == "ami.resynced":
            self.reconciling = asyncio.create_task(
                asyncio.to_thread(self.reconcile, set(self.live()))
            )
            self.reconciling.add_done_callback(lambda done: self._failed(done, topic, ""))
            return
        facts = facts_of(topic, call) if topic.startswith("call.") else None
        if facts is not None:
            self._write(topic, call["linkedid"], facts)

    def _write(self, topic: str, linkedid: str, facts: dict[str, Any]) -> None:
        """Queued behind the writes before it; the log commits them in batches."""
        write = self.calls.submit(self.calls.facts_write(linkedid, facts))
        write.add_done_callback(lambda done: self._failed(done, topic, linkedid))

    def reconcile(self, live: Collection[str]) -> None:
        """Close the calls the log has open that Asterisk no longer carries."""
        now = utcnow()
        for linkedid in self.calls.open_calls(now - RECONCILE_WINDOW):
            if linkedid not in live:
                self._write("reconcile", linkedid, {"ended_at": now})
                self.closed += 1
                log.info("reconciler closed a call", extra={"linkedid": linkedid})

    def _failed(self, done: Future[None] | asyncio.Future[None], topic: str, linkedid: str) -> None:
        if not done.cancelled() and done.exception() is not None:
            self.failed += 1
            log.error(
                "call not recorded",
                extra={"linkedid": linkedid, "event": topic, "error": str(done.exception())},
            )

    async def drain(self) -> None:
        """Until every write queued so far is done (the service stops)."""
        if self.reconciling is not None:
            await asyncio.wait([self.reconciling])
        await asyncio.to_thread(self.calls.flush)

    def health(self) -> dict[str, Any]:
        status = "ok" if not self.failed else "degraded"
        return {"status": status, "failed": self.failed, "closed": self.closed}
