"""Relay to Rasa's REST channel over one pooled HTTP client with timeouts."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

# Rasa took the message in (it is in the conversation) but could not answer it: asking again is a new turn.
APOLOGY = ("Sorry, I'm having trouble answering right now and couldn't answer that. "
           "Please ask me again in a minute.")
HELD = ("Sorry, I'm having trouble answering right now. I've kept your message and will answer it here as soon "
        "as I'm back.")
# Rasa did not answer in time: it may have taken the message or not. It is kept, and the replay checks Rasa's
# tracker for its id before sending it again (bot.held_messages.replay), so it is answered once.
TAKING_LONGER = ("I'm taking longer than usual. Your message is saved, and I'll answer it here as soon as I can "
                 "(no need to send it again).")
HELD_MORE = "Got it. I'll answer that too as soon as I'm back."
NOT_REACHED = (502, 503, 504)  # a proxy's answer: the request never got to a Rasa server
# The gateway's id of each shopper message, in the metadata Rasa keeps on the user event: the idempotency key
# that tells a replay whether Rasa already took the message.
MESSAGE_ID = "message_id"
# The request went out but no answer came back: Rasa may have taken the message, or not.
UNSURE = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class RasaUnavailable(RuntimeError):
    """Rasa (or the action server behind it) could not answer.

    ``reached`` is False only when the message certainly never got to Rasa (it may be sent again without
    a duplicate); a failure inside Rasa may have been recorded, so it is True there. ``unsure``: the request
    went out and no answer came (a read timeout, a dropped connection), so whether Rasa took the message is
    unknown: the gateway keeps it and the replay asks Rasa's tracker (:meth:`RasaClient.answer_to`) first.
    """

    def __init__(self, message: str, reached: bool = True, unsure: bool = False) -> None:
        super().__init__(message)
        self.reached = reached
        self.unsure = unsure

    @property
    def keep(self) -> bool:
        """Whether the gateway holds the message for the replay: never reached Rasa, or maybe not."""
        return not self.reached or self.unsure


def bot_output(recipient_id: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``bot`` event of the tracker as Rasa's REST channel sent it (``CollectingOutputChannel``): the text
    with its buttons (or cut at blank lines when it has none), then ``custom``, ``image`` and ``attachment``
    each as a message of its own."""
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    text, buttons = event.get("text"), data.get("quick_replies") or data.get("buttons")
    out: list[dict[str, Any]] = []
    if buttons:
        out.append({"recipient_id": recipient_id, "text": text, "buttons": buttons})
    elif text:
        out += [{"recipient_id": recipient_id, "text": part} for part in str(text).strip().split("\n\n")]
    out += [{"recipient_id": recipient_id, key: data[key]} for key in ("custom", "image", "attachment")
            if data.get(key)]
    return out


class RasaClient:
    def __init__(self, base_url: str, timeout_s: float = 20.0, actions_url: str | None = None,
                 token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        # Rasa's HTTP API (``--auth-token``) wants ``?token=``; the REST webhook the same token as a bearer
        # header (rasa_addons/rest_channel.py), which stays out of access logs.
        self._api_params: dict[str, str] = {"token": token} if token else {}
        self._webhook_headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        self.actions_url = actions_url.rstrip("/") if actions_url else None
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=2.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict]:
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {}}
        try:
            response = await self._http.post(f"{self.base_url}/webhooks/rest/webhook", json=body,
                                             headers=self._webhook_headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RasaUnavailable(f"rasa could not be reached: {exc!r}", reached=False) from exc
        except UNSURE as exc:
            raise RasaUnavailable(f"rasa did not answer in time: {exc!r}", unsure=True) from exc
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

    async def answer_to(self, conversation_id: str, message_id: str) -> tuple[list[dict[str, Any]] | None, bool]:
        """What Rasa answered to the shopper message with this id (``metadata.message_id``), as the REST
        channel would have returned it, or ``None`` when Rasa's tracker has no such message (it never took
        it); and whether the bot is paused in the conversation (a person has it: Rasa only records).

        Rasa saves a turn when it ends, so a message found here went through its whole turn.
        """
        url = f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/tracker"
        try:
            response = await self._http.get(url, params={"include_events": "ALL", **self._api_params})
            response.raise_for_status()
            state = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(f"rasa did not answer: {exc!r}", unsure=True) from exc
        events = state.get("events") if isinstance(state, dict) else None
        if not isinstance(events, list):
            raise RasaUnavailable(f"unexpected tracker from rasa: {state!r:.200}", unsure=True)
        replies: list[dict[str, Any]] | None = None
        for event in events:
            if not isinstance(event, dict):
                continue
            if event.get("event") == "user":
                if replies is not None:
                    break  # the shopper's next message: the answer ends here
                if (event.get("metadata") or {}).get(MESSAGE_ID) == message_id:
                    replies = []
            elif event.get("event") == "bot" and replies is not None:
                replies += bot_output(conversation_id, event)
        return replies, bool(state.get("paused"))

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
