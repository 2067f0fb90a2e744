"""Path parameters shared by the gateway's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from bot.ids import MAX_ID

# Ids and version numbers are SQL INTEGER columns (32-bit on PostgreSQL): a larger number is refused with 422
# instead of reaching the driver (which raised, a 500).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description=f"A whole number from 1 to {MAX_ID}.")]

# What every agent and lead API route may answer before it looks at its input.
AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Not logged in, or the session ended (`POST /agent/login` first)."},
    403: {"description": "The user lacks the role, or a POST came without the session's `X-CSRF-Token` header "
                         "or from another origin."},
}
NOT_FOUND = {404: {"description": "No such item."}}
CONFLICT = {409: {"description": "The item's state does not allow this (`detail.error` says why)."}}
