"""What gateway replicas share through a real Redis server (started by the test): live events
(``RedisHub``) and the chat rate-limit buckets (``RedisBuckets``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.conversation.rate_limits import ChatLimiter, RedisBuckets, Rule
from bot.web.hub import RedisHub
from tests.support.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_an_event_published_on_one_replica_reaches_subscribers_on_both_in_order(redis_url: str) -> None:
    async def scenario() -> tuple[list[dict], list[dict], int]:
        a, b = RedisHub(redis_url), RedisHub(redis_url)
        await a.start()
        await b.start()
        try:
            on_a, on_b = a.subscribe("conversation:x"), b.subscribe("conversation:x")
            local = 0
            for i in range(20):
                local += a.publish("conversation:x", {"type": "agent", "n": i})
            got_a = [await asyncio.wait_for(on_a.get(), 5) for _ in range(20)]
            got_b = [await asyncio.wait_for(on_b.get(), 5) for _ in range(20)]
            b.publish("conversation:other", {"type": "noise"})
            await asyncio.sleep(0.3)
            assert on_a._queue.empty() and on_b._queue.empty()  # other topics do not leak, nothing twice
            return got_a, got_b, local
        finally:
            await a.aclose()
            await b.aclose()

    got_a, got_b, local = asyncio.run(scenario())
    expected = [{"type": "agent", "n": i} for i in range(20)]
    assert got_a == expected and got_b == expected  # once each, in publishing order
    assert local == 20  # publish still counts this replica's subscribers


def test_rate_limit_buckets_are_shared_by_replicas(redis_url: str) -> None:
    rule = "3/min burst 3"

    async def scenario() -> list[bool]:
        stores = [RedisBuckets(redis_url, prefix="t:rl:"), RedisBuckets(redis_url, prefix="t:rl:")]
        replicas = [ChatLimiter(Rule.parse(rule), None, "", store) for store in stores]
        try:
            return [await replicas[i % 2].check("conv-1", "203.0.113.9") is None for i in range(5)]
        finally:
            for store in stores:
                await store.aclose()

    # three messages pass, whichever replica takes them; the fourth and fifth are limited on both
    assert asyncio.run(scenario()) == [True, True, True, False, False]


def test_an_unreachable_redis_lets_chat_through() -> None:
    async def scenario() -> float:
        store = RedisBuckets("redis://127.0.0.1:1/0")
        try:
            return await store.take("k", Rule(per_second=0.01, burst=1))
        finally:
            await store.aclose()

    assert asyncio.run(scenario()) == 0.0
