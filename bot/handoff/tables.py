"""Handoff tables: tickets, their messages, the helpdesk outbox, and which agents are online.

Times are naive UTC. ``tickets.assignee_id`` holds a ``users.id`` but declares no foreign key, so
this migration (0005) does not depend on the users table (0006).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base

# Ticket statuses
QUEUED = "queued"
CLAIMED = "claimed"
RESOLVED = "resolved"
TICKET_STATUSES = (QUEUED, CLAIMED, RESOLVED)

# Who wrote a ticket message: the shopper, an agent (to the shopper), an agent's internal note, the system.
SHOPPER = "shopper"
AGENT = "agent"
NOTE = "note"
SYSTEM = "system"
MESSAGE_ROLES = (SHOPPER, AGENT, NOTE, SYSTEM)

# Outbox statuses and webhook kinds
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
OUTBOX_STATUSES = (PENDING, DELIVERED, DEAD)
WEBHOOK_KINDS = ("generic", "slack", "zendesk")

NOT_RESOLVED = text("status != 'resolved'")


class Ticket(Base):
    """A shopper waiting for (or talking to) a person. At most one per conversation is not resolved."""

    __tablename__ = "tickets"
    __table_args__ = (
        # One open ticket per conversation, enforced by the database too (partial index on both).
        Index("uq_tickets_open_conversation", "conversation_id", unique=True,
              sqlite_where=NOT_RESOLVED, postgresql_where=NOT_RESOLVED),
        Index("ix_tickets_status_priority", "status", "priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), nullable=True)
    reason: Mapped[str] = mapped_column(String(40))
    reason_detail: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher = sooner
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    assignee_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # users.id
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the context packet
    followup_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1..5
    rated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="TicketMessage.id")


class TicketMessage(Base):
    """What was said after the handoff: shopper and agent messages, internal notes, system lines."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    author: Mapped[str | None] = mapped_column(String(120), nullable=True)  # the agent's username
    text: Mapped[str] = mapped_column(Text)
    sentiment: Mapped[float | None] = mapped_column(Float, nullable=True)  # VADER compound, shopper messages
    created_at: Mapped[datetime] = mapped_column(DateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class HelpdeskOutbox(Base):
    """One delivery of one ticket to one configured webhook; written with the ticket, sent later."""

    __tablename__ = "helpdesk_outbox"
    __table_args__ = (Index("ix_helpdesk_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(60))  # the webhook's configured name
    kind: Mapped[str] = mapped_column(String(20))  # generic | slack | zendesk
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the exact body sent on every attempt
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AgentPresence(Base):
    """When an agent's inbox last showed a sign of life (the gateway touches it every ~20 s)."""

    __tablename__ = "agent_presence"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(120))
    last_seen: Mapped[datetime] = mapped_column(DateTime, index=True)
