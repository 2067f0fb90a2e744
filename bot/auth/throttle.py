"""Failed staff logins, counted in the database so that every gateway replica sees the same count.

A login is refused while (:meth:`LoginThrottle.login_blocked`):
- this name from this address failed ``limit`` times (10) in the window (15 minutes): guessing one account;
- this address failed ``limit`` times, whatever the names: guessing many accounts from one place;
- this name failed ``name_limit`` times (100) from anywhere: a guess spread over many addresses.
So ten wrong passwords from rotating addresses no longer lock a member of staff out: their right password
from their own address still works until the name's much higher limit is reached.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.auth.tables import LoginFailure
from bot.clock import utcnow


class LoginThrottle:
    """At most ``limit`` failed logins per key (``user:<name>``, ``addr:<address>``) in ``window_s``."""

    def __init__(self, limit: int = 10, window_s: float = 900.0, name_limit: int = 100) -> None:
        self.limit = limit
        self.window_s = window_s
        self.name_limit = name_limit

    @staticmethod
    def login_keys(username: str, address: str) -> tuple[str, str, str]:
        """(name and address together, address, name): the keys a login attempt counts under."""
        name = username.strip().lower()
        return f"user:{name}|addr:{address}", f"addr:{address}", f"user:{name}"

    def login_blocked(self, session: Session, username: str, address: str, now: datetime | None = None) -> bool:
        pair, addr, name = self.login_keys(username, address)
        counts = self._counts(session, (pair, addr, name), now)
        return counts.get(pair, 0) >= self.limit or counts.get(addr, 0) >= self.limit \
            or counts.get(name, 0) >= self.name_limit

    def login_failed(self, session: Session, username: str, address: str, now: datetime | None = None) -> None:
        self.failed(session, *self.login_keys(username, address), now=now)

    def login_succeeded(self, session: Session, username: str, address: str) -> None:
        pair, _, name = self.login_keys(username, address)
        self.succeeded(session, pair)
        self.succeeded(session, name)

    def _counts(self, session: Session, keys: tuple[str, ...], now: datetime | None) -> dict[str, int]:
        since = self._since(now or utcnow())
        rows = session.execute(select(LoginFailure.key, func.count()).where(
            LoginFailure.key.in_([k[:240] for k in keys]), LoginFailure.at > since).group_by(LoginFailure.key))
        return {key: n for key, n in rows}

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
