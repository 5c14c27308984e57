"""Live updates to the browsers: Server-Sent Events on ``/events``, served from the
service's event loop so a thousand open agent pages cost a thousand small objects,
not a thousand threads. Every other path goes to the Flask app in a worker thread.

An agent's stream carries their own screen pops (``pop``) and queue states
(``agent``); a supervisor's or ops user's carries the floor (``floor``: queues, agents,
calls in progress), at most twice a second. Browsers reconnect by themselves
(EventSource), and a reconnect starts with the current state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask
from itsdangerous import BadSignature
from sqlalchemy.orm import Session, sessionmaker

from cti.agents import AgentStates
from cti.bus import Bus
from cti.store.models import User
from cti.tracker import CallTracker

log = logging.getLogger("cti.web")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

KEEPALIVE = 15.0  # seconds between comments that keep proxies from closing a quiet stream
FLOOR_EVERY = 0.5  # seconds between floor snapshots at most
STREAM_BACKLOG = 100  # events a slow browser may fall behind before it is cut off


@dataclass(eq=False)
class Stream:
    role: str
    interface: str | None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(STREAM_BACKLOG))

    def push(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
        except asyncio.QueueFull:  # the browser is gone or stuck; it reconnects if alive
            self.end()

    def end(self) -> None:
        while True:
            try:
                self.queue.put_nowait(b"")
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class LiveHub:
    def __init__(
        self,
        bus: Bus,
        sessions: sessionmaker[Session],
        tracker: CallTracker,
        agents: AgentStates,
    ) -> None:
        self.sessions = sessions
        self.tracker = tracker
        self.agents = agents
        self.streams: set[Stream] = set()
        self.last_pop: dict[str, dict[str, Any]] = {}  # interface -> its latest pop event
        self.floor_due: asyncio.TimerHandle | None = None
        bus.subscribe("pop", self._on_pop)
        bus.subscribe("agent.state", self._on_agent)
        bus.subscribe("*", self._on_any)

    async def _on_pop(self, _topic: str, event: dict[str, Any]) -> None:
        self.last_pop[event["agent"]] = event
        for stream in self.streams:
            if stream.interface == event["agent"]:
                stream.push("pop", event)

    async def _on_agent(self, _topic: str, state: dict[str, Any]) -> None:
        for stream in self.streams:
            if stream.interface == state["interface"]:
                stream.push("agent", state)

    async def _on_any(self, topic: str, _event: dict[str, Any]) -> None:
        if topic == "ami.resynced":  # the queues and memberships may all have changed
            for stream in self.streams:
                if stream.interface:
                    stream.push("agent", self.agents.state(stream.interface))
        if topic.startswith(("call.", "agent.", "ami.resynced")) and self.floor_due is None:
            self.floor_due = asyncio.get_running_loop().call_later(FLOOR_EVERY, self._send_floor)

    def _send_floor(self) -> None:
        self.floor_due = None
        watchers = [s for s in self.streams if s.role != "agent"]
        if watchers:
            floor = self.floor()
            for stream in watchers:
                stream.push("floor", floor)

    def floor(self) -> dict[str, Any]:
        """Queues (waiting, longest wait, agents by state) and the calls in progress."""
        now = time.time()
        queues: dict[str, dict[str, Any]] = {}

        def queue(name: str) -> dict[str, Any]:
            return queues.setdefault(
                name, {"queue": name, "waiting": 0, "longest_wait": 0, "agents": {}}
            )

        for name in sorted(self.agents.queues):
            queue(name)
        agents = self.agents.everyone()
        for agent in agents:
            for member in agent["queues"]:
                counts = queue(member["queue"])["agents"]
                state = "paused" if member["paused"] else member["device"]
                counts[state] = counts.get(state, 0) + 1
        calls = [call.public() for call in self.tracker.calls.values()]
        for call in calls:
            if call["state"] in ("queued", "ringing") and call["queue"]:
                entry = queue(call["queue"])
                entry["waiting"] += 1
                waited = round(now - (call["queued_at"] or now))
                entry["longest_wait"] = max(entry["longest_wait"], waited)
        return {"queues": list(queues.values()), "agents": agents, "calls": calls, "at": now}

    async def serve(self, scope: Scope, receive: Receive, send: Send, user: User) -> None:
        stream = Stream(user.role, user.interface)
        if user.role == "agent":
            if user.interface:
                stream.push("agent", self.agents.state(user.interface))
                if user.interface in self.last_pop:
                    stream.push("pop", self.last_pop[user.interface])
        else:
            stream.push("floor", self.floor())
        self.streams.add(stream)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await send(
                {"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True}
            )
            while not gone.done():
                try:
                    chunk = await asyncio.wait_for(stream.queue.get(), KEEPALIVE)
                except TimeoutError:
                    chunk = b": keepalive\n\n"
                if not chunk:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            pass  # the browser went away
        finally:
            self.streams.discard(stream)
            gone.cancel()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "streams": len(self.streams)}

    def close(self) -> None:
        """End every stream (the service stops); browsers reconnect to the next one."""
        for stream in self.streams:
            stream.end()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def web_app(flask_app: Flask, hub: LiveHub, workers: int) -> Callable[..., Awaitable[None]]:
    """The ASGI app: ``/events`` served here, the rest by Flask."""
    pages = WSGIMiddleware(flask_app, workers=workers)
    serializer = flask_app.session_interface.get_signing_serializer(flask_app)  # type: ignore[attr-defined]
    cookie_name = flask_app.config["SESSION_COOKIE_NAME"]

    def user_of(scope: Scope) -> User | None:
        cookies = SimpleCookie()
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies.load(value.decode("latin-1"))
        if cookie_name not in cookies:
            return None
        try:
            session = serializer.loads(cookies[cookie_name].value)
        except BadSignature:
            return None
        with hub.sessions() as db:
            user = db.get(User, session.get("user_id"))
            if user is not None:
                db.expunge(user)
        return user if user is not None and user.active else None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/events":
            user = await asyncio.to_thread(user_of, scope)
            if user is None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"log in first\n"})
                return
            await hub.serve(scope, receive, send, user)
            return
        await pages(scope, receive, send)

    return app
