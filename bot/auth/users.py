"""Agent and lead accounts: create, list, authenticate. Every function takes a Session and commits nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.auth.passwords import hash_password, needs_rehash, verify_password
from bot.auth.tables import AGENT, LEAD, ROLES, User
from bot.clock import utcnow

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,59}$")
ROLE_RANK = {AGENT: 1, LEAD: 2}  # a lead can do everything an agent can



class UserExists(ValueError):
    def __init__(self, username: str) -> None:
        super().__init__(f"a user named {username!r} already exists")
        self.username = username


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    role: str
    display_name: str
    active: bool
    created_at: datetime

    @property
    def name(self) -> str:
        """What the shopper and other agents see."""
        return self.display_name or self.username

    def has_role(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role, "name": self.name,
                "active": self.active}


def view_of(user: User) -> UserView:
    return UserView(user.id, user.username, user.role, user.display_name, bool(user.active), user.created_at)


def normalise_username(username: str) -> str:
    value = (username or "").strip().lower()
    if not USERNAME.match(value):
        raise ValueError("a username is 2 to 60 characters: lower-case letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return value


def create_user(session: Session, username: str, password: str, role: str = AGENT,
                display_name: str | None = None, now: datetime | None = None) -> UserView:
    """A new active user; ValueError for a bad username, role or password, UserExists for a taken name."""
    name = normalise_username(username)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    shown = (display_name or "").strip()
    if len(shown) > 120:
        raise ValueError("a display name can be at most 120 characters")
    if session.scalar(select(func.count()).select_from(User).where(User.username == name)):
        raise UserExists(name)
    user = User(username=name, password_hash=hash_password(password), role=role, display_name=shown, active=True,
                created_at=now or utcnow())
    session.add(user)
    session.flush()
    return view_of(user)


def list_users(session: Session) -> list[UserView]:
    return [view_of(u) for u in session.scalars(select(User).order_by(User.username))]


def get_user(session: Session, user_id: int) -> UserView | None:
    user = session.get(User, user_id)
    return view_of(user) if user is not None else None


def names(session: Session, user_ids: set[int]) -> dict[int, str]:
    """Display names (or usernames) by id."""
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.display_name, User.username).where(User.id.in_(user_ids)))
    return {uid: shown or username for uid, shown, username in rows}


def authenticate(session: Session, username: str, password: str) -> UserView | None:
    """The active user these credentials belong to, else None (same work whether or not the name exists)."""
    try:
        name = normalise_username(username)
    except ValueError:
        name = ""
    user = session.scalar(select(User).where(User.username == name)) if name else None
    if not verify_password(user.password_hash if user is not None else None, password):
        return None
    assert user is not None
    if not user.active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.flush()
    return view_of(user)

