"""The NLU inbox API of the lead console: grouped messages, one message in context, labels.

Every route is for the lead role (POST needs the session's ``X-CSRF-Token``). Listing first reads the
events Rasa stored since the last look (:func:`bot.training.nlu_inbox.ingest`), so the inbox is always current
without a background job. Refusals are ``{"detail": {"error": code, "message": text}}``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from bot.auth.sessions import AuthSession
from bot.auth.web import require_role
from bot.config import Settings
from bot.db import session_scope
from bot.ids import MAX_ID
from bot.training import nlu_inbox
from bot.training.tables import TRAIN
from bot.web.params import AUTH_RESPONSES, IdPath, Responses

log = logging.getLogger("bot.web.routes.nlu_inbox")
router = APIRouter(tags=["lead"], responses=AUTH_RESPONSES)
Lead = Annotated[AuthSession, Depends(require_role("lead"))]
MAX_TEXT_OFFSET = 100_000  # an entity's start and end: characters into the message
BAD_REQUEST: Responses = {400: {"description": "A bad filter or label request (`detail.message` says which)."}}
QUERY_KEYS = ("q", "intent", "reason", "status", "min_conf", "max_conf", "since", "until", "page", "page_size")


class EntityLabel(BaseModel):
    start: int = Field(ge=0, le=MAX_TEXT_OFFSET)
    end: int = Field(ge=0, le=MAX_TEXT_OFFSET)
    entity: str = Field(min_length=1, max_length=100)
    value: str | None = Field(default=None, max_length=500)


class LabelRequest(BaseModel):
    message_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(default_factory=list, max_length=10_000)
    group_keys: list[str] = Field(default_factory=list, max_length=2_000)
    action: Literal["intent", "out_of_scope", "ignore", "reopen"]
    intent: str | None = Field(default=None, max_length=100)
    new_intent: bool = False
    entities: list[EntityLabel] | None = Field(default=None, max_length=50)
    target: Literal["train", "test"] = TRAIN


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _refuse(exc: nlu_inbox.InboxError) -> HTTPException:
    return HTTPException(exc.status, exc.detail())


@router.get("/admin/api/inbox", responses=BAD_REQUEST)
async def list_inbox(request: Request, auth: Lead) -> dict[str, Any]:
    settings = _settings(request)
    try:
        query = nlu_inbox.InboxQuery.parse({key: request.query_params.get(key) for key in QUERY_KEYS})
    except nlu_inbox.InboxError as exc:
        raise _refuse(exc) from exc

    def read() -> dict[str, Any]:
        ingest_error = None
        added = 0
        with session_scope(settings.database_url) as session:
            try:
                added = nlu_inbox.ingest(session, settings.tracker_url, threshold=settings.inbox_confidence_threshold,
                                     sample_rate=settings.inbox_sample_rate)
            except Exception as exc:  # the tracker store is unreachable: show what was read before
                log.exception("reading Rasa's events for the NLU inbox failed")
                session.rollback()
                ingest_error = f"New messages could not be read from Rasa's tracker store: {type(exc).__name__}."
            answer = nlu_inbox.list_groups(session, query, Path(settings.training_root))
        answer["ingested"] = added
        if ingest_error:
            answer["ingest_error"] = ingest_error
        return answer

    return await asyncio.to_thread(read)


@router.get("/admin/api/inbox/messages/{message_id}", responses={404: {"description": "No such message."}})
async def inbox_message(request: Request, auth: Lead,
                        message_id: IdPath) -> dict[str, Any]:
    settings = _settings(request)

    def read() -> dict[str, Any]:
        with session_scope(settings.database_url) as session:
            return nlu_inbox.message_detail(session, message_id, settings.tracker_url)

    try:
        return await asyncio.to_thread(read)
    except nlu_inbox.InboxError as exc:
        raise _refuse(exc) from exc


@router.post("/admin/api/inbox/label", responses=BAD_REQUEST)
async def label(request: Request, auth: Lead, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    settings = _settings(request)
    try:
        command = LabelRequest.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise HTTPException(400, {"error": "bad_request", "message": f"The label request is not valid: {problems}."}
                            ) from exc

    def write() -> int:
        with session_scope(settings.database_url) as session:
            return nlu_inbox.label_messages(
                session, Path(settings.training_root), user_id=auth.user.id, author=auth.user.name,
                message_ids=command.message_ids, group_keys=command.group_keys, action=command.action,
                intent=command.intent, new_intent=command.new_intent,
                entities=None if command.entities is None else [e.model_dump() for e in command.entities],
                target=command.target)

    try:
        return {"updated": await asyncio.to_thread(write)}
    except nlu_inbox.InboxError as exc:
        raise _refuse(exc) from exc


@router.get("/admin/api/labels")
async def labels(request: Request, auth: Lead) -> dict[str, Any]:
    settings = _settings(request)

    def read() -> dict[str, Any]:
        with session_scope(settings.database_url) as session:
            return nlu_inbox.labels_summary(session, Path(settings.training_root))

    return await asyncio.to_thread(read)
