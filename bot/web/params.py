"""Path parameters shared by the gateway's routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from bot.ids import MAX_ID

# Ids and version numbers are SQL INTEGER columns (32-bit on PostgreSQL): a larger number is refused with 422
# instead of reaching the driver (which raised, a 500).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description=f"A whole number from 1 to {MAX_ID}.")]

# A route's extra documented answers, as FastAPI's ``responses=`` takes them.
Responses = dict[int | str, dict[str, Any]]

# What every agent and lead API route may answer before it looks at its input.
AUTH_RESPONSES: Responses = {
    401: {"description": "Not logged in, or the session ended (`POST /agent/login` first)."},
    403: {"description": "The user lacks the role, or a POST came without the session's `X-CSRF-Token` header "
                         "or from another origin."},
}
NOT_FOUND: Responses = {404: {"description": "No such item."}}
CONFLICT: Responses = {409: {"description": "The item's state does not allow this (`detail.error` says why)."}}
