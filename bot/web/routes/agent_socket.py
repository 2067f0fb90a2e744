"""The agent inbox's live queue: the ``/ws/agent`` websocket of a logged-in agent.

Frames, server to browser: ``hello`` (the user), ``queue`` (every open ticket, on connect and every 20 s),
``ticket_opened`` / ``ticket_updated`` / ``ticket_resolved`` (one queue row), ``conversation`` (the watched
ticket in full: context packet and messages), ``message`` (a new message of the watched ticket), ``pong``
and ``error``. Browser to server: ``watch`` (``ticket_id``), ``unwatch``, ``ping``. Close codes: 4401 (log in
again), 4408 (fell behind: reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError

from bot.auth import sessions
from bot.auth.users import UserView
from bot.auth.web import SESSION_COOKIE, current_session, same_origin
from bot.handoff import tickets
from bot.handoff.agent_inbox import AgentInbox
from bot.ids import MAX_ID
from bot.web.hub import Subscription, queue_topic, ticket_topic
from bot.web.routes.tickets import inbox_of

PRESENCE_EVERY_S = 20.0

router = APIRouter()


class WatchFrame(BaseModel):
    type: str = Field(max_length=20)
    ticket_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class AgentConnection:
    """One agent's open ``/ws/agent``: the queue subscription, the watched ticket and the presence heartbeat."""

    def __init__(self, websocket: WebSocket, inbox: AgentInbox, user: UserView, token: str | None) -> None:
        self.websocket = websocket
        self.inbox = inbox
        self.user = user
        self.token = token
        self.send_lock = asyncio.Lock()
        self.queue_sub: Subscription | None = None
        self.watched: Subscription | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_json(frame)

    async def forward(self, subscription: Subscription) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            async for event in subscription:
                await self.send(event)
            if subscription.overflowed:  # fell behind: start over with a fresh state
                await self.websocket.close(code=4408, reason="too slow, reconnect")

    def still_here(self, session: Any) -> bool:
        """The session is still live (not logged out, not expired): the agent counts as online."""
        if sessions.load_session(session, self.token) is None:
            return False
        tickets.touch_presence(session, self.user.id, self.user.username)
        return True

    async def heartbeat(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                if not await self.inbox.db(self.still_here):
                    await self.websocket.close(code=4401, reason="session ended")
                    return
                await self.send({"type": "queue", "tickets": await self.inbox.queue(),
                                 "agents_online": await self.inbox.db(tickets.agents_online)})
                await asyncio.sleep(PRESENCE_EVERY_S)

    async def run(self) -> None:
        """Until the browser goes: the queue, the heartbeat, and the browser's frames."""
        self.inbox.socket_opened(self.user.id)
        self.queue_sub = self.inbox.hub.subscribe(queue_topic())
        self.tasks.append(asyncio.create_task(self.forward(self.queue_sub)))
        try:
            await self.send({"type": "hello", "user": self.user.as_dict()})
            self.tasks.append(asyncio.create_task(self.heartbeat()))
            while True:
                await self.receive(await self.websocket.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await self.close()

    async def receive(self, raw: str) -> None:
        try:
            frame = WatchFrame.model_validate_json(raw)
        except ValidationError:
            await self.send({"type": "error", "text": "That frame could not be read."})
            return
        if frame.type in ("watch", "unwatch"):
            await self.watch(frame.ticket_id if frame.type == "watch" else None)
        elif frame.type == "ping":
            user = self.user
            await self.inbox.db(lambda s: tickets.touch_presence(s, user.id, user.username))
            await self.send({"type": "pong"})

    async def watch(self, ticket_id: int | None) -> None:
        """Stop watching the current ticket; then watch ``ticket_id`` (None: none), starting with it in full."""
        if self.watched is not None:
            self.watched.close()
            self.watched = None
        if self.watch_task is not None:
            self.watch_task.cancel()
            self.watch_task = None
        if ticket_id is None:
            return
        self.watched = self.inbox.hub.subscribe(ticket_topic(ticket_id))
        self.watch_task = asyncio.create_task(self.forward(self.watched))
        try:
            await self.send({"type": "conversation", "ticket": await self.inbox.full(ticket_id)})
        except tickets.TicketNotFound:
            await self.send({"type": "error", "text": f"Ticket {ticket_id} does not exist."})

    async def close(self) -> None:
        if self.queue_sub is not None:
            self.queue_sub.close()
        if self.watched is not None:
            self.watched.close()
        for task in [*self.tasks, *([self.watch_task] if self.watch_task else [])]:
            task.cancel()
        if self.inbox.socket_closed(self.user.id) == 0:
            user_id = self.user.id
            with contextlib.suppress(Exception):
                await self.inbox.db(lambda s: tickets.clear_presence(s, user_id))


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    """The live queue and the watched conversation, for a logged-in agent (close 4401: log in again)."""
    await websocket.accept()
    auth = await current_session(websocket)
    if auth is None or not auth.user.has_role("agent") or not same_origin(websocket):
        await websocket.close(code=4401, reason="log in first")
        return
    await AgentConnection(websocket, inbox_of(websocket), auth.user, websocket.cookies.get(SESSION_COOKIE)).run()
