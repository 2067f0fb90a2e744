"""Rate limits on chat: token buckets per conversation and per client address.

A :class:`Rule` is "``rate`` messages per ``period`` with bursts of ``burst``" (``"20/min burst 10"``).
Buckets live in a :class:`BucketStore`; :class:`MemoryBuckets` keeps them in this process. A shared
store (e.g. Redis, for several gateway replicas) only needs to implement ``take``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
           "h": 3600.0, "hour": 3600.0}
_RULE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*(?:,?\s*burst\s*=?\s*(\d+))?\s*$", re.IGNORECASE)
log = logging.getLogger("bot.conversation.rate_limits")
OFF = frozenset({"", "0", "off", "none", "unlimited"})


@dataclass(frozen=True)
class Rule:
    """``rate`` tokens per second refill a bucket holding at most ``burst`` tokens."""

    per_second: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> Rule | None:
        """``"20/min burst 10"``, ``"120/minute"``, ``"2/s burst 5"``; ``"off"`` (or empty, 0): no limit.

        Without a burst the bucket holds one period's worth of messages.
        """
        if text.strip().lower() in OFF:
            return None
        match = _RULE.match(text)
        period = PERIODS.get(match.group(2).lower()) if match else None
        if match is None or period is None:
            raise ValueError(f"rate limit {text!r}: expected e.g. '20/min burst 10', '2/s' or 'off'")
        count = float(match.group(1))
        burst = int(match.group(3)) if match.group(3) else max(1, math.ceil(count))
        if count <= 0 or burst < 1:
            raise ValueError(f"rate limit {text!r}: the rate and the burst must be positive")
        return cls(per_second=count / period, burst=burst)


class BucketStore(Protocol):
    async def take(self, key: str, rule: Rule) -> float:
        """Take one token from ``key``'s bucket: 0.0 when allowed, else the seconds until one is available."""


class MemoryBuckets:
    """Token buckets in this process (one gateway). Idle, refilled buckets are dropped when it grows."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] | None = None) -> None:
        self.max_keys = max_keys
        self._clock = clock or time.monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = asyncio.Lock()

    def _prune(self, now: float, rule: Rule) -> None:
        full_after = rule.burst / rule.per_second
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        if len(self._buckets) >= self.max_keys:  # everything is busy: start over rather than grow forever
            self._buckets.clear()

    def take_now(self, key: str, rule: Rule) -> float:
        now = self._clock()
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now, rule)
            tokens = float(rule.burst)
        else:
            tokens = min(float(rule.burst), found[0] + (now - found[1]) * rule.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rule.per_second

    async def take(self, key: str, rule: Rule) -> float:
        return self.take_now(key, rule)


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"rate limit exemption {part!r} is not an address or network") from exc
    return tuple(out)


@dataclass(frozen=True)
class Limited:
    """A refused message: which limit, and when to try again."""

    scope: str  # "conversation" | "address"
    retry_after_s: float

    @property
    def retry_after(self) -> int:
        """Whole seconds for the ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(self.retry_after_s))

    @property
    def text(self) -> str:
        return (f"You're sending messages faster than I can keep up with. Please wait {self.retry_after} "
                f"second{'s' if self.retry_after != 1 else ''} and try again.")


class ChatLimiter:
    """The chat's two limits: per conversation, and per client address (exempt addresses pass)."""

    def __init__(self, per_conversation: Rule | None, per_address: Rule | None, exempt: str = "",
                 store: BucketStore | None = None) -> None:
        self.per_conversation = per_conversation
        self.per_address = per_address
        self.exempt = _networks(exempt)
        self.store: BucketStore = store or MemoryBuckets()

    @classmethod
    def from_settings(cls, settings: object, store: BucketStore | None = None) -> ChatLimiter:
        return cls(Rule.parse(getattr(settings, "rate_limit_per_conversation", "off")),
                   Rule.parse(getattr(settings, "rate_limit_per_address", "off")),
                   getattr(settings, "rate_limit_exempt", ""), store)

    def is_exempt(self, address: str | None) -> bool:
        if not address or not self.exempt:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.exempt)

    async def check(self, conversation_id: str, address: str | None) -> Limited | None:
        """None when the message may go on; else what refused it."""
        if self.is_exempt(address):
            return None
        if self.per_address is not None and address:
            wait = await self.store.take(f"addr:{address}", self.per_address)
            if wait > 0:
                return Limited("address", wait)
        if self.per_conversation is not None:
            wait = await self.store.take(f"conv:{conversation_id}", self.per_conversation)
            if wait > 0:
                return Limited("conversation", wait)
        return None


# One atomic token-bucket step in Redis: KEYS[1] the bucket; ARGV rate per second, burst, now (seconds).
_TAKE = """
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(state[1])
if tokens == nil then tokens = burst else
  tokens = math.min(burst, tokens + (now - tonumber(state[2])) * rate) end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisBuckets:
    """The same buckets in Redis (``REDIS_URL``), so the limits hold across gateway replicas. Redis's own
    clock is used (``TIME``), so replicas whose clocks differ still agree. If Redis cannot be reached the
    message is let through (the limit is a protection, not a gate the chat depends on) and logged."""

    def __init__(self, url: str, prefix: str = "shop:rl:") -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis = aioredis.from_url(url)
        self._script = self._redis.register_script(_TAKE)

    async def take(self, key: str, rule: Rule) -> float:
        from redis.exceptions import RedisError

        try:
            seconds, micros = await self._redis.time()
            wait = await self._script(keys=[self.prefix + key],
                                      args=[rule.per_second, rule.burst, seconds + micros / 1e6])
        except (OSError, RedisError):
            log.warning("rate limit: Redis unavailable, message let through", exc_info=True)
            return 0.0
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def aclose(self) -> None:
        await self._redis.aclose()
