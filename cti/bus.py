"""The event bus: business events (call offered, ringing agent, ...) from producers to subscribers.

In-process by default. Subscribers are async callables; one failing subscriber is
logged and never stops the others or the publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("cti.bus")

Subscriber = Callable[[str, dict[str, Any]], Awaitable[None]]


class InProcessBus:
    def __init__(self) -> None:
        self.subscribers: dict[str, list[Subscriber]] = {}

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        self.subscribers.setdefault(topic, []).append(subscriber)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        for subscriber in self.subscribers.get(topic, []) + self.subscribers.get("*", []):
            try:
                await subscriber(topic, event)
            except Exception:
                log.exception("bus subscriber failed", extra={"topic": topic})

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": "inprocess"}


def make_bus(backend: str) -> InProcessBus:
    if backend != "inprocess":
        raise NotImplementedError(f"bus backend {backend!r} arrives with the CTI issue")
    return InProcessBus()
