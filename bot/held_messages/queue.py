"""The held-message queue: what the gateway keeps when Rasa cannot be reached or does not answer in time,
in arrival order.

A conversation with held messages sends every new message to the back of its queue, so the shopper's
messages reach Rasa in the order they were sent. One replica at a time replays a conversation: it claims
the conversation's rows for a lease, and gives way when an earlier row is someone else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.db import rows_affected
from bot.held_messages.tables import HeldMessage


@dataclass(frozen=True)
class Held:
    id: int
    conversation_id: str
    text: str
    metadata: dict[str, Any]
    attempts: int


def hold(session: Session, conversation_id: str, text: str, metadata: dict[str, Any],
         now: datetime | None = None) -> int:
    row = HeldMessage(conversation_id=conversation_id, text=text, message_metadata=metadata,
                      created_at=now or utcnow(), attempts=0)
    session.add(row)
    session.flush()
    return row.id


def has_held(session: Session, conversation_id: str) -> bool:
    return bool(session.scalar(select(exists().where(HeldMessage.conversation_id == conversation_id))))


def due_conversations(session: Session, now: datetime | None = None, limit: int = 100) -> list[str]:
    """Conversations with unclaimed (or expired) rows, the longest waiting first."""
    now = now or utcnow()
    free = or_(HeldMessage.claimed_until.is_(None), HeldMessage.claimed_until < now)
    rows = session.execute(select(HeldMessage.conversation_id, func.min(HeldMessage.id).label("first"))
                           .where(free).group_by(HeldMessage.conversation_id).order_by("first").limit(limit))
    return [r.conversation_id for r in rows]


def claim(session: Session, conversation_id: str, owner: str, lease_s: float = 60.0,
          now: datetime | None = None) -> list[Held]:
    """This conversation's held rows, oldest first, claimed by ``owner`` for ``lease_s``; ``[]`` when another
    replica holds an earlier row (it replays them; taking later ones would reorder the conversation)."""
    now = now or utcnow()
    session.execute(update(HeldMessage)
                    .where(HeldMessage.conversation_id == conversation_id,
                           or_(HeldMessage.claimed_until.is_(None), HeldMessage.claimed_until < now,
                               HeldMessage.claimed_by == owner))
                    .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease_s)))
    session.flush()
    rows = list(session.scalars(select(HeldMessage).where(HeldMessage.conversation_id == conversation_id)
                                .order_by(HeldMessage.id)))
    first_foreign = next((i for i, r in enumerate(rows) if r.claimed_by != owner), len(rows))
    if first_foreign == 0:
        release(session, conversation_id, owner)
        return []
    return [Held(r.id, r.conversation_id, r.text, dict(r.message_metadata or {}), r.attempts)
            for r in rows[:first_foreign]]


def release(session: Session, conversation_id: str, owner: str, error: str | None = None) -> None:
    """Give the conversation's rows back (Rasa is still down); counts an attempt when ``error`` is given."""
    values: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
    if error is not None:
        values |= {"attempts": HeldMessage.attempts + 1, "last_error": error[:1000]}
    session.execute(update(HeldMessage).where(HeldMessage.conversation_id == conversation_id,
                                              HeldMessage.claimed_by == owner).values(**values))


def done(session: Session, held_id: int) -> None:
    """Rasa has taken the message: it is in the tracker now, so the copy here goes."""
    session.execute(delete(HeldMessage).where(HeldMessage.id == held_id))


def delete_conversations(session: Session, conversations: list[str]) -> int:
    count = 0
    for start in range(0, len(conversations), 500):
        count += rows_affected(session.execute(delete(HeldMessage).where(
            HeldMessage.conversation_id.in_(conversations[start:start + 500]))))
    return count


def delete_older_than(session: Session, cutoff: datetime) -> int:
    return rows_affected(session.execute(delete(HeldMessage).where(HeldMessage.created_at < cutoff)))
