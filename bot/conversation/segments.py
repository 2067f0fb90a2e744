"""The CRM segment of signed-in customers, cached for a minute (it changes with orders, not per message)."""

from __future__ import annotations

import time

SEGMENT_TTL_S = 60.0


class SegmentCache:
    """Segments by customer id, each kept ``ttl_s`` seconds; at most ``max_entries`` of them."""

    def __init__(self, ttl_s: float = SEGMENT_TTL_S, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[int, tuple[float, str | None]] = {}

    def get(self, customer_id: int) -> tuple[bool, str | None]:
        """``(known, segment)``: ``known`` is False when nothing fresh is cached (``None`` is a known segment)."""
        found = self._entries.get(customer_id)
        if found is None or found[0] < time.monotonic():
            return False, None
        return True, found[1]

    def put(self, customer_id: int, segment: str | None) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[customer_id] = (time.monotonic() + self.ttl_s, segment)
