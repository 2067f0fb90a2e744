"""Failed staff logins, counted in the database so that every gateway replica sees the same count."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.auth.models import LoginFailure
from bot.clock import utcnow


class LoginThrottle:
    """At most ``limit`` failed logins per key (``user:<name>``, ``addr:<address>``) in ``window_s``."""

    def __init__(self, limit: int = 10, window_s: float = 900.0) -> None:
        self.limit = limit
        self.window_s = window_s

    def _since(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.window_s)

    def blocked(self, session: Session, *keys: str, now: datetime | None = None) -> bool:
        since = self._since(now or utcnow())
        counts = session.execute(select(LoginFailure.key, func.count()).where(
            LoginFailure.key.in_([k[:240] for k in keys]), LoginFailure.at > since).group_by(LoginFailure.key))
        return any(n >= self.limit for _, n in counts)

    def failed(self, session: Session, *keys: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        session.execute(delete(LoginFailure).where(LoginFailure.at <= self._since(now)))  # keeps the table small
        session.add_all(LoginFailure(key=k[:240], at=now) for k in keys)

    def succeeded(self, session: Session, key: str) -> None:
        session.execute(delete(LoginFailure).where(LoginFailure.key == key[:240]))
