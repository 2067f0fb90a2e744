"""Relay to Rasa's REST channel over one pooled HTTP client with timeouts."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

APOLOGY = ("Sorry, I'm having trouble answering right now and couldn't take in your message. "
           "Please send it again in a minute.")
HELD = ("Sorry, I'm having trouble answering right now. I've kept your message and will answer it here as soon "
        "as I'm back.")
HELD_MORE = "Got it. I'll answer that too as soon as I'm back."
NOT_REACHED = (502, 503, 504)  # a proxy's answer: the request never got to a Rasa server


class RasaUnavailable(RuntimeError):
    """Rasa (or the action server behind it) could not answer.

    ``reached`` is False only when the message certainly never got to Rasa (it may be sent again without
    a duplicate); a timeout or a failure inside Rasa may have been recorded, so it is True there.
    """

    def __init__(self, message: str, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached


class RasaClient:
    def __init__(self, base_url: str, timeout_s: float = 20.0, actions_url: str | None = None,
                 token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        # Rasa's HTTP API (``--auth-token``) wants ``?token=``; the REST channel's webhook takes none.
        self._api_params: dict[str, str] = {"token": token} if token else {}
        self.actions_url = actions_url.rstrip("/") if actions_url else None
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=2.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict]:
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {}}
        try:
            response = await self._http.post(f"{self.base_url}/webhooks/rest/webhook", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise RasaUnavailable(f"rasa could not be reached: {exc!r}", reached=False) from exc
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"rasa did not answer: {exc!r}") from exc
        if response.status_code in NOT_REACHED:
            raise RasaUnavailable(f"rasa could not be reached: HTTP {response.status_code}", reached=False)
        try:
            response.raise_for_status()
            replies = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(f"rasa did not answer: {exc!r}") from exc
        if not isinstance(replies, list):
            raise RasaUnavailable(f"unexpected reply from rasa: {replies!r:.200}")
        if not replies and not await self.actions_healthy():
            # Rasa swallows action-server failures and answers with nothing at all.
            raise RasaUnavailable("action server is down")
        return replies

    async def append_events(self, conversation_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Append events to the conversation's tracker through Rasa's HTTP API (needs ``--enable-api``),
        e.g. ``{"event": "pause"}``, ``{"event": "resume"}`` or ``{"event": "bot", "text": ...}``.
        Returns the tracker's state without its events."""
        url = f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/tracker/events"
        try:
            response = await self._http.post(url, json=events, params={"include_events": "NONE", **self._api_params})
            response.raise_for_status()
            state = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(f"rasa did not take the events: {exc!r}") from exc
        if not isinstance(state, dict):
            raise RasaUnavailable(f"unexpected reply from rasa: {state!r:.200}")
        return state

    async def is_paused(self, conversation_id: str) -> bool:
        """Whether the bot is paused (``ConversationPaused``) in this conversation."""
        url = f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/tracker"
        try:
            response = await self._http.get(url, params={"include_events": "NONE", **self._api_params})
            response.raise_for_status()
            state = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(f"rasa did not answer: {exc!r}") from exc
        return bool(isinstance(state, dict) and state.get("paused"))

    async def check(self, url: str) -> tuple[bool, str]:
        try:
            response = await self._http.get(url, timeout=3.0)
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        return response.status_code < 400, f"HTTP {response.status_code}"

    async def actions_healthy(self) -> bool:
        if self.actions_url is None:
            return True
        ok, _ = await self.check(f"{self.actions_url}/health")
        return ok

    async def aclose(self) -> None:
        await self._http.aclose()
