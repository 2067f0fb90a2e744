"""A real gateway (uvicorn) on a free 127.0.0.1 port, in a thread, for tests that need real HTTP and websockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import uvicorn

from bot.config import Settings
from bot.web.app import create_app
from tests.conftest import free_port


@contextmanager
def running_gateway(settings: Settings, **uvicorn_options: Any) -> Iterator[str]:
    """Serve ``create_app(settings)``; yields the base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    uvicorn_options.setdefault("proxy_headers", False)  # as every command that starts the gateway runs it
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


def down_url() -> str:
    """A URL where nothing listens (Rasa and the action server 'down')."""
    return f"http://127.0.0.1:{free_port()}"



class Endpoint:
    """Where a gateway listens: its HTTP base URL and the matching websocket base URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws_url = "ws" + url.removeprefix("http")


class Gateway(Endpoint):
    """``running_gateway`` as an object, for fixtures that hold it: started on creation, stopped by ``close()``."""

    def __init__(self, settings: Settings, **uvicorn_options: Any) -> None:
        self._stack = ExitStack()
        super().__init__(self._stack.enter_context(running_gateway(settings, **uvicorn_options)))

    def close(self) -> None:
        self._stack.close()
