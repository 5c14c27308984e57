"""The event bus: in-process delivery, and the Redis backend on the real server.

Tests run in parallel on one shared Redis, so each uses its own random channel
prefix and touches only its own connections.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis

from cti.bus import InProcessBus, RedisBus, make_bus
from tests.conftest import unavailable
from tests.support.service import REPO

REDIS_URL = "redis://127.0.0.1:6379/0"
Seen = list[tuple[str, dict[str, Any]]]


def recorder(seen: Seen, name: str = "") -> Any:
    async def record(topic: str, event: dict[str, Any]) -> None:
        seen.append((topic, {**event, "by": name} if name else event))

    return record


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        unavailable(f"Redis at {REDIS_URL} is not available: {type(exc).__name__}")
    yield client
    client.close()


@pytest.fixture
def prefix(admin: redis.Redis) -> str:
    return f"test.{uuid.uuid4().hex}."


# in-process


def test_inprocess_delivers_in_subscription_order_then_star() -> None:
    bus, seen = InProcessBus(), []
    bus.subscribe("*", recorder(seen, "star"))
    bus.subscribe("call.offered", recorder(seen, "first"))
    bus.subscribe("call.offered", recorder(seen, "second"))
    bus.subscribe("call.ended", recorder(seen, "other"))
    asyncio.run(bus.publish("call.offered", {"id": 1}))
    assert seen == [
        ("call.offered", {"id": 1, "by": "first"}),
        ("call.offered", {"id": 1, "by": "second"}),
        ("call.offered", {"id": 1, "by": "star"}),
    ]


def test_inprocess_failing_subscriber_does_not_stop_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(topic: str, event: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    bus, seen = InProcessBus(), []
    bus.subscribe("x", broken)
    bus.subscribe("x", recorder(seen))
    bus.subscribe("*", broken)
    bus.subscribe("*", recorder(seen, "star"))
    asyncio.run(bus.publish("x", {"n": 1}))
    assert seen == [("x", {"n": 1}), ("x", {"n": 1, "by": "star"})]
    assert caplog.text.count("bus subscriber failed") == 2


def test_make_bus() -> None:
    assert isinstance(make_bus("inprocess", REDIS_URL), InProcessBus)
    assert isinstance(make_bus("redis", REDIS_URL), RedisBus)
    with pytest.raises(ValueError, match="inprocess, redis"):
        make_bus("kafka", REDIS_URL)


# redis


def test_redis_events_reach_another_bus_in_order(prefix: str) -> None:
    sent_at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

    async def scenario() -> tuple[Seen, Seen]:
        sender, receiver = RedisBus(REDIS_URL, prefix), RedisBus(REDIS_URL, prefix)
        got, star = [], []
        receiver.subscribe("call.offered", recorder(got))
        receiver.subscribe("*", recorder(star))
        await sender.start()
        await receiver.start()
        try:
            assert receiver.health() == {
                "status": "ok",
                "backend": "redis",
                "state": "connected",
                "dropped": 0,
            }
            for n in range(100):
                event = {"n": n, "at": sent_at, "amount": Decimal("1.50"), "tags": ["a"]}
                await sender.publish("call.offered", event)
            await sender.publish("call.ended", {"n": 100})
            await wait_for(lambda: len(star) == 101)
        finally:
            await sender.stop()
            await receiver.stop()
        return got, star

    got, star = asyncio.run(scenario())
    at = "2024-05-06T07:08:09+00:00"
    expected = [
        ("call.offered", {"n": n, "at": at, "amount": "1.50", "tags": ["a"]}) for n in range(100)
    ]
    assert got == expected
    assert star == [*expected, ("call.ended", {"n": 100})]


def test_redis_publisher_hears_its_own_events_only_through_redis(prefix: str) -> None:
    async def scenario() -> tuple[Seen, Seen]:
        bus = RedisBus(REDIS_URL, prefix)
        seen = []
        bus.subscribe("x", recorder(seen))
        await bus.publish("x", {"n": 0})  # not started: nobody listens, nothing delivered
        before = list(seen)
        await bus.start()
        try:
            await bus.publish("x", {"n": 1})
            await wait_for(lambda: seen)
        finally:
            await bus.stop()
        return before, seen

    before, seen = asyncio.run(scenario())
    assert before == []
    assert seen == [("x", {"n": 1})]


def test_redis_failing_subscriber_does_not_stop_others(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(topic: str, event: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    async def scenario() -> Seen:
        bus, seen = RedisBus(REDIS_URL, prefix), []
        bus.subscribe("x", broken)
        bus.subscribe("x", recorder(seen))
        await bus.start()
        try:
            await bus.publish("x", {"n": 1})
            await bus.publish("x", {"n": 2})
            await wait_for(lambda: len(seen) == 2)
        finally:
            await bus.stop()
        return seen

    assert asyncio.run(scenario()) == [("x", {"n": 1}), ("x", {"n": 2})]
    assert caplog.text.count("bus subscriber failed") == 2


PUBLISHER = """
import asyncio, sys
from cti.bus import RedisBus

async def main():
    bus = RedisBus(sys.argv[1], sys.argv[2])
    for n in range(5):
        await bus.publish("call.offered", {"n": n, "from": "child"})
    await bus.stop()

asyncio.run(main())
"""


def test_redis_events_cross_processes(prefix: str) -> None:
    async def scenario() -> Seen:
        bus, seen = RedisBus(REDIS_URL, prefix), []
        bus.subscribe("call.offered", recorder(seen))
        await bus.start()
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", PUBLISHER, REDIS_URL, prefix, cwd=REPO
            )
            assert await asyncio.wait_for(child.wait(), 30) == 0
            await wait_for(lambda: len(seen) == 5)
        finally:
            await bus.stop()
        return seen

    assert asyncio.run(scenario()) == [
        ("call.offered", {"n": n, "from": "child"}) for n in range(5)
    ]


def test_redis_down_drops_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cti.bus")

    async def scenario() -> dict[str, Any]:
        bus = RedisBus("redis://ivr:sekrit@127.0.0.1:1/0")
        await bus.start()  # returns after the first failed attempt
        try:
            for n in range(3):
                await bus.publish("x", {"n": n})
            return bus.health()
        finally:
            await bus.stop()

    health = asyncio.run(scenario())
    assert health == {
        "status": "degraded",
        "backend": "redis",
        "state": "disconnected",
        "dropped": 3,
    }
    assert caplog.text.count("bus cannot publish") == 1
    assert caplog.text.count("bus has no redis") == 1
    assert "127.0.0.1:1" in caplog.text
    assert "sekrit" not in caplog.text


def connection_ids(admin: redis.Redis, name: str) -> list[int]:
    return [int(c["id"]) for c in admin.client_list() if c["name"] == name]


def test_redis_listener_reconnects(prefix: str, admin: redis.Redis) -> None:
    async def scenario() -> Seen:
        sender, receiver = RedisBus(REDIS_URL, prefix), RedisBus(REDIS_URL, prefix)
        seen = []
        receiver.subscribe("x", recorder(seen))
        await receiver.start()  # the sender only publishes: one listener has this name
        try:
            await sender.publish("x", {"n": 1})
            await wait_for(lambda: len(seen) == 1)
            [old] = await asyncio.to_thread(connection_ids, admin, receiver.listener_name)
            assert await asyncio.to_thread(admin.client_kill_filter, _id=old) == 1

            async def reconnected() -> bool:
                ids = await asyncio.to_thread(connection_ids, admin, receiver.listener_name)
                return ids != [] and old not in ids and receiver.state == "connected"

            async with asyncio.timeout(10):
                while not await reconnected():
                    await asyncio.sleep(0.05)
            await sender.publish("x", {"n": 2})
            await wait_for(lambda: len(seen) == 2)
            assert receiver.health()["status"] == "ok"
        finally:
            await sender.stop()
            await receiver.stop()
        return seen

    assert asyncio.run(scenario()) == [("x", {"n": 1}), ("x", {"n": 2})]


def test_redis_publisher_survives_a_dropped_connection(prefix: str, admin: redis.Redis) -> None:
    """A pooled connection Redis closed (say, by a restart) costs no event."""

    async def scenario() -> tuple[Seen, dict[str, Any]]:
        sender, receiver = RedisBus(REDIS_URL, prefix), RedisBus(REDIS_URL, prefix)
        seen = []
        receiver.subscribe("x", recorder(seen))
        await receiver.start()
        try:
            await sender.publish("x", {"n": 1})
            [old] = await asyncio.to_thread(connection_ids, admin, sender.publisher_name)
            assert await asyncio.to_thread(admin.client_kill_filter, _id=old) == 1
            await sender.publish("x", {"n": 2})
            await wait_for(lambda: len(seen) == 2)
            return seen, sender.health()
        finally:
            await sender.stop()
            await receiver.stop()

    seen, health = asyncio.run(scenario())
    assert seen == [("x", {"n": 1}), ("x", {"n": 2})]
    assert health["dropped"] == 0
