"""FastAPI glue for console sessions (agent and lead): the cookies, the current user, ``require_role`` and
the CSRF checks.

The session cookie is HttpOnly and SameSite=Strict, and Secure except for plain-HTTP requests to a
loopback address (``make run`` on http://localhost): browsers keep Secure cookies only over HTTPS.
State-changing requests (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in the
``X-CSRF-Token`` header (the inbox page reads it from ``GET /agent/api/me``). The login form itself is
guarded by a double-submit token: a short-lived cookie that must match the form's hidden field.
The app must set ``app.state.settings`` (its ``database_url`` is used).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Response
from starlette.requests import HTTPConnection

from bot.auth.sessions import SESSION_TTL, AuthSession, csrf_ok, load_session
from bot.auth.tables import ROLES
from bot.db import session_scope

SESSION_COOKIE = "shop_agent_session"
LOGIN_CSRF_COOKIE = "shop_login_csrf"
LOGIN_PATH = "/agent/login"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_secure(connection: HTTPConnection) -> bool:
    """Secure, unless this is plain HTTP to this machine (development)."""
    return connection.url.scheme in ("https", "wss") or not is_loopback(connection.url.hostname)


def set_session_cookie(response: Response, connection: HTTPConnection, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()), path="/",
                        secure=cookie_secure(connection), httponly=True, samesite="strict")


def clear_session_cookie(response: Response, connection: HTTPConnection) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=cookie_secure(connection), httponly=True,
                           samesite="strict")


def new_login_token() -> str:
    """A fresh token for the login form's hidden field and its cookie."""
    return secrets.token_urlsafe(24)


def set_login_csrf_cookie(response: Response, connection: HTTPConnection, token: str) -> None:
    """The login form's token in its cookie, sent back to the login path only."""
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path=LOGIN_PATH, httponly=True,
                        samesite="strict", secure=cookie_secure(connection))


def login_csrf_ok(connection: HTTPConnection, submitted: str) -> bool:
    """The login form came from this origin with the token of its cookie."""
    cookie = connection.cookies.get(LOGIN_CSRF_COOKIE, "")
    return same_origin(connection) and bool(cookie) and secrets.compare_digest(cookie.encode(), submitted.encode())


def clear_login_csrf_cookie(response: Response) -> None:
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)


def _load(database_url: str, token: str | None) -> AuthSession | None:
    with session_scope(database_url) as session:
        return load_session(session, token)


async def current_session(connection: HTTPConnection) -> AuthSession | None:
    """The logged-in session of this request or websocket, or None."""
    token = connection.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await asyncio.to_thread(_load, connection.app.state.settings.database_url, token)


def same_origin(connection: HTTPConnection) -> bool:
    """No ``Origin`` header (not a browser's cross-site request), or one naming this very host."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def require_role(role: str) -> Callable[[Request], Awaitable[AuthSession]]:
    """Dependency: the session of a user with at least ``role`` (a lead has every agent right).

    401 without a live session, 403 for a lower role, and 403 for a state-changing request without
    the session's CSRF token or from another origin.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")

    async def dependency(request: Request) -> AuthSession:
        auth = await current_session(request)
        if auth is None:
            raise HTTPException(401, {"error": "not_logged_in", "message": "Your session has ended. Log in again."})
        if request.method not in SAFE_METHODS and (
                not same_origin(request) or not csrf_ok(auth, request.headers.get(CSRF_HEADER))):
            raise HTTPException(403, {"error": "csrf", "message": "This request could not be verified (missing "
                                                                  "or wrong CSRF token). Reload the page."})
        if not auth.user.has_role(role):
            raise HTTPException(403, {"error": "forbidden", "message": f"This needs the {role} role."})
        return auth

    return dependency
