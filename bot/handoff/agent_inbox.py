"""The agent inbox service: what the shopper's chat and the agents' console share.

:class:`AgentInbox` ties tickets in the database (:mod:`bot.handoff.tickets`), Rasa's tracker (the
client the ticket routes pause, resume and append agent lines through) and live pushes through the
:class:`~bot.web.hub.Hub` (queue rows to every agent, a watched ticket's messages, the shopper's widget).
It is a plain service held on ``app.state.inbox``; the routes reach it through ``inbox_of``
(:mod:`bot.web.routes.tickets`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bot.auth import users
from bot.db import in_session
from bot.handoff import tickets
from bot.handoff.context import iso
from bot.handoff.tables import CLAIMED, RESOLVED, SHOPPER, TicketMessage
from bot.sentiment import score
from bot.web.hub import conversation_topic, queue_topic, ticket_topic

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation.rasa_client import RasaClient
    from bot.web.hub import Hub

log = logging.getLogger("bot.handoff.agent_inbox")
T = TypeVar("T")


def message_dict(m: TicketMessage) -> dict[str, Any]:
    """One ticket message as the agent console and its websocket frames carry it."""
    return {"id": m.id, "ticket_id": m.ticket_id, "role": m.role, "author": m.author, "text": m.text,
            "sentiment": m.sentiment, "created_at": iso(m.created_at)}


def _summary(view: tickets.TicketView, assignee_name: str | None) -> dict[str, Any]:
    data = view.as_dict()
    data.pop("context", None)
    data.pop("messages", None)
    data["assignee_name"] = assignee_name
    return data


class AgentInbox:
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
                    message_dict(message))

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
