"""Database ids as they may come from outside (URLs, JSON bodies, websocket frames, Rasa entities).

Every id column is SQL ``INTEGER``: 64-bit on SQLite but 32-bit on PostgreSQL, and a larger number makes
the driver raise (an ``OverflowError`` or ``DataError``, i.e. a 500) instead of finding nothing. So an id
from outside is a whole number from 1 to :data:`MAX_ID`; anything else is refused before it reaches a query.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_ID = 2**31 - 1  # the largest PostgreSQL INTEGER

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def parse_id(raw: object) -> int | None:
    """``raw`` (an int, or text of ASCII digits) as an id, or None when it is not one (too large included)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw).strip() if raw is not None else ""
        if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
            return None
        value = int(text)
    return value if 1 <= value <= MAX_ID else None
