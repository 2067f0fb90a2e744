"""In-process publish/subscribe for live events (agent queue, ticket conversations, shopper widgets).

One gateway process: subscribers are asyncio queues, ``publish`` is a non-blocking fan-out. A
subscriber that falls ``maxsize`` events behind is dropped (its iterator ends) instead of slowing
everyone down or growing without bound; its socket then reloads the state. Issue 7 swaps this for
Redis pub/sub behind the same interface (:class:`RedisHub`) so several gateway replicas share events.

Topics used by the gateway: ``queue`` (ticket opened/updated/resolved, for every agent),
``ticket:{id}`` (messages and changes of one ticket, for the agents watching it) and
``conversation:{id}`` (what an agent says to a shopper, for that conversation's widget sockets).
All calls happen on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("bot.web.hub")
Event = dict[str, Any]
_CLOSED: Event = {"type": "__closed__"}


def queue_topic() -> str:
    return "queue"


def ticket_topic(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


def conversation_topic(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


class Subscription:
    """Events of one or more topics, in publishing order, as an async iterator; close() to leave."""

    def __init__(self, hub: Hub, topics: tuple[str, ...], maxsize: int) -> None:
        self._hub = hub
        self.topics = topics
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize + 1)  # +1: room for the close marker
        self._maxsize = maxsize
        self.closed = False
        self.overflowed = False

    def _offer(self, event: Event) -> bool:
        if self.closed:
            return False
        if self._queue.qsize() >= self._maxsize:
            self.overflowed = True
            self.close()
            return False
        self._queue.put_nowait(event)
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._hub._remove(self)
        self._queue.put_nowait(_CLOSED)

    async def get(self) -> Event | None:
        """The next event, or None once closed."""
        event = await self._queue.get()
        return None if event is _CLOSED else event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Hub:
    def __init__(self, maxsize: int = 500) -> None:
        self.maxsize = maxsize
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, *topics: str, maxsize: int | None = None) -> Subscription:
        if not topics:
            raise ValueError("subscribe to at least one topic")
        subscription = Subscription(self, tuple(topics), maxsize or self.maxsize)
        for topic in topics:
            self._subscribers[topic].add(subscription)
        return subscription

    def publish(self, topic: str, event: Event) -> int:
        """Hand ``event`` to every subscriber of ``topic``; returns how many got it."""
        return sum(s._offer(event) for s in list(self._subscribers.get(topic, ())))

    def subscribers(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def _remove(self, subscription: Subscription) -> None:
        for topic in subscription.topics:
            members = self._subscribers.get(topic)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self._subscribers[topic]


class RedisHub(Hub):
    """The same hub, shared by every gateway replica through Redis pub/sub (``REDIS_URL``).

    ``publish`` delivers to this process's subscribers at once (so the return value still counts the
    local ones) and queues the event for Redis; one sender task publishes in order, and one listener
    hands the other replicas' events to local subscribers. Events carry the publishing process's id so
    a replica never delivers its own event twice.
    """

    def __init__(self, url: str, prefix: str = "shop:hub:", maxsize: int = 500) -> None:
        super().__init__(maxsize)
        import redis.asyncio as aioredis

        self.prefix = prefix
        self.origin = uuid.uuid4().hex
        self._redis = aioredis.from_url(url)
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="hub-redis-listen"),
                       asyncio.create_task(self._send(), name="hub-redis-send")]
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    def publish(self, topic: str, event: Event) -> int:
        count = super().publish(topic, event)
        self._outbox.put_nowait((topic, json.dumps({"origin": self.origin, "event": event})))
        return count

    async def _send(self) -> None:
        while True:
            topic, payload = await self._outbox.get()
            for attempt in range(5):
                try:
                    await self._redis.publish(self.prefix + topic, payload)
                    break
                except (OSError, RedisError):
                    log.warning("hub: publishing to Redis failed (attempt %s)", attempt + 1, exc_info=True)
                    await asyncio.sleep(0.2 * 2 ** attempt)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.psubscribe(self.prefix + "*")
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    data = json.loads(message["data"])
                    if data.get("origin") == self.origin:
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                    Hub.publish(self, channel.removeprefix(self.prefix), data["event"])
            except asyncio.CancelledError:
                raise
            except (OSError, RedisError, ValueError):
                log.warning("hub: Redis subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._redis.aclose()
