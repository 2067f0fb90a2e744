"""The widget's websocket ``/ws/chat``: the shopper's messages, identity and ratings in, Rasa's replies and what
agents say out.

Frames in: ``hello`` (a token, or none for a guest), ``message`` (text, or a button's payload with its words),
``rating``. Frames out: ``identity``, ``typing``, ``bot``, ``handoff`` (after a reload), ``rating_saved`` /
``rating_refused``, ``error``, and whatever agents push on the conversation's hub topic.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from bot.config import Settings
from bot.conversation.pipeline import RATING_THANKS, RatingRefused, ShopperPipeline
from bot.conversation.requests import CONVERSATION_ID, MAX_FRAME_DEPTH, WidgetMessage
from bot.shop.identity import InvalidToken
from bot.web import security
from bot.web.hub import Hub, Subscription, conversation_topic

router = APIRouter()
SIGN_IN_FAILED = "Your sign-in could not be confirmed ({reason}), so you're chatting as a guest."


def unreadable_frame(exc: ValidationError) -> str:
    """The widget's answer to a frame it cannot take, naming the first field that is wrong (not its value)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid" or not field:
        return "That message could not be read."
    return f"That message could not be read ({field}: {first['msg']})."


class WidgetSocket:
    """One widget connection of one conversation: its frames to the pipeline, the answers and agents' pushes back."""

    def __init__(self, websocket: WebSocket, conversation_id: str, pipeline: ShopperPipeline, hub: Hub,
                 max_frame_bytes: int) -> None:
        self.websocket = websocket
        self.conversation_id = conversation_id
        self.pipeline = pipeline
        self.hub = hub
        self.max_frame_bytes = max_frame_bytes
        self.customer_id: int | None = None  # set by a "hello" (or a message) that carries a valid token
        self.client_host = websocket.client.host if websocket.client else None
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_json(frame)

    async def run(self) -> None:
        pushes = self.hub.subscribe(conversation_topic(self.conversation_id), maxsize=100)
        pushing = asyncio.create_task(self.from_agents(pushes))
        try:
            while True:
                message = await self.next_message()
                if message is not None:
                    await self.handle(message)
        except WebSocketDisconnect:
            return
        finally:
            pushes.close()
            pushing.cancel()

    async def from_agents(self, pushes: Subscription) -> None:
        """What agents say to this conversation (and handback, rating requests), as it happens."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            async for event in pushes:
                await self.send(event)
            if pushes.overflowed:
                await self.websocket.close(code=1013, reason="too slow, reconnect")

    async def next_message(self) -> WidgetMessage | None:
        """The next frame, read and checked; None (after telling the widget why) when it cannot be taken."""
        try:
            raw = await security.receive_frame(self.websocket, self.max_frame_bytes)
        except security.BadFrame as exc:
            await self.send({"type": "error", "text": str(exc)})
            return None
        if (problem := security.frame_problem(raw, MAX_FRAME_DEPTH)) is not None:
            await self.send({"type": "error", "text": problem})
            return None
        try:
            return WidgetMessage.model_validate_json(raw)
        except ValidationError as exc:
            await self.send({"type": "error", "text": unreadable_frame(exc)})
            return None

    async def handle(self, message: WidgetMessage) -> None:
        if message.type == "hello" or (message.type == "message" and message.token is not None):
            await self.identify(message.token)
            if message.type == "hello" and (state := await self.pipeline.widget_state(self.conversation_id)):
                await self.send(state)  # waiting for an agent, or talking to one (after a reload)
        if message.type == "rating":
            await self.rate(message)
            return
        text = (message.payload or message.text).strip()
        if message.type != "message" or not text:
            return
        if (limited := await self.pipeline.limited(self.conversation_id, self.client_host)) is not None:
            await self.send(security.rate_limited_frame(limited))
            return
        # a button press reaches Rasa as its payload, the agent as the words the shopper clicked
        answer = await self.pipeline.message(self.conversation_id, text, channel="widget",
                                             customer_id=self.customer_id, client_host=self.client_host,
                                             clicked=message.text.strip() if message.payload else None,
                                             payloads=True, on_stored=self.typing)
        if answer.replies or not answer.with_agent:
            await self.send({"type": "bot", "messages": answer.replies})
        if not answer.with_agent:
            await self.send({"type": "typing", "on": False})

    async def typing(self, with_agent: bool) -> None:
        """The typing indicator while Rasa answers; not while a person has the conversation."""
        if not with_agent:
            await self.send({"type": "typing", "on": True})

    async def identify(self, token: str | None) -> None:
        self.customer_id = None
        if not token:
            await self.send({"type": "identity", "signed_in": False})
            return
        try:
            self.customer_id = await self.pipeline.identify(self.conversation_id, token)
        except InvalidToken as exc:
            await self.send({"type": "identity", "signed_in": False, "reason": exc.reason,
                             "text": SIGN_IN_FAILED.format(reason=exc.reason)})
            return
        await self.send({"type": "identity", "signed_in": True})

    async def rate(self, message: WidgetMessage) -> None:
        if message.ticket_id is None or message.rating is None:
            await self.send({"type": "error", "text": "A rating needs a ticket and a number from 1 to 5."})
            return
        try:
            await self.pipeline.rate(self.conversation_id, message.ticket_id, message.rating)
        except RatingRefused as exc:
            await self.send({"type": "rating_refused", "ticket_id": message.ticket_id,
                             "text": "That rating could not be saved: " + exc.message})
            return
        await self.send({"type": "rating_saved", "ticket_id": message.ticket_id, "rating": message.rating,
                         "text": RATING_THANKS})


@router.websocket("/ws/chat")
async def chat_socket(
    websocket: WebSocket, conversation_id: Annotated[str, Query(pattern=CONVERSATION_ID)]
) -> None:
    settings: Settings = websocket.app.state.settings
    if not security.origin_allowed(websocket, security.allowed_origins(settings), settings.public_url):
        # accepted only to say why: a refused handshake (HTTP 403) reaches the page as a bare 1006, which the
        # widget cannot tell from a network failure; close code 4403 it shows to the shopper
        await websocket.accept()
        await websocket.close(code=4403, reason="origin not allowed")
        return
    await websocket.accept()
    await WidgetSocket(websocket, conversation_id, websocket.app.state.pipeline, websocket.app.state.hub,
                       settings.max_ws_frame_bytes).run()
