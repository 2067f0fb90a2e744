"""Retention: conversations, inbox messages and resolved tickets older than ``SHOP_RETENTION_DAYS`` go.

A conversation is deleted from Rasa's tracker store when its newest event is older than the cut-off (so a
conversation still going on is never cut in half). ``nlu_messages`` older than the cut-off are deleted unless
a lead labelled them: labelled messages are training and test examples (``data/nlu/lead_labels.yml`` and the
test set are generated from them) and stay until a lead removes them. Resolved tickets whose
``resolved_at`` is older are deleted with their messages and helpdesk deliveries. Tickets still queued or
claimed stay. Every run is logged in ``privacy_log``. 0 days keeps everything.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.db import rows_affected
from bot.handoff.tables import RESOLVED, HelpdeskOutbox, Ticket, TicketMessage
from bot.held_messages import queue as held
from bot.privacy.erase import delete_tracker_conversations
from bot.privacy.tables import RETENTION, record
from bot.rasa_events import EVENTS, has_events, tracker_engine
from bot.training.tables import LABELLED, OUT_OF_SCOPE, NluLabelEvent, NluMessage


@dataclass(frozen=True)
class RetentionResult:
    cutoff: datetime | None  # None: retention is off (0 days)
    counts: dict[str, int]


def old_conversations(tracker_url: str, cutoff: datetime) -> list[str]:
    """Conversations whose newest event is older than ``cutoff`` (naive UTC)."""
    if not has_events(tracker_url):
        return []
    seconds = calendar.timegm(cutoff.timetuple()) + cutoff.microsecond / 1e6
    query = (select(EVENTS.c.sender_id).group_by(EVENTS.c.sender_id)
             .having(func.max(EVENTS.c.timestamp) < seconds))
    with tracker_engine(tracker_url).connect() as conn:
        return [row[0] for row in conn.execute(query)]


def apply_retention(session: Session, tracker_url: str, days: int, *, actor: str | None = None,
                    now: datetime | None = None) -> RetentionResult:
    """Delete what is older than ``days`` (see the module's docstring); 0 days deletes nothing."""
    if days < 0:
        raise ValueError("retention days must be 0 (keep forever) or more")
    now = now or utcnow()
    if days == 0:
        return RetentionResult(None, {})
    cutoff = now - timedelta(days=days)
    counts: dict[str, int] = {}
    old_ids = list(session.scalars(select(NluMessage.id).where(
        NluMessage.timestamp < cutoff, NluMessage.status.not_in((LABELLED, OUT_OF_SCOPE)))))
    counts["nlu_messages"] = _delete_ids(session, old_ids)
    tickets = list(session.scalars(select(Ticket.id).where(Ticket.status == RESOLVED, Ticket.resolved_at < cutoff)))
    counts["tickets"] = len(tickets)
    counts["ticket_messages"] = counts["helpdesk_outbox"] = 0
    for start in range(0, len(tickets), 500):
        chunk = tickets[start:start + 500]
        counts["ticket_messages"] += rows_affected(session.execute(
            delete(TicketMessage).where(TicketMessage.ticket_id.in_(chunk))))
        counts["helpdesk_outbox"] += rows_affected(session.execute(
            delete(HelpdeskOutbox).where(HelpdeskOutbox.ticket_id.in_(chunk))))
        session.execute(delete(Ticket).where(Ticket.id.in_(chunk)))
    counts["held_messages"] = held.delete_older_than(session, cutoff)
    conversations = old_conversations(tracker_url, cutoff)
    counts["conversations"] = len(conversations)
    counts["tracker_events"] = delete_tracker_conversations(tracker_url, conversations)
    record(session, RETENTION, counts | {"days": days}, at=now, actor=actor)
    return RetentionResult(cutoff, counts)


def _delete_ids(session: Session, ids: list[int]) -> int:
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        session.execute(delete(NluLabelEvent).where(NluLabelEvent.message_id.in_(chunk)))
        session.execute(delete(NluMessage).where(NluMessage.id.in_(chunk)))
    return len(ids)
