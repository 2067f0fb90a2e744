"""Signing a member of staff in to the consoles through the real login form, for API tests with TestClient."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from bot.auth import users


def login(client: TestClient, user: users.UserView, password: str) -> str:
    """Log ``user`` in with ``password`` (the form's CSRF token included); returns the session's CSRF token."""
    form = client.get("/agent/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text
    done = client.post("/agent/login", data={"username": user.username, "password": password,
                                             "csrf": token.group(1)}, follow_redirects=False)
    assert done.status_code == 303, done.text
    return str(client.get("/agent/api/me").json()["csrf_token"])
