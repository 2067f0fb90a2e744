"""Tables of the saved conversation tests and of their results per model version.

``conversation_tests``: one row per test; ``turns`` holds the expected turns as JSON (see
:mod:`bot.convtests.store` for the shape). ``conversation_test_results``: the last result of each test
against each model version (a rerun against the same version replaces it); ``detail`` holds the turn results
the console shows as a diff.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base

MAX_NAME = 200


class ConversationTestRow(Base):
    __tablename__ = "conversation_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME), unique=True)
    turns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ConversationTestResult(Base):
    __tablename__ = "conversation_test_results"
    __table_args__ = (UniqueConstraint("test_id", "model_version", name="uq_conversation_test_results_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("conversation_tests.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[int] = mapped_column(Integer, index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    diverged_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    ran_at: Mapped[datetime] = mapped_column(DateTime)
