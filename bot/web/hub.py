"""In-process publish/subscribe for live events (agent queue, ticket conversations, shopper widgets).

One gateway process: subscribers are asyncio queues, ``publish`` is a non-blocking fan-out. A
subscriber that falls ``maxsize`` events behind is dropped (its iterator ends) instead of slowing
everyone down or growing without bound; its socket then reloads the state. Issue 7 swaps this for
Redis pub/sub behind the same interface so several gateway replicas share events.

Topics used by the gateway: ``queue`` (ticket opened/updated/resolved, for every agent),
``ticket:{id}`` (messages and changes of one ticket, for the agents watching it) and
``conversation:{id}`` (what an agent says to a shopper, for that conversation's widget sockets).
All calls happen on the event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

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
