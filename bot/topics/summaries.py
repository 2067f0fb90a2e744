"""What the console shows per topic (:func:`topic_summaries`): name, size, messages per day, five
representatives, today's intents, and containment, escalation and average rating of its conversations,
computed with the analytics definitions (``bot.analytics.metrics``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.analytics import metrics
from bot.clock import utcnow
from bot.handoff.tables import Ticket
from bot.rasa_events import RasaEvent, read_events
from bot.topics.assign import latest_run
from bot.topics.messages import check_scope
from bot.topics.tables import Topic, TopicMember

CHUNK = 500


@dataclass(frozen=True)
class TopicSummary:
    topic_id: int
    name: str
    words: tuple[str, ...]
    size: int
    per_day: tuple[tuple[date, int], ...]  # (UTC day, messages), oldest first
    representatives: tuple[str, ...]
    intents_today: Counter[str]
    conversations: int
    containment_rate: float | None  # share of its conversations not handed to a person
    escalation_rate: float | None   # share handed to a person
    average_rating: float | None    # of the rated tickets of its conversations (1-5)


def _events(tracker_url: str, conversations: list[str]) -> dict[str, list[RasaEvent]]:
    found: dict[str, list[RasaEvent]] = defaultdict(list)
    for i in range(0, len(conversations), CHUNK):
        for event in read_events(tracker_url, types=("user", "action"), sender_ids=conversations[i:i + CHUNK]):
            found[event.sender_id].append(event)
    return found


def _ratings(session: Session, conversations: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for i in range(0, len(conversations), CHUNK):
        rows = session.execute(select(Ticket.conversation_id, Ticket.rating)
                               .where(Ticket.conversation_id.in_(conversations[i:i + CHUNK]),
                                      Ticket.rating.is_not(None)))
        for conversation, rating in rows:
            if rating is not None and 1 <= rating <= 5:
                found[conversation].append(int(rating))
    return found


def topic_summaries(session: Session, tracker_url: str, scope: str, today: date | None = None) -> list[TopicSummary]:
    """The latest run's topics of ``scope``, largest first (empty before the first recluster)."""
    check_scope(scope)
    run = latest_run(session, scope)
    if run is None:
        return []
    today = today or utcnow().date()
    topics = list(session.scalars(select(Topic).where(Topic.run_id == run.id).order_by(Topic.size.desc(), Topic.id)))
    members: dict[int, list[TopicMember]] = defaultdict(list)
    for member in session.scalars(select(TopicMember).where(TopicMember.topic_id.in_([t.id for t in topics]))):
        members[member.topic_id].append(member)
    every = sorted({m.conversation_id for rows in members.values() for m in rows})
    events = _events(tracker_url, every)
    ratings = _ratings(session, every)
    out = []
    for topic in topics:
        rows = members[topic.id]
        conversations = sorted({m.conversation_id for m in rows})
        topic_events = [e for c in conversations for e in events.get(c, [])]
        contained = metrics.containment(topic_events)
        escalated = metrics.escalation(topic_events, [])
        scores = [r for c in conversations for r in ratings.get(c, [])]
        per_day = Counter(m.day for m in rows)
        out.append(TopicSummary(
            topic_id=topic.id, name=topic.name, words=tuple(topic.words), size=len(rows),
            per_day=tuple(sorted(per_day.items())), representatives=tuple(topic.representatives),
            intents_today=Counter(m.intent for m in rows if m.day == today), conversations=len(conversations),
            containment_rate=contained["rate"], escalation_rate=escalated["rate"],
            average_rating=round(sum(scores) / len(scores), 2) if scores else None))
    return out
