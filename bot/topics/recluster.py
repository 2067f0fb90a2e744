"""A full recluster of one scope: read every shopper message, embed, cluster, name, store as a new run (the
scope's earlier runs are deleted with their topics and members)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.rasa_events import last_event_id
from bot.topics.clustering import ClusterParams, cluster, nearest
from bot.topics.embedding import embed
from bot.topics.messages import ShopperMessage, check_scope, shopper_messages
from bot.topics.naming import distinctive_words, name_from
from bot.topics.tables import Topic, TopicMember, TopicRun

REPRESENTATIVES = 5
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReclusterResult:
    run_id: int
    scope: str
    messages: int
    topics: int
    noise: int


def _quiet(_: str) -> None:
    return None


def member_row(topic_id: int, message: ShopperMessage, distance: float, incremental: bool) -> TopicMember:
    return TopicMember(topic_id=topic_id, conversation_id=message.conversation_id[:255], event_id=message.event_id,
                       timestamp=message.timestamp, day=message.day, text=message.text, intent=message.intent,
                       confidence=message.confidence, distance=round(float(distance), 6), incremental=incremental)


def recluster(session: Session, tracker_url: str, scope: str, threshold: float, *,
              params: ClusterParams | None = None, progress: Progress = _quiet) -> ReclusterResult:
    """Cluster every message of ``scope`` and replace the scope's stored topics (in the caller's transaction)."""
    check_scope(scope)
    cursor = last_event_id(tracker_url)
    progress("reading shopper messages")
    messages = [m for m in shopper_messages(tracker_url, scope, threshold) if m.event_id <= cursor]
    progress(f"embedding {len(messages)} messages")
    vectors = embed([m.text for m in messages])
    progress("clustering")
    result = cluster(vectors, params)
    progress(f"naming {result.topics} topics")
    texts = [m.text for m in messages]
    words = distinctive_words(texts, result.labels)
    progress("storing")
    for old in session.scalars(select(TopicRun.id).where(TopicRun.scope == scope)).all():
        topic_ids = select(Topic.id).where(Topic.run_id == old)
        session.execute(delete(TopicMember).where(TopicMember.topic_id.in_(topic_ids)))
        session.execute(delete(Topic).where(Topic.run_id == old))
        session.execute(delete(TopicRun).where(TopicRun.id == old))
    run = TopicRun(scope=scope, method=result.method, params=result.params, created_at=utcnow(),
                   message_count=len(messages), noise_count=result.noise, last_event_id=cursor)
    session.add(run)
    session.flush()
    for t in range(result.topics):
        index = np.flatnonzero(result.labels == t)
        members = vectors[index]
        centre = result.centroids[t]
        representatives = [texts[index[i]] for i in nearest(members, centre, REPRESENTATIVES)]
        topic = Topic(run_id=run.id, scope=scope, name=name_from(words.get(t, []))[:200], words=words.get(t, []),
                      size=len(index), centroid=[round(float(v), 6) for v in centre],
                      radius=float(result.radii[t]), representatives=representatives)
        session.add(topic)
        session.flush()
        distances = 1.0 - members @ centre
        session.add_all(member_row(topic.id, messages[i], d, False) for i, d in zip(index, distances, strict=True))
    session.flush()
    return ReclusterResult(run_id=run.id, scope=scope, messages=len(messages), topics=result.topics,
                           noise=result.noise)
