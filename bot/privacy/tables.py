"""The privacy log: one row per export, erasure and retention run — who, what, when, how many; no PII.

The customer is recorded as the SHA-256 of their lower-case email address, so a later request about the
same address can be matched to the log without the log holding the address.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.db import Base

EXPORT = "export"
ERASE = "erase"
RETENTION = "retention"
ACTIONS = (EXPORT, ERASE, RETENTION)


def email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class PrivacyLog(Base):
    __tablename__ = "privacy_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(20), index=True)  # export | erase | retention
    actor: Mapped[str] = mapped_column(String(120))  # who ran it, e.g. "cli:alice"
    subject_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # email_hash()
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # rows per table
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


def actor_name() -> str:
    """Who runs a command from this process: ``cli:<login name>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"[:120]
    except (KeyError, OSError):
        return "cli:unknown"


def record(session: Session, action: str, counts: dict[str, Any], *, at: datetime, actor: str | None = None,
           email: str | None = None) -> PrivacyLog:
    """Add one log row (in the caller's transaction)."""
    row = PrivacyLog(action=action, actor=(actor or actor_name())[:120],
                     subject_hash=email_hash(email) if email else None, counts=dict(counts), at=at)
    session.add(row)
    session.flush()
    return row
