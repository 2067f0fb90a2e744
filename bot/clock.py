"""The project's time convention: naive datetimes in UTC, as stored in every table."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)
