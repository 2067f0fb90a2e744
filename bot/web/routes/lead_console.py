"""The support leads' console: pages, and the models API (train, progress, registry, activate, roll back).

The NLU inbox API is in :mod:`bot.web.routes.nlu_inbox`, analytics in :mod:`bot.web.routes.lead_analytics`,
topics in :mod:`bot.web.routes.topics`, saved conversation tests in :mod:`bot.web.routes.conversation_tests`;
logging in is :mod:`bot.web.routes.console_login`. Every route is for the lead role. Training runs in its
own process (:mod:`bot.training.jobs`), so the gateway only starts it and reads its progress from the registry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.auth.sessions import AuthSession
from bot.auth.web import current_session, require_role
from bot.clock import utcnow
from bot.config import Settings
from bot.convtests.tables import ConversationTestRow
from bot.db import session_scope
from bot.training import activation, gate, jobs, registry
from bot.training.tables import ModelVersion
from bot.training.workspace import Workspace
from bot.web.params import AUTH_RESPONSES, CONFLICT, NOT_FOUND, IdPath
from bot.web.security import console_headers
from bot.web.static_files import STATIC, asset

ASSETS = {"admin.js": "application/javascript", "admin.css": "text/css",
          "analytics.js": "application/javascript", "analytics.css": "text/css",
          "console.js": "application/javascript", "console.css": "text/css"}

router = APIRouter(tags=["lead"], responses=AUTH_RESPONSES)  # the pages are left out of the schema
Lead = Annotated[AuthSession, Depends(require_role("lead"))]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def console_page(request: Request, page: str, path: str) -> Response:
    """An HTML page of the console: login first, and leads only."""
    auth = await current_session(request)
    if auth is None:
        return RedirectResponse(f"/agent/login?next={path}", status_code=303)
    if not auth.user.has_role("lead"):
        raise HTTPException(403, {"error": "forbidden", "message": "The console is for support leads."})
    return console_headers(FileResponse(STATIC / page, media_type="text/html"), request)


@router.get("/admin", include_in_schema=False)
async def admin_page(request: Request) -> Response:
    return await console_page(request, "admin.html", "/admin")


@router.get("/admin/static/{name}", include_in_schema=False)
async def admin_asset(name: str) -> FileResponse:
    return asset(name, ASSETS)


# --------------------------------------------------------------------------- models


class TrainRequest(BaseModel):
    note: str = Field(default="", max_length=2000)
    from_scratch: bool = Field(default=False, description="Train anew instead of fine-tuning the active model.")


class ActivateRequest(BaseModel):
    reason: str = Field(default="", max_length=2000)


def _error(status: int, code: str, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, {"error": code, "message": message, **extra})


def _models(settings: Settings) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        now = utcnow()
        registry.reap_stale(session, now)
        registry.ensure_baseline(session, Workspace.from_settings(settings), now)
        registry.backfill_metrics(session)
        rows = list(session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc())))
        active = next((r.version for r in rows if r.active), None)
        running = next((r.version for r in rows if r.running), None)
        limits = gate.GateLimits.from_settings(settings)
        rules = gate.rules(limits) + (_conversation_rule(session) if settings.gate_conversation_tests else [])
        return {"versions": [registry.summary(r) for r in rows], "active": active, "running": running,
                "gate": {**limits.as_dict(), "rules": rules, "conversation_tests": settings.gate_conversation_tests}}


def _conversation_rule(session: Session) -> list[str]:
    """The saved conversation tests' rule as the next training applies it (``SHOP_GATE_CONVERSATION_TESTS``)."""
    saved = session.scalar(select(func.count()).select_from(ConversationTestRow)) or 0
    return [f"Every saved conversation test passes: each ({saved} saved now) is played against the new model in a "
            f"scratch Rasa with the action server and must do at every turn what it says (intent, actions, reply "
            f"kind); one that fails blocks the model."]


@router.get("/admin/api/models")
async def models(request: Request, auth: Lead) -> dict[str, Any]:
    settings = _settings(request)
    answer = await asyncio.to_thread(_models, settings)
    answer["serving"] = await asyncio.to_thread(activation.serving, settings.rasa_url, settings.rasa_token)
    return answer


@router.get("/admin/api/models/{version}", responses=NOT_FOUND)
async def model_detail(request: Request, auth: Lead, version: IdPath) -> dict[str, Any]:
    def read() -> dict[str, Any] | None:
        with session_scope(_settings(request).database_url) as session:
            row = registry.get_version(session, version)
            return registry.detail(session, row) if row is not None else None

    found = await asyncio.to_thread(read)
    if found is None:
        raise _error(404, "not_found", f"There is no model version {version}.")
    return found


@router.get("/admin/models/{version}/confusion.png", response_class=FileResponse, responses={
    200: {"content": {"image/png": {}}, "description": "The confusion matrix on the test set."}, **NOT_FOUND})
async def confusion_image(request: Request, auth: Lead, version: IdPath) -> FileResponse:
    def read() -> str | None:
        with session_scope(_settings(request).database_url) as session:
            row = registry.get_version(session, version)
            return (row.metrics or {}).get("confusion_png") if row is not None else None

    path = await asyncio.to_thread(read)
    if not path or not Path(path).exists():
        raise _error(404, "not_found", f"Version {version} has no confusion matrix.")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.post("/admin/api/models/train", status_code=202, responses={
    **CONFLICT, 500: {"description": "The training process could not be started (`detail.message` says why)."}})
async def train(request: Request, auth: Lead, body: TrainRequest) -> dict[str, Any]:
    settings = _settings(request)
    workspace = Workspace.from_settings(settings)

    def begin() -> int:
        with session_scope(settings.database_url) as session:
            row = jobs.start(session, workspace, user_id=auth.user.id, author=auth.user.name, note=body.note,
                             from_scratch=body.from_scratch, for_trainer=settings.training_runner == "worker")
            return row.version

    try:
        version = await asyncio.to_thread(begin)
    except jobs.TrainingBusy as exc:
        raise _error(409, "busy", str(exc), running=exc.version) from exc
    if settings.training_runner == "worker":
        return {"version": version}  # the trainer service picks it up
    try:
        await asyncio.to_thread(jobs.launch, version, workspace)
    except OSError as exc:
        problem = f"could not start the job: {exc}"

        def fail() -> None:
            with session_scope(settings.database_url) as session:
                row = registry.get_version(session, version)
                if row is not None:
                    row.state, row.running, row.error = "failed", None, problem

        await asyncio.to_thread(fail)
        raise _error(500, "launch_failed", f"The training could not be started: {exc}") from exc
    return {"version": version}


@router.post("/admin/api/models/{version}/activate", responses={
    400: {"description": "A rollback or an override needs a reason."}, **NOT_FOUND, **CONFLICT,
    410: {"description": "The version's archive is gone."},
    502: {"description": "Rasa did not answer or could not load the model; nothing was changed."}})
async def activate(request: Request, auth: Lead, version: IdPath,
                   body: ActivateRequest) -> dict[str, Any]:
    settings = _settings(request)
    try:
        done = await asyncio.to_thread(
            activation.activate, version, rasa_url=settings.rasa_servers, user_id=auth.user.id,
            author=auth.user.name, reason=body.reason, token=settings.rasa_token,
            database_url=settings.database_url)
    except activation.ActivationError as exc:
        raise _error(exc.status, exc.code, exc.message, reasons=exc.reasons) from exc
    return {"active": done.version, "previous": done.previous, "kind": done.kind}
