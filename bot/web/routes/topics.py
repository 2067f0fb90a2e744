"""Topics in the lead console: the latest run's topics of a scope, a full recluster as a background job
with progress, and the actions from a topic (label selected messages, out of scope, knowledge entry).

Lead routes; POST needs the session's ``X-CSRF-Token``. Refusals are ``{"detail": {"error": code,
"message": text}}``. One recluster runs at a time per gateway process (a thread); its stage and
done/total steps are read from ``GET /admin/api/topics/job``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.auth.sessions import AuthSession
from bot.auth.web import require_role
from bot.clock import utcnow
from bot.config import Settings
from bot.db import session_scope
from bot.ids import MAX_ID
from bot.topics import actions
from bot.topics.summaries import topic_summaries
from bot.topics.tables import SCOPE_ALL, TopicMember
from bot.training import nlu_inbox
from bot.web.params import AUTH_RESPONSES, CONFLICT, NOT_FOUND, IdPath, Responses

log = logging.getLogger("bot.web.routes.topics")
router = APIRouter(tags=["lead"], responses=AUTH_RESPONSES)
Lead = Annotated[AuthSession, Depends(require_role("lead"))]
Scope = Literal["all", "fallback"]
STEPS = ("reading shopper messages", "embedding", "clustering", "naming", "storing")
MAX_MEMBERS = 200
REFUSED: Responses = {400: {"description": "A bad selection or intent (`detail.message` says which)."},
           422: {"description": "The entry is invalid or its key is taken (`detail.message` says which)."}}


@dataclass
class ReclusterJob:
    scope: str = ""
    state: str = "idle"  # idle | running | done | failed
    stage: str = ""
    done: int = 0
    total: int = len(STEPS)
    started_at: str | None = None
    finished_at: str | None = None
    error: str = ""
    result: dict[str, Any] | None = None


_JOB_LOCK = threading.Lock()


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _job(request: Request) -> ReclusterJob:
    job = getattr(request.app.state, "topics_job", None)
    if job is None:
        job = request.app.state.topics_job = ReclusterJob()
    return job  # type: ignore[no-any-return]


def _refuse(exc: actions.TopicActionError) -> HTTPException:
    return HTTPException(exc.status, exc.detail())


class LabelRequest(BaseModel):
    message_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1, max_length=10_000, description="Topic member ids (`members[].id` of the list).")
    intent: str = Field(min_length=1, max_length=100, description="An existing intent, or a new one.")
    new_intent: bool = Field(default=False, description="Create the intent when it does not exist yet.")


class KnowledgeRequest(BaseModel):
    topic_key: str = Field(min_length=2, max_length=48, description="The entry's key under `answers:`.")
    answer: str = Field(min_length=1, max_length=5_000, description="The answer (a Jinja2 template over the facts).")
    label: str = Field(default="", max_length=80, description="A short title (default: from the key).")
    examples: list[Annotated[str, Field(max_length=300)]] | None = Field(
        default=None, max_length=50, description="Questions it answers (default: the topic's representatives).")


@router.get("/admin/api/topics")
async def list_topics(request: Request, auth: Lead, scope: Scope = SCOPE_ALL,
                      members: Annotated[int, Query(ge=0, le=MAX_MEMBERS)] = 50) -> dict[str, Any]:
    """The latest run's topics of ``scope``, largest first, with up to ``members`` messages each."""
    settings = _settings(request)

    def read() -> dict[str, Any]:
        with session_scope(settings.database_url) as session:
            summaries = topic_summaries(session, settings.tracker_url, scope)
            ids = [s.topic_id for s in summaries]
            rows: dict[int, list[TopicMember]] = {i: [] for i in ids}
            for row in session.scalars(select(TopicMember).where(TopicMember.topic_id.in_(ids))
                                       .order_by(TopicMember.distance, TopicMember.id)):
                rows[row.topic_id].append(row)
            topics = []
            for s in summaries:
                labels = actions.member_labels(session, rows[s.topic_id])
                shown = rows[s.topic_id][:members]
                topics.append({
                    "id": s.topic_id, "name": s.name, "words": list(s.words), "size": s.size,
                    "per_day": [{"day": d.isoformat(), "count": n} for d, n in s.per_day],
                    "representatives": list(s.representatives),
                    "intents_today": dict(s.intents_today.most_common()), "conversations": s.conversations,
                    "containment_rate": s.containment_rate, "escalation_rate": s.escalation_rate,
                    "average_rating": s.average_rating,
                    "out_of_scope": bool(rows[s.topic_id]) and all(
                        labels.get(m.id, ("", None))[0] == "out_of_scope" for m in rows[s.topic_id]),
                    "members": [{"id": m.id, "text": m.text, "intent": m.intent, "day": m.day.isoformat(),
                                 "confidence": m.confidence,
                                 "status": labels.get(m.id, ("open", None))[0],
                                 "label": labels.get(m.id, ("open", None))[1]} for m in shown],
                    "members_shown": len(shown)})
            intents = nlu_inbox.known_intents(Path(settings.training_root), session)
        return {"scope": scope, "topics": topics, "intents": intents}

    return await asyncio.to_thread(read)


def _run_recluster(settings: Settings, job: ReclusterJob) -> None:
    from bot.topics.recluster import recluster

    def progress(stage: str) -> None:
        job.stage = stage
        job.done = next((i for i, step in enumerate(STEPS) if stage.startswith(step)), job.done)

    try:
        with session_scope(settings.database_url) as session:
            result = recluster(session, settings.tracker_url, job.scope, settings.inbox_confidence_threshold,
                               progress=progress)
        job.result = asdict(result)
        job.done, job.stage, job.state = job.total, "done", "done"
    except Exception as exc:
        log.exception("recluster of topics (%s) failed", job.scope)
        job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
    finally:
        job.finished_at = utcnow().isoformat()


class ReclusterRequest(BaseModel):
    scope: Scope = SCOPE_ALL


@router.post("/admin/api/topics/recluster", status_code=202, responses=CONFLICT)
async def start_recluster(request: Request, auth: Lead, body: ReclusterRequest) -> dict[str, Any]:
    """Starts a full recluster of ``scope`` in the background (409 while one runs)."""
    settings = _settings(request)
    with _JOB_LOCK:
        job = _job(request)
        if job.state == "running":
            raise HTTPException(409, {"error": "already_running",
                                      "message": f"A recluster of '{job.scope}' is running ({job.stage})."})
        job = request.app.state.topics_job = ReclusterJob(scope=body.scope, state="running", stage="starting",
                                                          started_at=utcnow().isoformat())
    threading.Thread(target=_run_recluster, args=(settings, job), daemon=True, name="topics-recluster").start()
    return asdict(job)


@router.get("/admin/api/topics/job")
async def recluster_job(request: Request, auth: Lead) -> dict[str, Any]:
    """The last recluster started by this process: state, stage and steps done of total."""
    return asdict(_job(request))


@router.post("/admin/api/topics/{topic_id}/label", responses={**NOT_FOUND, **REFUSED})
async def label_topic(request: Request, auth: Lead, topic_id: IdPath, body: LabelRequest) -> dict[str, Any]:
    """Labels the selected messages of the topic to an intent through the NLU inbox."""
    settings = _settings(request)

    def write() -> dict[str, Any]:
        with session_scope(settings.database_url) as session:
            members = actions.topic_members(session, topic_id, body.message_ids)
            return actions.label_members(
                session, Path(settings.training_root), settings.tracker_url, members, action="intent",
                intent=body.intent, new_intent=body.new_intent, user_id=auth.user.id, author=auth.user.name,
                threshold=settings.inbox_confidence_threshold, sample_rate=settings.inbox_sample_rate)

    try:
        return await asyncio.to_thread(write)
    except actions.TopicActionError as exc:
        raise _refuse(exc) from exc


@router.post("/admin/api/topics/{topic_id}/out-of-scope", responses={**NOT_FOUND, **REFUSED})
async def topic_out_of_scope(request: Request, auth: Lead, topic_id: IdPath) -> dict[str, Any]:
    """Labels every message of the topic ``out_of_scope`` (the topic then shows as out of scope)."""
    settings = _settings(request)

    def write() -> dict[str, Any]:
        with session_scope(settings.database_url) as session:
            members = actions.topic_members(session, topic_id)
            return actions.label_members(
                session, Path(settings.training_root), settings.tracker_url, members, action="out_of_scope",
                intent=None, new_intent=False, user_id=auth.user.id, author=auth.user.name,
                threshold=settings.inbox_confidence_threshold, sample_rate=settings.inbox_sample_rate)

    try:
        return {**await asyncio.to_thread(write), "out_of_scope": True}
    except actions.TopicActionError as exc:
        raise _refuse(exc) from exc


@router.post("/admin/api/topics/{topic_id}/knowledge", status_code=201, responses={**NOT_FOUND, **REFUSED})
async def topic_knowledge(request: Request, auth: Lead, topic_id: IdPath, body: KnowledgeRequest) -> dict[str, Any]:
    """Adds a knowledge entry to the policy file's ``answers:`` (its questions: ``examples``, else the
    topic's representatives); the running assistant reloads the file on its next answer."""
    settings = _settings(request)

    def write() -> dict[str, Any]:
        from bot.topics.tables import Topic

        with session_scope(settings.database_url) as session:
            topic = session.get(Topic, topic_id)
            if topic is None:
                raise actions.TopicActionError(404, "not_found", f"No topic with id {topic_id}.")
            questions = body.examples if body.examples is not None else list(topic.representatives)
        with _JOB_LOCK:
            return actions.add_knowledge_entry(Path(settings.policy_file), body.topic_key, label=body.label,
                                               answer=body.answer, questions=questions)

    try:
        return await asyncio.to_thread(write)
    except actions.TopicActionError as exc:
        raise _refuse(exc) from exc
