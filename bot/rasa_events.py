"""Read-only access to Rasa's stored events (the ``events`` table of its SQL tracker store).

Rasa writes one row per event: ``id`` (increasing), ``sender_id`` (the conversation), ``type_name``
(``user``, ``bot``, ``action``, ``slot``, ``session_started``, ``pause``, ``resume``...), ``timestamp``
(UNIX seconds), ``intent_name``, ``action_name`` and ``data`` (the event as JSON). The lead console and
analytics read these rows instead of logging a second copy of the conversation themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    inspect,
    select,
)

from bot.db import make_engine

_metadata = MetaData()
EVENTS = Table(
    "events", _metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)


@dataclass(frozen=True)
class RasaEvent:
    id: int
    sender_id: str
    type_name: str
    timestamp: float
    intent_name: str | None
    action_name: str | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def parse_data(self) -> dict[str, Any]:
        return self.data.get("parse_data") or {}

    @property
    def text(self) -> str:
        return str(self.data.get("text") or "")


@lru_cache(maxsize=8)
def tracker_engine(url: str) -> Engine:
    return make_engine(url) if url.startswith("sqlite") else create_engine(url, pool_pre_ping=True, pool_size=5)


def has_events(url: str) -> bool:
    """False until Rasa has created its table (a fresh install before the first conversation)."""
    return inspect(tracker_engine(url)).has_table("events")


def create_events_table(url: str) -> None:
    """The table as Rasa creates it; for tests and tools that write fixtures in Rasa's format."""
    EVENTS.create(tracker_engine(url), checkfirst=True)


def read_events(url: str, *, after_id: int = 0, since: float | None = None, until: float | None = None,
                types: tuple[str, ...] | None = None, sender_ids: list[str] | None = None,
                batch: int = 2000) -> Iterator[RasaEvent]:
    """Events in ``id`` order (the order Rasa stored them), filtered; streamed in batches."""
    if not has_events(url):
        return
    engine = tracker_engine(url)
    last = after_id
    while True:
        query = select(EVENTS).where(EVENTS.c.id > last).order_by(EVENTS.c.id).limit(batch)
        if since is not None:
            query = query.where(EVENTS.c.timestamp >= since)
        if until is not None:
            query = query.where(EVENTS.c.timestamp < until)
        if types:
            query = query.where(EVENTS.c.type_name.in_(types))
        if sender_ids is not None:
            query = query.where(EVENTS.c.sender_id.in_(sender_ids))
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            try:
                data = json.loads(row.data) if row.data else {}
            except ValueError:
                data = {}
            yield RasaEvent(id=row.id, sender_id=row.sender_id, type_name=row.type_name,
                            timestamp=float(row.timestamp or 0.0), intent_name=row.intent_name,
                            action_name=row.action_name, data=data if isinstance(data, dict) else {})
        if len(rows) < batch:
            return
        last = rows[-1].id


def last_event_id(url: str) -> int:
    if not has_events(url):
        return 0
    with tracker_engine(url).connect() as conn:
        return int(conn.execute(select(func.max(EVENTS.c.id))).scalar() or 0)
