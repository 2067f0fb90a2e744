"""Stored topics: one row per clustering run, its topics, and which shopper messages belong to which topic.

A message is referenced by its Rasa event (conversation id + event id + timestamp) and keeps a copy of its
text, the intent the model gave it, its confidence and its UTC day, so the console can count per day and per
intent without reading the tracker store again. Noise messages are not stored (only counted on the run).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base

SCOPE_ALL: Final = "all"  # Final: typed as the literal, as the API's Literal scope field needs
SCOPE_FALLBACK: Final = "fallback"
SCOPES = (SCOPE_ALL, SCOPE_FALLBACK)


class TopicRun(Base):
    __tablename__ = "topic_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20), index=True)
    method: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    message_count: Mapped[int] = mapped_column(Integer)
    noise_count: Mapped[int] = mapped_column(Integer)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)  # the tracker events read so far (assign moves it)


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("topic_runs.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(200))
    words: Mapped[list[str]] = mapped_column(JSON, default=list)  # distinctive words, best first
    size: Mapped[int] = mapped_column(Integer)
    centroid: Mapped[list[float]] = mapped_column(JSON)  # unit vector, the encoder's dimension
    radius: Mapped[float] = mapped_column(Float)  # cosine distance within which a new message joins
    representatives: Mapped[list[str]] = mapped_column(JSON, default=list)  # the five texts nearest the centre


class TopicMember(Base):
    __tablename__ = "topic_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(String(255), index=True)
    event_id: Mapped[int] = mapped_column(Integer, index=True)
    timestamp: Mapped[float] = mapped_column(Float)
    day: Mapped[date] = mapped_column(Date, index=True)
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str] = mapped_column(String(100))
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    distance: Mapped[float] = mapped_column(Float)  # cosine distance to the topic's centre
    incremental: Mapped[bool] = mapped_column(default=False)  # joined after the run, by `topics assign`
