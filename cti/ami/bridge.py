"""AMI bridge: keeps one logged-in panoramisk Manager connection to Asterisk.

Reconnects with exponential backoff and logs each state change. Events are
queued off panoramisk's read loop and handed to the call tracker and the agent
states by a consumer task, so a slow handler never blocks AMI. Raw AMI events stay
in this process; only the business events they become go on the bus. After every
login and every FullyBooted (both follow a gap in the event stream) the call tracker
and the agent states are resynchronised from CoreShowChannels and QueueStatus.

`send` runs one action for others (the agent desktop's QueueAdd, QueuePause, ...).
`handlers` takes more event handlers (anything with ``async handle(fields)``, such as
the outbound dialer's cti/ami/outbound.py); they see every event after the tracker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from panoramisk import Manager

from cti.agents import AgentStates
from cti.bus import Bus
from cti.tracker import CallTracker
from ivr.config import AmiSettings

log = logging.getLogger("cti.ami")

EVENT_QUEUE_SIZE = 10_000
RESYNC = object()  # queued after a login: re-read Asterisk's state before more events


class EventHandler(Protocol):
    async def handle(self, fields: dict[str, Any]) -> None: ...


class AmiError(Exception):
    """Asterisk refused an action, or AMI is not connected."""


class _Manager(Manager):
    """panoramisk's Manager with our backoff instead of its fixed reconnect delay."""

    def __init__(self, bridge: AmiBridge, **config: Any) -> None:
        super().__init__(**config)
        self.bridge = bridge

    def connection_made(self, f: asyncio.Future) -> None:  # type: ignore[type-arg]
        if f.exception() is not None:
            self.bridge._set_state("disconnected", reason=str(f.exception()))
            self.loop.call_later(self.bridge._next_delay(), self.connect)
            return
        super().connection_made(f)

    def login(self, future: asyncio.Future) -> bool:  # type: ignore[type-arg]
        ok = super().login(future)
        if not ok:
            self.bridge._set_state("login_failed")
        return ok

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.bridge._set_state("disconnected", reason=str(exc or "closed"))
        if not self.bridge.stopping:
            self.loop.call_later(self.bridge._next_delay(), self.connect)


class AmiBridge:
    def __init__(
        self,
        settings: AmiSettings,
        bus: Bus,
        tracker: CallTracker | None = None,
        agents: AgentStates | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.tracker = tracker
        self.agents = agents
        self.handlers: list[EventHandler] = []
        self.resyncs = 0
        self.state = "stopped"
        self.stopping = False
        self.delay = 0.5
        self.events: asyncio.Queue[Any] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.dropped = 0
        self.manager: _Manager | None = None
        self.consumer: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.manager = _Manager(
            self,
            loop=loop,
            host=self.settings.host,
            port=self.settings.port,
            username=self.settings.username,
            secret=self.settings.secret.get_secret_value(),
            events="on",
            ping_delay=10,
            ping_interval=10,
            on_login=self._on_login,
        )
        self.manager.register_event("*", self._on_event)
        self.consumer = asyncio.create_task(self._consume())
        self._set_state("connecting")
        self.manager.connect()

    async def stop(self) -> None:
        self.stopping = True
        if self.manager is not None:
            self.manager.close()
        if self.consumer is not None:
            self.consumer.cancel()
        self._set_state("stopped")

    def health(self) -> dict[str, Any]:
        ok = self.state == "logged_in"
        return {"status": "ok" if ok else "degraded", "state": self.state, "dropped": self.dropped}

    def _on_login(self, _manager: Manager) -> None:
        self.delay = 0.5
        self._set_state("logged_in")
        self.events.put_nowait(RESYNC)  # in order with the events, by the consumer

    async def send(self, fields: dict[str, str]) -> dict[str, Any]:
        """One action whose reply is one message; AmiError if Asterisk refuses it or
        the connection is down."""
        if self.manager is None or self.state != "logged_in":
            raise AmiError(f"AMI is {self.state}")
        # as_list=False: panoramisk takes "Added interface to queue" (QueueAdd) for the
        # start of a list and would wait for its end forever.
        async with asyncio.timeout(10):
            reply = await self.manager.send_action(fields, as_list=False)
        if reply.get("Response") != "Success":
            raise AmiError(reply.get("Message") or "refused")
        return dict(reply)

    async def resync(self) -> None:
        """Replace the tracker's and the agent states with what Asterisk reports now."""
        if self.manager is None:
            return
        try:
            channels = await self.manager.send_action({"Action": "CoreShowChannels"})
            queues = await self.manager.send_action({"Action": "QueueStatus"})
        except Exception:
            log.exception("AMI resync failed", extra={"ami": self.address})
            return
        refused = [r for r in (channels, queues) if not isinstance(r, list)]
        if refused:  # e.g. "Permission denied": keep what we have rather than wipe it
            log.error("AMI resync refused", extra={"reply": refused[0].get("Message")})
            return
        if self.tracker is not None:
            self.tracker.resync(_events(channels, "CoreShowChannel"), _events(queues, "QueueEntry"))
        if self.agents is not None:
            self.agents.resync(_events(queues, "QueueParams"), _events(queues, "QueueMember"))
        self.resyncs += 1
        log.info("AMI resync", extra={"calls": len(self.tracker.calls) if self.tracker else 0})
        await self.bus.publish("ami.resynced", {"resyncs": self.resyncs})

    def _on_event(self, _manager: Manager, event: Any) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("AMI event queue full; event dropped", extra={"event": event.event})

    async def _consume(self) -> None:
        while True:
            event = await self.events.get()
            if event is RESYNC:
                await self.resync()
                continue
            if event.event == "FullyBooted":
                log.info("Asterisk fully booted", extra={"ami": self.address})
                await self.resync()
                continue
            fields = dict(event)
            for handler in (self.tracker, self.agents, *self.handlers):
                if handler is not None:
                    try:
                        await handler.handle(fields)
                    except Exception:
                        log.exception("AMI event handler failed", extra={"event": event.event})

    def _next_delay(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.settings.reconnect_max_delay)
        return delay

    def _set_state(self, state: str, **detail: Any) -> None:
        if state != self.state:
            level = logging.WARNING if state in ("disconnected", "login_failed") else logging.INFO
            log.log(level, "AMI " + state, extra={"ami": self.address, **detail})
            self.state = state


def _events(reply: Any, name: str) -> list[dict[str, Any]]:
    """The events called `name` in a list action's reply."""
    messages = reply if isinstance(reply, list) else [reply]
    return [dict(m) for m in messages if m.get("Event") == name]
