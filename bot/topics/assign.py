"""Incremental assignment: messages that arrived since the scope's last run (or last assignment) join the
nearest stored topic when they lie within its radius (the 95th percentile of its members' distances to
the centre); the others stay unassigned until the next full recluster. Topic centres do not move."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.rasa_events import last_event_id
from bot.topics.clustering import NOISE, nearest_within
from bot.topics.embedding import embed
from bot.topics.messages import ShopperMessage, check_scope, shopper_messages
from bot.topics.recluster import member_row
from bot.topics.tables import Topic, TopicRun


class NoRun(LookupError):
    """The scope was never clustered: run ``python -m bot topics recluster`` first."""


@dataclass(frozen=True)
class AssignResult:
    scope: str
    messages: int
    assigned: int

    @property
    def unassigned(self) -> int:
        return self.messages - self.assigned


def latest_run(session: Session, scope: str) -> TopicRun | None:
    return session.scalars(select(TopicRun).where(TopicRun.scope == scope)
                           .order_by(TopicRun.created_at.desc(), TopicRun.id.desc()).limit(1)).first()


def nearest_topics(vectors: np.ndarray, topics: list[Topic]) -> list[tuple[Topic | None, float]]:
    """Per row its nearest topic and the cosine distance, or ``(None, distance)`` beyond that topic's radius."""
    if not topics or len(vectors) == 0:
        return [(None, 1.0) for _ in range(len(vectors))]
    best, distances = nearest_within(vectors, np.asarray([t.centroid for t in topics], dtype=np.float32),
                                     np.asarray([t.radius for t in topics], dtype=np.float64))
    return [(topics[int(column)] if column != NOISE else None, float(d))
            for column, d in zip(best, distances, strict=True)]


def assign_new(session: Session, tracker_url: str, scope: str, threshold: float) -> AssignResult:
    """Join new messages of ``scope`` to its latest run's topics (in the caller's transaction)."""
    check_scope(scope)
    run = latest_run(session, scope)
    if run is None:
        raise NoRun(f"no topics for scope {scope!r} yet: run `python -m bot topics recluster --scope {scope}`")
    cursor = last_event_id(tracker_url)
    messages: list[ShopperMessage] = [m for m in shopper_messages(tracker_url, scope, threshold,
                                                                  after_id=run.last_event_id)
                                      if m.event_id <= cursor]
    topics = list(session.scalars(select(Topic).where(Topic.run_id == run.id)))
    assigned = 0
    for message, (topic, distance) in zip(messages, nearest_topics(embed([m.text for m in messages]), topics),
                                          strict=True):
        if topic is not None:
            session.add(member_row(topic.id, message, distance, True))
            topic.size += 1
            assigned += 1
    run.last_event_id = max(run.last_event_id, cursor)
    session.flush()
    return AssignResult(scope=scope, messages=len(messages), assigned=assigned)
