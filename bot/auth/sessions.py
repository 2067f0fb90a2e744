"""Server-side login sessions and their CSRF tokens.

The browser holds a random token (256 bits) in an HttpOnly cookie; the table holds its SHA-256, the
user, a per-session CSRF token and the expiry. A session ends at logout, after ``ttl`` (default
12 hours, a working day), after ``idle`` without any request (default 2 hours), or when its user is
deactivated. Every function takes a Session and commits nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.auth.tables import User, UserSession
from bot.auth.users import UserView, utcnow, view_of
from bot.db import rows_affected

SESSION_TTL = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(hours=2)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen is written at most this often
MAX_TOKEN = 256


@dataclass(frozen=True)
class AuthSession:
    """A logged-in user, as a request sees it."""

    id: str  # sha256 of the cookie's token
    user: UserView
    csrf_token: str
    expires_at: datetime


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: UserView, now: datetime | None = None,
                  ttl: timedelta = SESSION_TTL) -> tuple[str, AuthSession]:
    """A new session for ``user``: ``(token for the cookie, session)``. Expired rows are cleared on the way."""
    now = now or utcnow()
    purge_expired(session, now)
    token = secrets.token_urlsafe(32)
    row = UserSession(id=session_id(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32), created_at=now,
                      expires_at=now + ttl, last_seen=now)
    session.add(row)
    session.flush()
    return token, AuthSession(row.id, user, row.csrf_token, row.expires_at)


def load_session(session: Session, token: str | None, now: datetime | None = None,
                 idle: timedelta = IDLE_TIMEOUT) -> AuthSession | None:
    """The live session of this cookie token, or None (unknown, expired, idle too long, user inactive)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    now = now or utcnow()
    found = session.execute(select(UserSession, User).join(User, User.id == UserSession.user_id)
                            .where(UserSession.id == session_id(token))).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= now or row.last_seen + idle <= now or not user.active:
        session.delete(row)
        session.flush()
        return None
    if now - row.last_seen >= TOUCH_EVERY:
        row.last_seen = now
        session.flush()
    return AuthSession(row.id, view_of(user), row.csrf_token, row.expires_at)


def end_session(session: Session, token: str | None) -> bool:
    """Log out: the session is gone (True when there was one)."""
    if not token or len(token) > MAX_TOKEN:
        return False
    return bool(rows_affected(session.execute(delete(UserSession).where(UserSession.id == session_id(token)))))


def end_user_sessions(session: Session, user_id: int) -> int:
    return rows_affected(session.execute(delete(UserSession).where(UserSession.user_id == user_id)))


def purge_expired(session: Session, now: datetime | None = None, idle: timedelta = IDLE_TIMEOUT) -> int:
    now = now or utcnow()
    return rows_affected(session.execute(delete(UserSession).where(
        (UserSession.expires_at <= now) | (UserSession.last_seen <= now - idle))))


def csrf_ok(auth: AuthSession, presented: str | None) -> bool:
    """The request carries this session's CSRF token (constant-time comparison)."""
    return bool(presented) and hmac.compare_digest(auth.csrf_token.encode(), (presented or "").encode())
