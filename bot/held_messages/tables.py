"""The held-messages table: shopper messages held while Rasa was unreachable (shared by gateway replicas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base


class HeldMessage(Base):
    """A shopper message that never reached Rasa (it was down), or got no answer in time (Rasa may have taken
    it: ``metadata.message_id`` tells the replay); deleted once Rasa has answered it.

    ``claimed_by``/``claimed_until``: the gateway replica replaying the conversation right now, so two
    replicas never send the same message twice (a claim that runs out is taken over).
    """

    __tablename__ = "held_messages"
    __table_args__ = (Index("ix_held_messages_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text)
    message_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

