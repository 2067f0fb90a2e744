"""Agent inbox: login and logout, the inbox page, the live queue (``/ws/agent``) and ticket actions.

:class:`Inbox` is what the shopper's chat (``bot.web.app``) and the agents' side share: tickets in
the database (``bot.handoff.tickets``), Rasa's tracker (pause, resume, agent lines appended as bot
events) and live pushes through the :class:`~bot.web.hub.Hub`.

Agent websocket frames, server to browser: ``hello`` (the user), ``queue`` (every open ticket, on
connect and every 20 s), ``ticket_opened`` / ``ticket_updated`` / ``ticket_resolved`` (one queue row),
``conversation`` (the watched ticket in full: context packet and messages) and ``message`` (a new
message of the watched ticket). Browser to server: ``watch`` (``ticket_id``), ``unwatch``, ``ping``.
Actions are JSON POSTs under ``/agent/api/`` with the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import HTTPConnection

from bot.auth import sessions, users
from bot.auth.sessions import AuthSession
from bot.auth.throttle import LoginThrottle
from bot.auth.web import (
    SESSION_COOKIE,
    clear_session_cookie,
    cookie_secure,
    current_session,
    require_role,
    same_origin,
    set_session_cookie,
)
from bot.config import Settings
from bot.db import in_session
from bot.handoff import tickets
from bot.handoff.context import iso
from bot.handoff.models import AGENT, CLAIMED, NOTE, RESOLVED, SHOPPER, Ticket, TicketMessage
from bot.ids import MAX_ID
from bot.sentiment import score
from bot.web.hub import Hub, Subscription, conversation_topic, queue_topic, ticket_topic
from bot.web.params import AUTH_RESPONSES, CONFLICT, NOT_FOUND, IdPath
from bot.web.rasa_client import RasaClient, RasaUnavailable

log = logging.getLogger("bot.web.agent")
STATIC = Path(__file__).resolve().parent / "static"
T = TypeVar("T")

LOGIN_CSRF_COOKIE = "shop_login_csrf"
PRESENCE_EVERY_S = 20.0
MAX_REPLY = 2000
BACK_WITH_BOT = "You're back with the shop assistant. Ask me anything, any time."
RATING_ASK = "How did we do? Rate this chat from 1 (poor) to 5 (great)."
REQUEUED = "Your chat went back to the queue; the next available person will pick it up. Your messages are kept."


# --------------------------------------------------------------------------- shared with the shopper's side


def _message_dict(m: TicketMessage) -> dict[str, Any]:
    return {"id": m.id, "ticket_id": m.ticket_id, "role": m.role, "author": m.author, "text": m.text,
            "sentiment": m.sentiment, "created_at": iso(m.created_at)}


def _summary(view: tickets.TicketView, assignee_name: str | None) -> dict[str, Any]:
    data = view.as_dict()
    data.pop("context", None)
    data.pop("messages", None)
    data["assignee_name"] = assignee_name
    return data


class Inbox:
    """Tickets, Rasa's tracker and live pushes, for the gateway's chat and the agent inbox alike."""

    def __init__(self, settings: Settings, hub: Hub, rasa: RasaClient) -> None:
        self.settings = settings
        self.hub = hub
        self.rasa = rasa
        self.on_ticket_opened: Callable[[], None] | None = None  # e.g. wake the helpdesk outbox worker
        self._sockets_per_user: dict[int, int] = defaultdict(int)

    async def db(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(session, *args)`` in one transaction on a worker thread."""
        return await in_session(self.settings.database_url, work, *args)

    # ----------------------------------------------------------------- reading

    @staticmethod
    def _queue(session: Any) -> list[dict[str, Any]]:
        views = tickets.queue(session)
        named = users.names(session, {v.assignee_id for v in views if v.assignee_id})
        return [_summary(v, named.get(v.assignee_id) if v.assignee_id else None) for v in views]

    async def queue(self) -> list[dict[str, Any]]:
        return await self.db(self._queue)

    @staticmethod
    def _full(session: Any, ticket_id: int) -> dict[str, Any]:
        view = tickets.get_view(session, ticket_id)
        named = users.names(session, {view.assignee_id} if view.assignee_id else set())
        data = view.as_dict()
        data["assignee_name"] = named.get(view.assignee_id) if view.assignee_id else None
        return data

    async def full(self, ticket_id: int) -> dict[str, Any]:
        return await self.db(self._full, ticket_id)

    async def announce(self, ticket_id: int, kind: str = "ticket_updated", full: bool = True) -> None:
        """Tell the agents: the queue row (``kind``) to everyone, and the whole ticket to its watchers."""
        try:
            data = await self.full(ticket_id)
        except tickets.TicketNotFound:
            return
        row = {k: v for k, v in data.items() if k not in ("context", "messages")}
        if data["status"] == RESOLVED:
            kind = "ticket_resolved"
        self.hub.publish(queue_topic(), {"type": kind, "ticket": row})
        if full:
            self.hub.publish(ticket_topic(ticket_id), {"type": "conversation", "ticket": data})

    # ----------------------------------------------------------------- the shopper's side

    async def shopper_said(self, conversation_id: str, text: str) -> dict[str, Any] | None:
        """Store a shopper's message on the conversation's open ticket and push it to the agents.

        Returns ``{"id", "status", "assignee_id"}`` of that ticket, or None when there is none.
        """
        def store(session: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
            ticket = tickets.open_ticket_for(session, conversation_id)
            if ticket is None:
                return None
            message = tickets.add_message(session, ticket.id, SHOPPER, text[:tickets.MAX_MESSAGE],
                                          sentiment=score(text).compound)
            return ({"id": ticket.id, "status": ticket.status, "assignee_id": ticket.assignee_id},
                    _message_dict(message))

        try:
            stored = await self.db(store)
        except Exception:  # the chat goes on; the message still reaches Rasa's tracker
            log.exception("conversation %s: storing the shopper's message on its ticket failed", conversation_id)
            return None
        if stored is None:
            return None
        brief, message = stored
        self.hub.publish(ticket_topic(brief["id"]), {"type": "message", "ticket_id": brief["id"], "message": message})
        await self.announce(brief["id"], "ticket_updated", full=False)
        return brief

    async def rasa_replied(self, conversation_id: str, replies: list[dict[str, Any]]) -> None:
        """A ``handoff`` payload among Rasa's replies means a ticket was just opened: put it in the queue."""
        for reply in replies:
            custom = reply.get("custom") if isinstance(reply, dict) else None
            if not isinstance(custom, dict) or custom.get("type") != "handoff":
                continue
            ticket_id = custom.get("ticket_id")
            if isinstance(ticket_id, int) and not isinstance(ticket_id, bool):
                await self.announce(ticket_id, "ticket_opened", full=True)
                if self.on_ticket_opened is not None:
                    self.on_ticket_opened()

    async def widget_state(self, conversation_id: str) -> dict[str, Any] | None:
        """What the widget shows in its header for this conversation: waiting, or talking to a person."""
        def read(session: Any) -> dict[str, Any] | None:
            ticket = tickets.open_ticket_for(session, conversation_id)
            if ticket is None:
                return None
            if ticket.status == CLAIMED and ticket.assignee_id:
                name = users.names(session, {ticket.assignee_id}).get(ticket.assignee_id) or "An agent"
                return {"type": "handoff", "state": "agent", "ticket_id": ticket.id, "name": name}
            return {"type": "handoff", "state": "queued", "ticket_id": ticket.id}

        try:
            return await self.db(read)
        except Exception:
            log.exception("conversation %s: reading its ticket failed", conversation_id)
            return None

    def to_widget(self, conversation_id: str, event: dict[str, Any]) -> int:
        return self.hub.publish(conversation_topic(conversation_id), event)

    async def rate(self, conversation_id: str, ticket_id: int, rating: int) -> None:
        """Store the shopper's rating (raises TicketNotFound, TicketError, ValueError) and tell the agents."""
        await self.db(lambda s: tickets.rate(s, ticket_id, conversation_id, rating))
        await self.announce(ticket_id, "ticket_resolved")

    # ----------------------------------------------------------------- presence

    def socket_opened(self, user_id: int) -> None:
        self._sockets_per_user[user_id] += 1

    def socket_closed(self, user_id: int) -> int:
        self._sockets_per_user[user_id] -= 1
        left = self._sockets_per_user[user_id]
        if left <= 0:
            del self._sockets_per_user[user_id]
        return max(0, left)


def inbox_of(connection: HTTPConnection) -> Inbox:
    return connection.app.state.inbox  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- pages and login

router = APIRouter(tags=["agent"], responses=AUTH_RESPONSES)  # the pages are left out of the schema
Agent = Annotated[AuthSession, Depends(require_role("agent"))]


def _csp(connection: HTTPConnection) -> str:
    host = connection.headers.get("host", "")
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'; object-src 'none'")


def _secure_headers(response: Response, connection: HTTPConnection) -> Response:
    response.headers["Content-Security-Policy"] = _csp(connection)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Agent inbox: log in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/agent/static/agent.css">
</head>
<body class="login-page">
<main class="login-card">
<h1>Agent inbox</h1>
<p class="muted">Log in to answer shoppers the assistant handed over.</p>
{error}
<form method="post" action="/agent/login" class="login-form">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="60" value="{username}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
<button type="submit" class="primary">Log in</button>
</form>
</main>
</body>
</html>
"""


def safe_next(value: str | None) -> str:
    """Where to go after logging in: one of our consoles (never another site), else the agent inbox."""
    value = (value or "").strip()
    if value.startswith(("/agent", "/admin")) and "//" not in value and "\\" not in value and len(value) <= 200:
        return value
    return "/agent"


def _login_page(connection: HTTPConnection, *, error: str = "", username: str = "", status: int = 200,
                next_url: str = "/agent") -> Response:
    """The login form, with a fresh double-submit token (cookie + hidden field) against login CSRF."""
    token = secrets.token_urlsafe(24)
    body = LOGIN_PAGE.format(
        csrf=token, username=html.escape(username, quote=True), next=html.escape(safe_next(next_url), quote=True),
        error=f'<p class="error" role="alert" data-testid="login-error">{html.escape(error)}</p>' if error else "")
    response = HTMLResponse(body, status_code=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/agent/login", httponly=True,
                        samesite="strict", secure=cookie_secure(connection))
    return _secure_headers(response, connection)


@router.get("/agent/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    if await current_session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_url=target)


@router.post("/agent/login", include_in_schema=False)
async def login(request: Request, username: Annotated[str, Form(max_length=200)] = "",
                password: Annotated[str, Form(max_length=1024)] = "",
                csrf: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=200)] = "/agent") -> Response:
    target = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not cookie or not secrets.compare_digest(cookie.encode(), csrf.encode()):
        return _login_page(request, error="The login form expired. Please try again.", username=username,
                           status=403, next_url=target)
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "-"
    inbox = inbox_of(request)
    if await inbox.db(lambda session: throttle.login_blocked(session, username, address)):
        return _login_page(request, error="Too many failed attempts. Wait 15 minutes and try again.",
                           username=username, status=429, next_url=target)

    def check(session: Any) -> tuple[str, AuthSession] | None:
        user = users.authenticate(session, username, password)
        if user is None:
            throttle.login_failed(session, username, address)
            return None
        throttle.login_succeeded(session, username, address)
        return sessions.start_session(session, user)

    started = await inbox.db(check)
    if started is None:
        return _login_page(request, error="Wrong username or password.", username=username, status=401,
                           next_url=target)
    token, auth = started
    log.info("agent %s logged in", auth.user.username)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/agent/login")
    return _secure_headers(response, request)


@router.post("/agent/logout")
async def logout(request: Request, auth: Agent) -> Response:
    """Ends the session (needs the CSRF header like every other state change)."""
    inbox = inbox_of(request)
    token = request.cookies.get(SESSION_COOKIE)

    def end(session: Any) -> None:
        sessions.end_session(session, token)
        tickets.clear_presence(session, auth.user.id)

    await inbox.db(end)
    response = JSONResponse({"ok": True, "next": "/agent/login"})
    clear_session_cookie(response, request)
    return response


@router.get("/agent", include_in_schema=False)
async def inbox_page(request: Request) -> Response:
    auth = await current_session(request)
    if auth is None:
        return RedirectResponse("/agent/login", status_code=303)
    return _secure_headers(FileResponse(STATIC / "agent.html", media_type="text/html"), request)


@router.get("/agent/static/{name}", include_in_schema=False)
async def inbox_asset(name: str) -> FileResponse:
    media = {"agent.js": "application/javascript", "agent.css": "text/css"}.get(name)
    if media is None:
        raise HTTPException(404, "Not Found")
    return FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "no-cache"})


# --------------------------------------------------------------------------- JSON API


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"error": code, "message": message})


def _ticket_error(exc: tickets.TicketError, names: dict[int, str] | None = None) -> HTTPException:
    if isinstance(exc, tickets.TicketNotFound):
        return _error(404, "not_found", f"Ticket {exc.ticket_id} does not exist.")
    if isinstance(exc, tickets.AlreadyClaimed):
        who = (names or {}).get(exc.assignee_id or 0) or "Another agent"
        return _error(409, "already_claimed", f"{who} already took this ticket.")
    if isinstance(exc, tickets.TicketClosed):
        return _error(409, "resolved", "This ticket is already resolved.")
    if isinstance(exc, tickets.NotAssignee):
        return _error(403, "not_assignee", "This ticket is not yours: claim it first, or ask a lead.")
    return _error(409, "conflict", str(exc))


class TextBody(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_REPLY)


class TransferBody(BaseModel):
    to_agent_id: int | None = Field(default=None, ge=1, le=MAX_ID,
                                    description="Another agent; null: back to the queue.")
    note: str | None = Field(default=None, max_length=500)


@router.get("/agent/api/me")
async def me(auth: Agent) -> dict[str, Any]:
    return {"user": auth.user.as_dict(), "csrf_token": auth.csrf_token}


@router.get("/agent/api/queue")
async def queue(request: Request, auth: Agent) -> dict[str, Any]:
    return {"tickets": await inbox_of(request).queue()}


@router.get("/agent/api/agents")
async def agents(request: Request, auth: Agent) -> dict[str, Any]:
    """Active users, for the transfer menu."""
    accounts = await inbox_of(request).db(users.list_users)
    return {"agents": [u.as_dict() for u in accounts if u.active]}


@router.get("/agent/api/tickets/{ticket_id}", responses=NOT_FOUND)
async def ticket(request: Request, auth: Agent, ticket_id: IdPath) -> dict[str, Any]:
    try:
        return {"ticket": await inbox_of(request).full(ticket_id)}
    except tickets.TicketError as exc:
        raise _ticket_error(exc) from exc


@router.post("/agent/api/tickets/{ticket_id}/claim", responses={**NOT_FOUND, **CONFLICT})
async def claim(request: Request, auth: Agent, ticket_id: IdPath) -> dict[str, Any]:
    """Take a queued ticket (exactly one of two agents claiming at once wins), pause the bot, tell the shopper."""
    inbox = inbox_of(request)
    now = tickets.utcnow()

    def take(session: Any) -> tuple[str, bool]:
        taken = tickets.claim(session, ticket_id, auth.user.id, agent_name=auth.user.name, now=now)
        return taken.conversation_id, taken.claimed_at == now

    try:
        conversation_id, fresh = await inbox.db(take)
    except tickets.AlreadyClaimed as exc:
        holder = {exc.assignee_id} if exc.assignee_id else set()
        names = await inbox.db(lambda s: users.names(s, holder))
        raise _ticket_error(exc, names) from exc
    except tickets.TicketError as exc:
        raise _ticket_error(exc) from exc
    paused = True
    if fresh:
        paused = await _pause(inbox, conversation_id)
        inbox.to_widget(conversation_id, {"type": "agent_joined", "name": auth.user.name})
        await inbox.announce(ticket_id)
    return {"ticket": await inbox.full(ticket_id), "paused": paused}


async def _pause(inbox: Inbox, conversation_id: str) -> bool:
    """Make sure the bot is quiet while a person talks (it keeps answering when nobody was online)."""
    try:
        if not await inbox.rasa.is_paused(conversation_id):
            # An unfinished form (e.g. the email follow-up) must not pick up again after the handback.
            await inbox.rasa.append_events(conversation_id, [{"event": "active_loop", "name": None},
                                                             {"event": "pause"}])
        return True
    except RasaUnavailable as exc:
        log.warning("conversation %s: could not pause the bot: %s", conversation_id, exc)
        return False


@router.post("/agent/api/tickets/{ticket_id}/transfer", responses={**NOT_FOUND, **CONFLICT})
async def transfer(request: Request, auth: Agent, ticket_id: IdPath,
                   body: TransferBody) -> dict[str, Any]:
    """Hand a ticket you hold to another agent, or back to the queue; a lead may move any open ticket."""
    inbox = inbox_of(request)

    def move(session: Any) -> tuple[str, str | None]:
        target_name = None
        if body.to_agent_id is not None:
            target = users.get_user(session, body.to_agent_id)
            if target is None or not target.active:
                raise _error(422, "unknown_agent", "There is no active agent with that id.")
            target_name = target.name
        moved = tickets.transfer(session, ticket_id, auth.user.id, body.to_agent_id,
                                 force=auth.user.has_role("lead"), note=body.note)
        return moved.conversation_id, target_name

    try:
        conversation_id, target_name = await inbox.db(move)
    except tickets.TicketError as exc:
        raise _ticket_error(exc) from exc
    if target_name is None:
        inbox.to_widget(conversation_id, {"type": "agent_left", "requeued": True, "text": REQUEUED})
    else:
        inbox.to_widget(conversation_id, {"type": "agent_joined", "name": target_name})
    await inbox.announce(ticket_id)
    return {"ticket": await inbox.full(ticket_id)}


@router.post("/agent/api/tickets/{ticket_id}/notes", responses={**NOT_FOUND, **CONFLICT})
async def note(request: Request, auth: Agent, ticket_id: IdPath,
               body: TextBody) -> dict[str, Any]:
    """An internal note: agents see it, the shopper never does."""
    inbox = inbox_of(request)
    try:
        message = await inbox.db(lambda s: _message_dict(
            tickets.add_message(s, ticket_id, NOTE, body.text, author=auth.user.username)))
    except tickets.TicketError as exc:
        raise _ticket_error(exc) from exc
    except ValueError as exc:
        raise _error(422, "bad_text", str(exc)) from exc
    inbox.hub.publish(ticket_topic(ticket_id), {"type": "message", "ticket_id": ticket_id, "message": message})
    return {"message": message}


@router.post("/agent/api/tickets/{ticket_id}/replies", responses={**NOT_FOUND, **CONFLICT})
async def reply(request: Request, auth: Agent, ticket_id: IdPath,
                body: TextBody) -> dict[str, Any]:
    """Say something to the shopper: stored, pushed to their widget, appended to Rasa's transcript."""
    inbox = inbox_of(request)

    def say(session: Any) -> tuple[str, dict[str, Any]]:
        current = session.get(Ticket, ticket_id)
        if current is None:
            raise tickets.TicketNotFound(ticket_id)
        if current.status == RESOLVED:
            raise tickets.TicketClosed(ticket_id)
        if current.status != CLAIMED or current.assignee_id != auth.user.id:
            raise _error(409, "not_assignee", "Claim this ticket before you reply.")
        message = tickets.add_message(session, ticket_id, AGENT, body.text, author=auth.user.username)
        return current.conversation_id, _message_dict(message)

    try:
        conversation_id, message = await inbox.db(say)
    except tickets.TicketError as exc:
        raise _ticket_error(exc) from exc
    except ValueError as exc:
        raise _error(422, "bad_text", str(exc)) from exc
    delivered = inbox.to_widget(conversation_id, {"type": "agent", "text": message["text"], "name": auth.user.name})
    inbox.hub.publish(ticket_topic(ticket_id), {"type": "message", "ticket_id": ticket_id, "message": message})
    in_transcript = True
    try:
        await inbox.rasa.append_events(conversation_id, [{"event": "bot", "text": message["text"],
                                                          "metadata": {"agent": auth.user.username}}])
    except RasaUnavailable as exc:
        in_transcript = False
        log.warning("conversation %s: agent reply not appended to Rasa's tracker: %s", conversation_id, exc)
    return {"message": message, "widgets": delivered, "in_transcript": in_transcript}


@router.post("/agent/api/tickets/{ticket_id}/resolve", responses={
    **NOT_FOUND, **CONFLICT, 502: {"description": "Rasa could not take the conversation back; the ticket stays open."}})
async def resolve(request: Request, auth: Agent, ticket_id: IdPath) -> dict[str, Any]:
    """Close the ticket and hand the conversation back to the bot (``resume``); ask the shopper for a rating."""
    inbox = inbox_of(request)
    lead = auth.user.has_role("lead")

    def check(session: Any) -> tuple[str, bool]:
        current = session.get(Ticket, ticket_id)
        if current is None:
            raise tickets.TicketNotFound(ticket_id)
        if current.status == RESOLVED:
            raise tickets.TicketClosed(ticket_id)
        if current.status == CLAIMED and current.assignee_id != auth.user.id and not lead:
            raise tickets.NotAssignee(ticket_id)
        return current.conversation_id, current.status == CLAIMED

    try:
        conversation_id, talked = await inbox.db(check)
    except tickets.TicketError as exc:
        raise _ticket_error(exc) from exc
    # Rasa first: if it cannot resume, the ticket stays open and the agent can try again.
    try:
        # A queued ticket of a conversation the bot kept answering (nobody was online): nothing to hand back.
        handback = talked or await inbox.rasa.is_paused(conversation_id)
        if handback:
            await inbox.rasa.append_events(conversation_id, [
                {"event": "resume"}, {"event": "bot", "text": BACK_WITH_BOT, "metadata": {"handoff": "resolved"}}])
    except RasaUnavailable as exc:
        log.warning("conversation %s: could not resume the bot: %s", conversation_id, exc)
        raise _error(502, "rasa_unavailable", "The assistant could not take the conversation back, so the "
                                              "ticket stays open. Try again in a moment.") from exc
    try:
        await inbox.db(lambda s: tickets.resolve(s, ticket_id, auth.user.id, force=lead))
    except tickets.TicketError as exc:  # moved meanwhile: the bot must stay quiet again
        if handback:
            with contextlib.suppress(RasaUnavailable):
                await inbox.rasa.append_events(conversation_id, [{"event": "pause"}])
        raise _ticket_error(exc) from exc
    inbox.to_widget(conversation_id, {"type": "agent_left", **({"text": BACK_WITH_BOT} if handback else {})})
    if talked:
        inbox.to_widget(conversation_id, {"type": "rating", "ticket_id": ticket_id, "text": RATING_ASK})
    await inbox.announce(ticket_id, "ticket_resolved")
    return {"ticket": await inbox.full(ticket_id)}


# --------------------------------------------------------------------------- the live queue


class WatchFrame(BaseModel):
    type: str = Field(max_length=20)
    ticket_id: int | None = Field(default=None, ge=1, le=MAX_ID)


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    """The live queue and the watched conversation, for a logged-in agent (close 4401: log in again)."""
    await websocket.accept()
    auth = await current_session(websocket)
    if auth is None or not auth.user.has_role("agent") or not same_origin(websocket):
        await websocket.close(code=4401, reason="log in first")
        return
    inbox = inbox_of(websocket)
    user = auth.user
    token = websocket.cookies.get(SESSION_COOKIE)
    send_lock = asyncio.Lock()

    async def send(frame: dict[str, Any]) -> None:
        async with send_lock:
            await websocket.send_json(frame)

    async def forward(subscription: Subscription) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            async for event in subscription:
                await send(event)
            if subscription.overflowed:  # fell behind: start over with a fresh state
                await websocket.close(code=4408, reason="too slow, reconnect")

    def still_here(session: Any) -> bool:
        """The session is still live (not logged out, not expired): the agent counts as online."""
        if sessions.load_session(session, token) is None:
            return False
        tickets.touch_presence(session, user.id, user.username)
        return True

    async def heartbeat() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                if not await inbox.db(still_here):
                    await websocket.close(code=4401, reason="session ended")
                    return
                await send({"type": "queue", "tickets": await inbox.queue(),
                            "agents_online": await inbox.db(tickets.agents_online)})
                await asyncio.sleep(PRESENCE_EVERY_S)

    inbox.socket_opened(user.id)
    queue_sub = inbox.hub.subscribe(queue_topic())
    watched: Subscription | None = None
    watch_task: asyncio.Task[None] | None = None
    tasks = [asyncio.create_task(forward(queue_sub))]
    try:
        await send({"type": "hello", "user": user.as_dict()})
        tasks.append(asyncio.create_task(heartbeat()))
        while True:
            raw = await websocket.receive_text()
            try:
                frame = WatchFrame.model_validate_json(raw)
            except ValidationError:
                await send({"type": "error", "text": "That frame could not be read."})
                continue
            if frame.type in ("watch", "unwatch"):
                if watched is not None:
                    watched.close()
                    watched = None
                if watch_task is not None:
                    watch_task.cancel()
                    watch_task = None
                if frame.type == "watch" and frame.ticket_id is not None:
                    watched = inbox.hub.subscribe(ticket_topic(frame.ticket_id))
                    watch_task = asyncio.create_task(forward(watched))
                    try:
                        await send({"type": "conversation", "ticket": await inbox.full(frame.ticket_id)})
                    except tickets.TicketNotFound:
                        await send({"type": "error", "text": f"Ticket {frame.ticket_id} does not exist."})
            elif frame.type == "ping":
                await inbox.db(lambda s: tickets.touch_presence(s, user.id, user.username))
                await send({"type": "pong"})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        queue_sub.close()
        if watched is not None:
            watched.close()
        for task in [*tasks, *([watch_task] if watch_task else [])]:
            task.cancel()
        if inbox.socket_closed(user.id) == 0:
            with contextlib.suppress(Exception):
                await inbox.db(lambda s: tickets.clear_presence(s, user.id))

