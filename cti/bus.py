"""The event bus: business events (call offered, ringing agent, ...) from producers to subscribers.

In-process by default. When several processes must share events, the Redis backend
carries them over pub/sub: every event goes through Redis, so every process
(including the publisher) delivers the same events in the same order. Subscribers
are async callables; one failing subscriber is logged and never stops the others or
the publisher. Redis pub/sub does not store events: while Redis is unreachable,
events published are dropped (and counted), and events a listener misses are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger("cti.bus")

Subscriber = Callable[[str, dict[str, Any]], Awaitable[None]]
BACKENDS = ("inprocess", "redis")


class Bus(Protocol):
    def subscribe(self, topic: str, subscriber: Subscriber) -> None: ...
    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def health(self) -> dict[str, Any]: ...


class InProcessBus:
    """Delivers each event to the subscribers of its topic, then to those of "*"."""

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

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": "inprocess"}


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"bus events must be JSON-able, got {type(value).__name__}")


def safe_address(url: str) -> str:
    """The URL without its user and password, for logs."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class RedisBus:
    """Events as JSON on Redis channels ``prefix + topic``; see the module docstring.

    ``start()`` runs a listener that pattern-subscribes to ``prefix + "*"`` and hands
    each event to the local subscribers; it reconnects with backoff when Redis goes.
    """

    FIRST_DELAY = 0.5
    MAX_DELAY = 10.0

    def __init__(self, url: str, prefix: str = "ivr.") -> None:
        self.url = url
        self.prefix = prefix
        self.address = safe_address(url)
        self.listener_name = f"{prefix}listener"  # CLIENT SETNAME, to find the connections
        self.publisher_name = f"{prefix}publisher"
        self.local = InProcessBus()
        self.state = "stopped"
        self.dropped = 0
        self._publish_failing = False
        self._publish_retry_at = 0.0
        self._settled = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        # One immediate retry on a fresh connection: a pooled one may predate a Redis restart.
        retry_once = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        self._publisher = self._client(retry_once, client_name=self.publisher_name)

    def _client(self, retry: Retry, **options: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url, retry=retry, socket_connect_timeout=2.0, socket_timeout=2.0, **options
        )

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        self.local.subscribe(topic, subscriber)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Send the event to Redis; if Redis is unreachable, drop and count it.

        During an outage, Redis is tried at most once a second so publishers are not held up.
        """
        data = json.dumps(event, default=_json_default)
        now = asyncio.get_running_loop().time()
        if self._publish_failing and now < self._publish_retry_at:
            self.dropped += 1
            return
        try:
            await self._publisher.publish(self.prefix + topic, data)
        except (RedisError, OSError) as exc:
            self.dropped += 1
            self._publish_retry_at = now + 1.0
            if not self._publish_failing:
                self._publish_failing = True
                log.warning(
                    "bus cannot publish to redis at %s, dropping events: %s", self.address, exc
                )
            return
        if self._publish_failing:
            self._publish_failing = False
            log.info(
                "bus publishes to redis at %s again (%d events dropped so far)",
                self.address,
                self.dropped,
            )

    async def start(self) -> None:
        """Start listening; returns once the first connection attempt succeeded or failed."""
        if self._listener is None:
            self._settled.clear()
            self._set_state("connecting")
            self._listener = asyncio.create_task(self._listen(), name="redis-bus")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), 10.0)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._publisher.aclose()
        self.state = "stopped"

    def health(self) -> dict[str, Any]:
        ok = self.state == "connected" and not self._publish_failing
        return {
            "status": "ok" if ok else "degraded",
            "backend": "redis",
            "state": self.state,
            "dropped": self.dropped,
        }

    def _set_state(self, state: str, error: BaseException | None = None) -> None:
        if state == self.state:
            return
        if state == "connected":
            log.info("bus listening on redis at %s", self.address)
        elif state == "disconnected":
            log.warning("bus has no redis at %s, retrying with backoff: %s", self.address, error)
        self.state = state
        if state != "connecting":
            self._settled.set()

    async def _listen(self) -> None:
        delay = self.FIRST_DELAY
        while True:
            # No retries or hidden reconnects inside redis-py: this loop reconnects.
            no_retry = Retry(NoBackoff(), 0, supported_errors=())
            client = self._client(no_retry, client_name=self.listener_name, decode_responses=True)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(self.prefix + "*")
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._set_state("connected")
                        delay = self.FIRST_DELAY
                    elif message["type"] == "pmessage":
                        await self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self._set_state("disconnected", exc)
            finally:
                await pubsub.aclose()
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.MAX_DELAY)

    async def _dispatch(self, channel: str, data: str) -> None:
        topic = channel.removeprefix(self.prefix)
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("bus ignored a message that is not JSON", extra={"topic": topic})
            return
        await self.local.publish(topic, event)


def make_bus(backend: str, redis_url: str, prefix: str = "ivr.") -> Bus:
    if backend == "inprocess":
        return InProcessBus()
    if backend == "redis":
        return RedisBus(redis_url, prefix)
    raise ValueError(f"unknown bus backend {backend!r}, expected one of: {', '.join(BACKENDS)}")
