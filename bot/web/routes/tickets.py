"""The agent inbox's ticket API under ``/agent/api/``: who am I, the queue, agents, one ticket, and the
actions on it (claim, transfer, note, reply, resolve).

Every route needs an agent's session; the actions are JSON POSTs with the ``X-CSRF-Token`` header.
Refusals are ``{"detail": {"error": code, "message": text}}``. The work is the
:class:`~bot.handoff.agent_inbox.AgentInbox` on ``app.state.inbox`` (:func:`inbox_of`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from bot.auth import users
from bot.auth.sessions import AuthSession
from bot.auth.web import require_role
from bot.conversation.rasa_client import RasaUnavailable
from bot.handoff import tickets
from bot.handoff.agent_inbox import AgentInbox, message_dict
from bot.handoff.tables import AGENT, CLAIMED, NOTE, RESOLVED, Ticket
from bot.ids import MAX_ID
from bot.web.hub import ticket_topic
from bot.web.params import AUTH_RESPONSES, CONFLICT, NOT_FOUND, IdPath

log = logging.getLogger("bot.web.routes.tickets")

MAX_REPLY = 2000
BACK_WITH_BOT = "You're back with the shop assistant. Ask me anything, any time."
RATING_ASK = "How did we do? Rate this chat from 1 (poor) to 5 (great)."
REQUEUED = "Your chat went back to the queue; the next available person will pick it up. Your messages are kept."

router = APIRouter(tags=["agent"], responses=AUTH_RESPONSES)
Agent = Annotated[AuthSession, Depends(require_role("agent"))]


def inbox_of(connection: HTTPConnection) -> AgentInbox:
    """The app's agent inbox service (``app.state.inbox``)."""
    return connection.app.state.inbox  # type: ignore[no-any-return]


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


async def _pause(inbox: AgentInbox, conversation_id: str) -> bool:
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
        message = await inbox.db(lambda s: message_dict(
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
        return current.conversation_id, message_dict(message)

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
