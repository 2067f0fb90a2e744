"""Tickets: open (one per conversation), queue, claim, transfer, messages, resolve, rate; agent presence.

Every function takes a SQLAlchemy ``Session`` and commits nothing: callers wrap them in
``bot.db.session_scope()``. State changes are single ``UPDATE ... WHERE`` statements on the
expected state, so two agents clicking "claim" at once get one winner and one :class:`AlreadyClaimed`,
on SQLite and on PostgreSQL alike. :func:`claim` should be the first write of its transaction.

Opening a ticket serialises on the conversation (PostgreSQL: a transaction-scoped advisory lock;
SQLite: the database write lock, taken before looking), and a partial unique index on
``conversation_id`` for tickets that are not resolved backs it up.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.config import get_settings
from bot.db import rows_affected
from bot.handoff.context import iso
from bot.handoff.priority import sort_key, waited_minutes
from bot.handoff.tables import (
    CLAIMED,
    MESSAGE_ROLES,
    NOTE,
    QUEUED,
    RESOLVED,
    SHOPPER,
    SYSTEM,
    AgentPresence,
    Ticket,
    TicketMessage,
)

MAX_MESSAGE = 4000
EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
RECENT_CLAIMS = 20  # claims the wait estimate learns from
RECENT_CLAIM_DAYS = 7
MIN_CLAIM_SAMPLES = 3



# --------------------------------------------------------------------------- errors


class TicketError(ValueError):
    """A ticket operation that is not allowed in the ticket's state."""


class TicketNotFound(TicketError, LookupError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"no ticket {ticket_id}")
        self.ticket_id = ticket_id


class AlreadyClaimed(TicketError):
    def __init__(self, ticket_id: int, assignee_id: int | None) -> None:
        super().__init__(f"ticket {ticket_id} is already claimed by another agent")
        self.ticket_id = ticket_id
        self.assignee_id = assignee_id


class NotAssignee(TicketError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket {ticket_id} is not yours")
        self.ticket_id = ticket_id


class TicketClosed(TicketError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket {ticket_id} is already resolved")
        self.ticket_id = ticket_id


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class MessageView:
    id: int
    ticket_id: int
    role: str
    author: str | None
    text: str
    sentiment: float | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ticket_id": self.ticket_id, "role": self.role, "author": self.author,
                "text": self.text, "sentiment": self.sentiment, "created_at": iso(self.created_at)}


@dataclass(frozen=True)
class TicketView:
    """A ticket as the inbox shows it. ``context`` and ``messages`` are filled by :func:`get_view` only."""

    id: int
    conversation_id: str
    customer_id: int | None
    reason: str
    reason_detail: str
    priority: int
    status: str
    assignee_id: int | None
    followup_email: str | None
    created_at: datetime
    claimed_at: datetime | None
    resolved_at: datetime | None
    rating: int | None
    rated_at: datetime | None
    waiting_minutes: float  # since created, until claimed (or now)
    sort_key: float  # the queue's order, descending: priority plus waiting time
    summary: str
    customer_name: str
    segment: str | None
    mood: float | None
    last_message: str  # the shopper's latest words
    context: dict[str, Any] | None = None
    messages: tuple[MessageView, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 UTC with ``Z``."""
        data = {k: getattr(self, k) for k in (
            "id", "conversation_id", "customer_id", "reason", "reason_detail", "priority", "status", "assignee_id",
            "followup_email", "rating", "summary", "customer_name", "segment", "mood", "last_message", "context")}
        for k in ("created_at", "claimed_at", "resolved_at", "rated_at"):
            data[k] = iso(getattr(self, k))
        data["waiting_minutes"] = round(self.waiting_minutes, 1)
        data["sort_key"] = round(self.sort_key, 3)
        data["messages"] = [m.as_dict() for m in self.messages]
        return data


@dataclass(frozen=True)
class WaitEstimate:
    position: int  # 1 = next in line; 0 when the ticket is not waiting
    minutes: int  # expected wait; 0 when not waiting
    agents_online: int
    basis: str  # "recent" (median of recent claim times) or "default" (SHOP_HANDOFF_DEFAULT_WAIT_MINUTES)


def _message_view(m: TicketMessage) -> MessageView:
    return MessageView(m.id, m.ticket_id, m.role, m.author, m.text, m.sentiment, m.created_at)


def _view(ticket: Ticket, now: datetime, last_shopper: str | None = None, full: bool = False) -> TicketView:
    context = ticket.context or {}
    customer = context.get("customer") or {}
    if last_shopper is None:
        last_shopper = next((m.get("text") or "" for m in reversed(context.get("transcript") or [])
                             if m.get("role") == SHOPPER), "")
    until = ticket.claimed_at or (ticket.resolved_at if ticket.status == RESOLVED else None) or now
    minutes_per_point = get_settings().handoff_wait_minutes_per_point
    key = sort_key(ticket.priority, ticket.created_at, now, minutes_per_point) if ticket.status != RESOLVED \
        else float(ticket.priority)
    return TicketView(
        id=ticket.id, conversation_id=ticket.conversation_id, customer_id=ticket.customer_id, reason=ticket.reason,
        reason_detail=ticket.reason_detail, priority=ticket.priority, status=ticket.status,
        assignee_id=ticket.assignee_id, followup_email=ticket.followup_email, created_at=ticket.created_at,
        claimed_at=ticket.claimed_at, resolved_at=ticket.resolved_at, rating=ticket.rating, rated_at=ticket.rated_at,
        waiting_minutes=waited_minutes(ticket.created_at, until), sort_key=key,
        summary=str(context.get("summary") or ""), customer_name=str(customer.get("name") or ""),
        segment=customer.get("segment"), mood=context.get("mood"), last_message=last_shopper,
        context=context if full else None,
        messages=tuple(_message_view(m) for m in ticket.messages) if full else (),
    )


# --------------------------------------------------------------------------- opening


def _lock_conversation(session: Session, conversation_id: str) -> None:
    """Serialise ticket opening for one conversation until the transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"ticket:{conversation_id}".encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif dialect == "sqlite":
        # A write that changes nothing takes SQLite's write lock, so nobody inserts between look and insert.
        session.execute(text("UPDATE tickets SET id = id WHERE 0"))


def open_ticket_for(session: Session, conversation_id: str) -> Ticket | None:
    """The conversation's ticket that is not resolved, if any."""
    return session.scalar(select(Ticket).where(Ticket.conversation_id == conversation_id,
                                               Ticket.status != RESOLVED).limit(1))


def open_ticket(session: Session, *, conversation_id: str, customer_id: int | None, reason: str,
                reason_detail: str = "", context: dict[str, Any] | None = None, priority: int = 0,
                now: datetime | None = None) -> tuple[Ticket, bool]:
    """A new queued ticket, or the conversation's open one as it is: ``(ticket, created)``."""
    if not conversation_id or len(conversation_id) > 128:
        raise ValueError("conversation_id must be 1 to 128 characters")
    if not reason or len(reason) > 40:
        raise ValueError("reason must be 1 to 40 characters")
    _lock_conversation(session, conversation_id)
    existing = open_ticket_for(session, conversation_id)
    if existing is not None:
        return existing, False
    ticket = Ticket(conversation_id=conversation_id, customer_id=customer_id, reason=reason,
                    reason_detail=reason_detail[:2000], priority=int(priority), status=QUEUED,
                    context=context or {}, created_at=now or utcnow())
    session.add(ticket)
    session.flush()
    return ticket, True


def update_context(session: Session, ticket_id: int, context: dict[str, Any], priority: int | None = None) -> Ticket:
    """A newer packet for a ticket that is not resolved (the shopper asked again); priority only goes up."""
    ticket = _get(session, ticket_id)
    if ticket.status == RESOLVED:
        raise TicketClosed(ticket_id)
    ticket.context = context
    if priority is not None and priority > ticket.priority:
        ticket.priority = int(priority)
    session.flush()
    return ticket


# --------------------------------------------------------------------------- reading


def _get(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        raise TicketNotFound(ticket_id)
    return ticket


def _last_shopper_messages(session: Session, ticket_ids: list[int]) -> dict[int, str]:
    if not ticket_ids:
        return {}
    latest = (select(func.max(TicketMessage.id)).where(TicketMessage.ticket_id.in_(ticket_ids),
                                                       TicketMessage.role == SHOPPER)
              .group_by(TicketMessage.ticket_id))
    rows = session.execute(select(TicketMessage.ticket_id, TicketMessage.text).where(TicketMessage.id.in_(latest)))
    return {ticket_id: message for ticket_id, message in rows}


def queue(session: Session, now: datetime | None = None) -> list[TicketView]:
    """Tickets not resolved, most urgent first: priority plus waiting time, then the oldest."""
    now = now or utcnow()
    tickets = list(session.scalars(select(Ticket).where(Ticket.status != RESOLVED)))
    last = _last_shopper_messages(session, [t.id for t in tickets])
    views = [_view(t, now, last.get(t.id)) for t in tickets]
    return sorted(views, key=lambda v: (-v.sort_key, v.created_at, v.id))


def get_view(session: Session, ticket_id: int, now: datetime | None = None) -> TicketView:
    """The ticket with its context packet and messages."""
    ticket = _get(session, ticket_id)
    last = _last_shopper_messages(session, [ticket.id]).get(ticket.id)
    return _view(ticket, now or utcnow(), last, full=True)


# --------------------------------------------------------------------------- agents act


def _why_not(session: Session, ticket_id: int, agent_id: int | None, claiming: bool = False) -> TicketError:
    ticket = _get(session, ticket_id)
    if ticket.status == RESOLVED:
        return TicketClosed(ticket_id)
    if claiming and ticket.status == CLAIMED and ticket.assignee_id != agent_id:
        return AlreadyClaimed(ticket_id, ticket.assignee_id)
    return NotAssignee(ticket_id)


def _system(session: Session, ticket_id: int, words: str, now: datetime) -> None:
    session.add(TicketMessage(ticket_id=ticket_id, role=SYSTEM, text=words, created_at=now))


def claim(session: Session, ticket_id: int, agent_id: int, *, agent_name: str | None = None,
          now: datetime | None = None) -> Ticket:
    """Take a queued ticket. Claiming one you already hold returns it; anyone else's raises AlreadyClaimed."""
    now = now or utcnow()
    done = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status == QUEUED)
                           .values(status=CLAIMED, assignee_id=agent_id, claimed_at=now)
                           .execution_options(synchronize_session=False))
    if rows_affected(done) != 1:
        ticket = _get(session, ticket_id)
        if ticket.status == CLAIMED and ticket.assignee_id == agent_id:
            return ticket
        raise _why_not(session, ticket_id, agent_id, claiming=True)
    if agent_name:
        _system(session, ticket_id, f"{agent_name} joined the conversation", now)
    session.flush()
    return _get(session, ticket_id)


def transfer(session: Session, ticket_id: int, from_agent_id: int | None, to_agent_id: int | None, *,
             force: bool = False, note: str | None = None, now: datetime | None = None) -> Ticket:
    """Hand a ticket you hold to another agent, or back to the queue (``to_agent_id=None``).

    ``force`` (for leads) moves any ticket that is not resolved, queued ones included.
    """
    now = now or utcnow()
    allowed = Ticket.status.in_((QUEUED, CLAIMED)) if force else \
        (Ticket.status == CLAIMED) & (Ticket.assignee_id == from_agent_id)
    values: dict[str, Any] = ({"status": QUEUED, "assignee_id": None, "claimed_at": None} if to_agent_id is None
                              else {"status": CLAIMED, "assignee_id": to_agent_id, "claimed_at": now})
    done = session.execute(update(Ticket).where(Ticket.id == ticket_id, allowed).values(**values)
                           .execution_options(synchronize_session=False))
    if rows_affected(done) != 1:
        raise _why_not(session, ticket_id, from_agent_id)
    words = "Sent back to the queue" if to_agent_id is None else "Transferred to another agent"
    _system(session, ticket_id, words + (f": {note.strip()[:500]}" if note and note.strip() else ""), now)
    session.flush()
    return _get(session, ticket_id)


def add_message(session: Session, ticket_id: int, role: str, text: str, author: str | None = None,
                sentiment: float | None = None, now: datetime | None = None) -> TicketMessage:
    """Record a message. Shopper and agent messages need a ticket that is not resolved."""
    if role not in MESSAGE_ROLES:
        raise ValueError(f"role must be one of {MESSAGE_ROLES}, got {role!r}")
    words = (text or "").strip()
    if not words:
        raise ValueError("a message needs some text")
    if len(words) > MAX_MESSAGE:
        raise ValueError(f"a message can be at most {MAX_MESSAGE} characters")
    ticket = _get(session, ticket_id)
    if ticket.status == RESOLVED and role not in (NOTE, SYSTEM):
        raise TicketClosed(ticket_id)
    message = TicketMessage(ticket_id=ticket_id, role=role, author=(author or None) and author[:120], text=words,
                            sentiment=sentiment, created_at=now or utcnow())
    session.add(message)
    session.flush()
    return message


def resolve(session: Session, ticket_id: int, agent_id: int | None, *, force: bool = False,
            now: datetime | None = None) -> Ticket:
    """Close a ticket you hold (or a queued one, e.g. answered by email); ``force`` (leads): any open one."""
    now = now or utcnow()
    allowed = Ticket.status.in_((QUEUED, CLAIMED)) if force else \
        (Ticket.status == QUEUED) | ((Ticket.status == CLAIMED) & (Ticket.assignee_id == agent_id))
    done = session.execute(update(Ticket).where(Ticket.id == ticket_id, allowed)
                           .values(status=RESOLVED, resolved_at=now,
                                   assignee_id=func.coalesce(Ticket.assignee_id, agent_id))
                           .execution_options(synchronize_session=False))
    if rows_affected(done) != 1:
        raise _why_not(session, ticket_id, agent_id)
    _system(session, ticket_id, "Resolved", now)
    session.flush()
    return _get(session, ticket_id)


# --------------------------------------------------------------------------- the shopper


def rate(session: Session, ticket_id: int, conversation_id: str, rating: int, now: datetime | None = None) -> Ticket:
    """The shopper's 1-5 rating of a resolved ticket: once, and only from that ticket's conversation."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValueError("rating must be a whole number from 1 to 5")
    done = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.conversation_id == conversation_id,
                                                Ticket.status == RESOLVED, Ticket.rating.is_(None))
                           .values(rating=rating, rated_at=now or utcnow())
                           .execution_options(synchronize_session=False))
    if rows_affected(done) != 1:
        ticket = session.get(Ticket, ticket_id, populate_existing=True)
        if ticket is None or ticket.conversation_id != conversation_id:
            raise TicketNotFound(ticket_id)  # the same answer: no probing other conversations' tickets
        if ticket.status != RESOLVED:
            raise TicketError(f"ticket {ticket_id} can be rated once it is resolved")
        raise TicketError(f"ticket {ticket_id} is already rated")
    return _get(session, ticket_id)


def normalise_email(email: str) -> str:
    value = (email or "").strip().strip("<>").strip()
    if len(value) > 254 or not EMAIL.match(value):
        raise ValueError(f"{email!r} is not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def set_followup_email(session: Session, ticket_id: int, email: str) -> Ticket:
    """Where to write to the shopper when nobody could answer live."""
    address = normalise_email(email)
    ticket = _get(session, ticket_id)
    if ticket.status == RESOLVED:
        raise TicketClosed(ticket_id)
    ticket.followup_email = address
    session.flush()
    return ticket


# --------------------------------------------------------------------------- presence and waiting


def touch_presence(session: Session, user_id: int, username: str, now: datetime | None = None) -> None:
    """The agent's inbox is open (called by the gateway every ~20 s while the agent's socket lives)."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    if dialect not in ("postgresql", "sqlite"):
        row = session.get(AgentPresence, user_id)
        if row is None:
            session.add(AgentPresence(user_id=user_id, username=username[:120], last_seen=now))
        else:
            row.username, row.last_seen = username[:120], now
        session.flush()
        return
    statement = insert(AgentPresence).values(user_id=user_id, username=username[:120], last_seen=now)
    session.execute(statement.on_conflict_do_update(index_elements=[AgentPresence.user_id],
                                                    set_={"username": username[:120], "last_seen": now}))


def clear_presence(session: Session, user_id: int) -> None:
    """The agent logged out or closed the inbox."""
    session.execute(delete(AgentPresence).where(AgentPresence.user_id == user_id))


def agents_online(session: Session, now: datetime | None = None) -> int:
    """Agents seen within ``SHOP_HANDOFF_PRESENCE_TIMEOUT_S`` of ``now`` (either side: clocks of two
    processes may differ a little, and a sighting far in the future of ``now`` says nothing about it)."""
    now = now or utcnow()
    window = timedelta(seconds=get_settings().handoff_presence_timeout_s)
    return int(session.scalar(select(func.count()).select_from(AgentPresence).where(
        AgentPresence.last_seen >= now - window, AgentPresence.last_seen <= now + window)) or 0)


def wait_estimate(session: Session, ticket: Ticket, now: datetime | None = None) -> WaitEstimate:
    """Position in the queue and the expected wait.

    Per position, the wait is the median time from opening to claim of the last 20 tickets claimed
    in the past week (at least 3 of them), else ``SHOP_HANDOFF_DEFAULT_WAIT_MINUTES``; the expected
    wait is that times the position, shared among the agents online.
    """
    now = now or utcnow()
    online = agents_online(session, now)
    if ticket.status != QUEUED:
        return WaitEstimate(0, 0, online, "recent")
    waiting = [v for v in queue(session, now) if v.status == QUEUED]
    position = next((i + 1 for i, v in enumerate(waiting) if v.id == ticket.id), len(waiting) + 1)
    claims = session.execute(
        select(Ticket.created_at, Ticket.claimed_at).where(
            Ticket.claimed_at.is_not(None), Ticket.claimed_at >= now - timedelta(days=RECENT_CLAIM_DAYS))
        .order_by(Ticket.claimed_at.desc()).limit(RECENT_CLAIMS)).all()
    samples = [waited_minutes(created, claimed) for created, claimed in claims if claimed is not None]
    if len(samples) >= MIN_CLAIM_SAMPLES:
        per_position, basis = statistics.median(samples), "recent"
    else:
        per_position, basis = get_settings().handoff_default_wait_minutes, "default"
    minutes = max(1, round(per_position * position / max(1, online)))
    return WaitEstimate(position, minutes, online, basis)
