"""The agent inbox page (``/agent``, login first) and its script and styles (``/agent/static/``).

The page talks to the ticket API (:mod:`bot.web.routes.tickets`) and the live queue
(:mod:`bot.web.routes.agent_socket`); logging in is :mod:`bot.web.routes.console_login`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from bot.auth.web import current_session
from bot.web.params import AUTH_RESPONSES
from bot.web.security import console_headers
from bot.web.static_files import STATIC, asset

ASSETS = {"agent.js": "application/javascript", "agent.css": "text/css",
          "console.js": "application/javascript", "console.css": "text/css"}

router = APIRouter(tags=["agent"], responses=AUTH_RESPONSES)  # the pages are left out of the schema


@router.get("/agent", include_in_schema=False)
async def inbox_page(request: Request) -> Response:
    auth = await current_session(request)
    if auth is None:
        return RedirectResponse("/agent/login", status_code=303)
    return console_headers(FileResponse(STATIC / "agent.html", media_type="text/html"), request)


@router.get("/agent/static/{name}", include_in_schema=False)
async def inbox_asset(name: str) -> FileResponse:
    return asset(name, ASSETS)
