"""The lead console served by a real gateway with a lead signed up, for the browser tests of the console."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.auth import users
from bot.config import Settings
from bot.db import session_scope
from tests.support.gateway_server import running_gateway


@dataclass
class Console:
    url: str
    settings: Settings
    lead_id: int
    lead_username: str
    tmp: Path


@contextmanager
def lead_console(settings: Settings, tmp: Path, username_prefix: str, password: str, name: str) -> Iterator[Console]:
    """Serve the gateway on ``settings`` (its start migrates a new database) and add a lead to its database."""
    with running_gateway(settings) as url:
        username = f"{username_prefix}-{uuid.uuid4().hex[:6]}"
        with session_scope(settings.database_url) as session:
            lead = users.create_user(session, username, password, "lead", name)
        yield Console(url, settings, lead.id, username, tmp)
