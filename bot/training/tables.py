"""Tables of the lead console: the NLU inbox with its labels, and the model registry.

``nlu_messages`` holds one row per shopper message read from Rasa's events (``event_id`` is the row id
in Rasa's ``events`` table); the reasons it needs review are flags, and a lead's label is kept on the
row with every change in ``nlu_label_history``. ``model_versions`` is the registry: one row per trained
(or training) model, its metrics, gate result and activation; ``model_activations`` is the audit trail
of every activation and rollback. Times are naive UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import bot.auth.tables  # noqa: F401  (the `users` table the foreign keys below point to)
from bot.db import Base

# nlu_messages.status
OPEN = "open"            # waiting for a lead
LABELLED = "labelled"    # has an intent (confirmed, corrected or new): becomes an example
OUT_OF_SCOPE = "out_of_scope"  # becomes an example of the `out_of_scope` intent
IGNORED = "ignored"      # noise, gibberish, test messages: never exported
STATUSES = (OPEN, LABELLED, OUT_OF_SCOPE, IGNORED)
# nlu_messages.label_target
TRAIN: Final = "train"  # data/nlu/lead_labels.yml (Final: typed as the literal the API's field needs)
TEST: Final = "test"    # tests/nlu_test.yml
TARGETS = (TRAIN, TEST)

# model_versions.state
QUEUED, TRAINING, EVALUATING, READY, FAILED = "queued", "training", "evaluating", "ready", "failed"
WAITING_FOR_TRAINER = "waiting for the trainer service"  # the stage of a queued job a trainer service runs
JOB_STATES = (QUEUED, TRAINING, EVALUATING)


class NluMessage(Base):
    __tablename__ = "nlu_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer, unique=True)  # Rasa's events.id
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    text: Mapped[str] = mapped_column(Text)
    group_key: Mapped[str] = mapped_column(String(255), index=True)  # near-duplicates share it
    timestamp: Mapped[datetime] = mapped_column(DateTime, index=True)
    intent: Mapped[str] = mapped_column(String(100), default="", index=True)  # best non-fallback prediction
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    entities: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # as predicted
    low_confidence: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)  # came right before a handoff
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)  # random sample of confident ones
    in_inbox: Mapped[bool] = mapped_column(Boolean, default=False, index=True)  # any of the four
    status: Mapped[str] = mapped_column(String(20), default=OPEN, index=True)
    label_intent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    label_entities: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    label_target: Mapped[str] = mapped_column(String(10), default=TRAIN)
    labelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class NluLabelEvent(Base):
    """Who labelled what, and when: one row per change of a message's label."""

    __tablename__ = "nlu_label_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("nlu_messages.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    intent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    entities: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    target: Mapped[str] = mapped_column(String(10), default=TRAIN)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    author: Mapped[str] = mapped_column(String(120), default="")  # display name, kept if the user goes
    at: Mapped[datetime] = mapped_column(DateTime)


class IngestState(Base):
    """How far the inbox has read Rasa's events (one row per tracker store URL)."""

    __tablename__ = "nlu_ingest_state"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the tracker URL
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    # At most one job at a time: ``running`` is True while queued/training/evaluating, NULL otherwise,
    # and NULLs never collide in a unique index (SQLite and PostgreSQL alike).
    __table_args__ = (Index("uq_model_versions_one_running", "running", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    path: Mapped[str] = mapped_column(String(500), default="")  # model archive, relative to the project
    state: Mapped[str] = mapped_column(String(20), default=QUEUED, index=True)
    running: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    stage: Mapped[str] = mapped_column(String(200), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    log_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_by_name: Mapped[str] = mapped_column(String(120), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    from_scratch: Mapped[bool] = mapped_column(Boolean, default=False)  # else fine-tune the active model
    data_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    test_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    examples: Mapped[int] = mapped_column(Integer, default=0)  # lead-labelled training examples exported
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # on the test set
    baseline_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # active when evaluated
    baseline_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    changed: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # predictions that changed
    gate: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"passed": bool, "reasons": [...]}
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ModelActivation(Base):
    """Every activation, override and rollback: who, when, which version, why."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, index=True)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(20))  # activate | override | rollback | baseline
    reason: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    author: Mapped[str] = mapped_column(String(120), default="")
    at: Mapped[datetime] = mapped_column(DateTime)
