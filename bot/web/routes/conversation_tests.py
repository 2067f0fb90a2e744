"""Saved conversation tests in the consoles: save a conversation as a test, list the tests, delete one.

Lead routes (a lead has every agent right, so a lead in the agent inbox uses them too; agents do not: the
agent console shows its "Save as test" button to leads only). POST and DELETE need the session's
``X-CSRF-Token``. Refusals are ``{"detail": {"error": code, "message": text}}``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from bot.auth.sessions import AuthSession
from bot.auth.web import require_role
from bot.config import Settings
from bot.convtests import store
from bot.convtests.capture import NoUserMessages, from_conversation
from bot.convtests.tables import MAX_NAME
from bot.db import session_scope
from bot.web.params import AUTH_RESPONSES, CONFLICT, NOT_FOUND

router = APIRouter(tags=["lead"], responses=AUTH_RESPONSES)
Lead = Annotated[AuthSession, Depends(require_role("lead"))]


class SaveRequest(BaseModel):
    conversation_id: str = Field(min_length=1, max_length=255, description="Rasa's sender id of the conversation.")
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"\S", description="A unique name for the test.")
    origin: Literal["agent-inbox", "nlu-inbox", "analytics", "console"] = Field(
        default="console", description="Where it was saved from (kept as the test's source).")


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


@router.post("/admin/api/conversation-tests", status_code=201, responses={**NOT_FOUND, **CONFLICT})
async def save_conversation_test(request: Request, auth: Lead, body: SaveRequest) -> dict[str, Any]:
    """Capture the conversation from Rasa's tracker store and save it as a test (404 when it has no
    shopper message, 409 when the name is taken)."""
    settings = _settings(request)

    def work() -> dict[str, Any]:
        test = from_conversation(settings.tracker_url, body.conversation_id, body.name,
                                 source=f"{body.origin}:{body.conversation_id}")
        with session_scope(settings.database_url) as session:
            test_id = store.save_test(session, test, f"user:{auth.user.name}")
        return {"id": test_id, "name": test.name, "turns": [store.turn_to_json(t) for t in test.turns],
                "source": test.source}

    try:
        return await asyncio.to_thread(work)
    except NoUserMessages as exc:
        raise HTTPException(404, {"error": "no_user_messages", "message": str(exc)}) from exc
    except store.DuplicateTestName as exc:
        raise HTTPException(409, {"error": "duplicate_name", "message": str(exc)}) from exc


@router.get("/admin/api/conversation-tests")
async def list_conversation_tests(request: Request, auth: Lead) -> dict[str, Any]:
    """Every test with its turns and its last result per model version."""
    settings = _settings(request)

    def read() -> list[dict[str, Any]]:
        with session_scope(settings.database_url) as session:
            return store.summaries(session)

    return {"tests": await asyncio.to_thread(read)}


@router.delete("/admin/api/conversation-tests/{name}", responses=NOT_FOUND)
async def delete_conversation_test(request: Request, auth: Lead, name: str) -> dict[str, Any]:
    settings = _settings(request)

    def work() -> None:
        with session_scope(settings.database_url) as session:
            store.delete_test(session, name)

    try:
        await asyncio.to_thread(work)
    except store.UnknownTest as exc:
        raise HTTPException(404, {"error": "not_found", "message": str(exc)}) from exc
    return {"deleted": name}
