"""Lead console, analytics: the page (``/admin/analytics``), its figures as JSON and each figure as CSV.

``GET /admin/api/analytics?since=YYYY-MM-DD&until=YYYY-MM-DD`` (default: the last 30 days up to today,
UTC, ``until`` inclusive) answers every figure of ``bot.analytics.metrics.compute_all``;
``GET /admin/analytics/{figure}.csv`` the same period's figure as a CSV download;
``GET /admin/api/analytics/conversations?since=&until=&limit=`` the period's latest conversations (ids, times
and counts, no message text), which the page lists with a "Save as test" button. Lead role only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from bot.analytics import export, source
from bot.analytics.metrics import FIGURES, Period, PeriodError
from bot.auth.sessions import AuthSession
from bot.auth.tables import LEAD
from bot.auth.web import current_session, require_role
from bot.clock import utcnow
from bot.config import Settings
from bot.web.params import AUTH_RESPONSES
from bot.web.security import console_headers
from bot.web.static_files import STATIC, asset

LOGIN_URL = "/agent/login?next=/admin/analytics"
ASSETS = {"analytics.js": "application/javascript", "analytics.css": "text/css"}
FORBIDDEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Analytics: for support leads</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/admin/static/console.css">
<link rel="stylesheet" href="/admin/static/analytics.css"></head>
<body class="plain-page"><main class="plain-card"><h1>This page is for support leads</h1>
<p>Your account does not have the lead role. Ask a lead or an administrator if you need it.</p>
<p><a href="/agent">Back to the agent inbox</a></p></main></body></html>
"""

router = APIRouter(tags=["lead"], responses=AUTH_RESPONSES)  # the pages are left out of the schema
Lead = Annotated[AuthSession, Depends(require_role(LEAD))]
Day = Annotated[str | None, Query(max_length=40, description="YYYY-MM-DD (UTC)")]
MAX_CONVERSATIONS = 200
Limit = Annotated[int, Query(ge=1, le=MAX_CONVERSATIONS, description="How many conversations, newest first.")]


def _period(since: str | None, until: str | None) -> Period:
    try:
        return Period.parse(since or None, until or None, today=utcnow().date())
    except PeriodError as exc:
        raise HTTPException(400, {"error": "bad_period", "message": str(exc)}) from exc


async def _report(request: Request, period: Period) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return await asyncio.to_thread(source.report, settings.tracker_url, settings.database_url, period)


@router.get("/admin/analytics", include_in_schema=False)
async def analytics_page(request: Request) -> Response:
    auth = await current_session(request)
    if auth is None:
        return RedirectResponse(LOGIN_URL, status_code=303)
    if not auth.user.has_role(LEAD):
        return console_headers(HTMLResponse(FORBIDDEN_PAGE, status_code=403), request)
    return console_headers(FileResponse(STATIC / "analytics.html", media_type="text/html"), request)


@router.get("/admin/static/analytics.js", include_in_schema=False)
async def analytics_script() -> FileResponse:
    return _asset("analytics.js")


@router.get("/admin/static/analytics.css", include_in_schema=False)
async def analytics_style() -> FileResponse:
    return _asset("analytics.css")


def _asset(name: str) -> FileResponse:
    return asset(name, ASSETS)


@router.get("/admin/api/analytics", responses={400: {"description": "A bad period (`since`, `until`)."}})
async def analytics(request: Request, auth: Lead, since: Day = None, until: Day = None) -> dict[str, Any]:
    """Every figure of the period (see docs/lead-console.md, "Analytics", for the definitions)."""
    report = await _report(request, _period(since, until))
    report["figures"] = list(FIGURES)
    return report


@router.get("/admin/api/analytics/conversations", responses={400: {"description": "A bad period (`since`, `until`)."}})
async def analytics_conversations(request: Request, auth: Lead, since: Day = None, until: Day = None,
                                  limit: Limit = 50) -> dict[str, Any]:
    """The period's conversations that started last (newest first, at most ``limit``): the sender id, its first
    and last shopper message's time, its shopper messages (typed, fallbacks), whether it was handed to a person
    (and the ticket's reason) and its latest rating; ``total`` counts every conversation of the period."""
    period = _period(since, until)
    settings: Settings = request.app.state.settings
    return await asyncio.to_thread(source.conversations, settings.tracker_url, settings.database_url, period, limit)


@router.get("/admin/analytics/{figure}.csv", response_class=Response, responses={
    200: {"content": {"text/csv": {}}, "description": "The figure as a CSV download."},
    400: {"description": "A bad period (`since`, `until`)."}, 404: {"description": "No such figure."}})
async def analytics_csv(request: Request, figure: str, auth: Lead, since: Day = None, until: Day = None) -> Response:
    if figure not in FIGURES:
        raise HTTPException(404, {"error": "unknown_figure",
                                  "message": f"There is no figure {figure[:60]!r}; try one of {', '.join(FIGURES)}."})
    report = await _report(request, _period(since, until))
    return Response(export.to_csv(figure, report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{export.filename(figure, report)}"',
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
