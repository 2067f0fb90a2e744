"""The chat widget in a real browser page with its chat socket played by the test (Playwright's socket routes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def play_chat_socket(page: Any, on_socket: Callable[[Any], None] | None = None) -> list[Any]:
    """Route the page's ``/ws/chat`` to the test; returns the list its sockets are appended to (after ``on_socket``)."""
    sockets: list[Any] = []

    def opened(ws: Any) -> None:
        if on_socket is not None:
            on_socket(ws)
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/chat"), opened)
    return sockets


def open_widget(page: Any, sockets: list[Any]) -> Any:
    """Click the widget's bubble and wait (5 s at most) for its chat socket; returns that socket."""
    page.get_by_test_id("sa-bubble").click()
    for _ in range(100):
        if sockets:
            break
        page.wait_for_timeout(50)
    assert sockets, "the widget did not open its chat socket"
    return sockets[0]
