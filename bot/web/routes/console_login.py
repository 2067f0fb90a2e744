"""Logging in to and out of the consoles: one login for the agent inbox (``/agent``) and the lead console
(``/admin``).

``GET /agent/login`` shows the form (``static/login.html``, every value HTML-escaped) with a fresh
double-submit token against login CSRF; ``POST /agent/login`` checks it, the login throttle and the password,
starts a session (cookie, :mod:`bot.auth.web`) and goes on to ``next`` (one of the consoles, never another
site). ``POST /agent/logout`` ends the session and the agent's presence.
"""

from __future__ import annotations

import html
import logging
from functools import cache
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection

from bot.auth import sessions, users
from bot.auth.sessions import AuthSession
from bot.auth.throttle import LoginThrottle
from bot.auth.web import (
    SESSION_COOKIE,
    clear_login_csrf_cookie,
    clear_session_cookie,
    current_session,
    login_csrf_ok,
    new_login_token,
    require_role,
    set_login_csrf_cookie,
    set_session_cookie,
)
from bot.config import Settings
from bot.db import in_session
from bot.handoff import tickets
from bot.web.params import AUTH_RESPONSES
from bot.web.security import console_headers
from bot.web.static_files import STATIC

log = logging.getLogger("bot.web.routes.console_login")
LOGIN_TEMPLATE = STATIC / "login.html"

router = APIRouter(tags=["agent"], responses=AUTH_RESPONSES)  # the login pages are left out of the schema
Agent = Annotated[AuthSession, Depends(require_role("agent"))]


def safe_next(value: str | None) -> str:
    """Where to go after logging in: one of our consoles (never another site), else the agent inbox."""
    value = (value or "").strip()
    if value.startswith(("/agent", "/admin")) and "//" not in value and "\\" not in value and len(value) <= 200:
        return value
    return "/agent"


@cache
def _template() -> Template:
    return Template(LOGIN_TEMPLATE.read_text(encoding="utf-8"))


def _login_page(connection: HTTPConnection, *, error: str = "", username: str = "", status: int = 200,
                next_url: str = "/agent") -> Response:
    """The login form, with a fresh double-submit token (cookie + hidden field) against login CSRF."""
    token = new_login_token()
    body = _template().substitute(
        csrf=html.escape(token, quote=True), username=html.escape(username, quote=True),
        next=html.escape(safe_next(next_url), quote=True),
        error=f'<p class="error" role="alert" data-testid="login-error">{html.escape(error)}</p>' if error else "")
    response = HTMLResponse(body, status_code=status)
    set_login_csrf_cookie(response, connection, token)
    return console_headers(response, connection)


def _database_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.database_url


@router.get("/agent/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    if await current_session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_url=target)


@router.post("/agent/login", include_in_schema=False)
async def login(request: Request, username: Annotated[str, Form(max_length=200)] = "",
                password: Annotated[str, Form(max_length=1024)] = "",
                csrf: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=200)] = "/agent") -> Response:
    target = safe_next(next)
    if not login_csrf_ok(request, csrf):
        return _login_page(request, error="The login form expired. Please try again.", username=username,
                           status=403, next_url=target)
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "-"
    database_url = _database_url(request)
    if await in_session(database_url, lambda session: throttle.login_blocked(session, username, address)):
        return _login_page(request, error="Too many failed attempts. Wait 15 minutes and try again.",
                           username=username, status=429, next_url=target)

    def check(session: Any) -> tuple[str, AuthSession] | None:
        user = users.authenticate(session, username, password)
        if user is None:
            throttle.login_failed(session, username, address)
            return None
        throttle.login_succeeded(session, username, address)
        return sessions.start_session(session, user)

    started = await in_session(database_url, check)
    if started is None:
        return _login_page(request, error="Wrong username or password.", username=username, status=401,
                           next_url=target)
    token, auth = started
    log.info("agent %s logged in", auth.user.username)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    clear_login_csrf_cookie(response)
    return console_headers(response, request)


@router.post("/agent/logout")
async def logout(request: Request, auth: Agent) -> Response:
    """Ends the session (needs the CSRF header like every other state change)."""
    token = request.cookies.get(SESSION_COOKIE)

    def end(session: Any) -> None:
        sessions.end_session(session, token)
        tickets.clear_presence(session, auth.user.id)

    await in_session(_database_url(request), end)
    response = JSONResponse({"ok": True, "next": "/agent/login"})
    clear_session_cookie(response, request)
    return response
