"""The shopper's path, once for every transport (the chat API and the widget's websocket both call it).

A message: card numbers masked; stored on the conversation's open ticket and pushed to the agents; the
metadata cleaned of forged identity and given what the gateway vouches for (the verified customer, their CRM
segment, the client's address); then sent to Rasa (always: while the bot is paused Rasa only records it), or
held behind the conversation's earlier held messages, or held when Rasa cannot be reached, for the replay
(:mod:`bot.held_messages.replay`). The pipeline also verifies customer tokens (merging a guest's cart), applies
the chat rate limits and saves the shopper's rating of a chat with an agent. It knows no HTTP or websocket:
it takes plain values and raises plain errors that each transport answers in its own way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from bot.config import Settings
from bot.conversation.rasa_client import (
    APOLOGY,
    HELD,
    HELD_MORE,
    MESSAGE_ID,
    TAKING_LONGER,
    RasaClient,
    RasaUnavailable,
)
from bot.conversation.rate_limits import ChatLimiter, Limited
from bot.conversation.requests import clean_metadata, identity_metadata
from bot.conversation.segments import SegmentCache
from bot.db import in_session, session_scope
from bot.handoff import tickets
from bot.handoff.context import payload_words
from bot.handoff.tables import CLAIMED
from bot.held_messages import queue as held_queue
from bot.privacy.redact import mask_cards
from bot.shop import cart, crm
from bot.shop.identity import jwt_secret, verify_token

log = logging.getLogger("bot.conversation")
RATING_THANKS = "Thank you for rating this chat!"


class TicketDesk(Protocol):
    """What the pipeline needs of the agent inbox (:class:`bot.handoff.agent_inbox.AgentInbox`)."""

    async def shopper_said(self, conversation_id: str, text: str) -> dict[str, Any] | None: ...

    async def rasa_replied(self, conversation_id: str, replies: list[dict[str, Any]]) -> None: ...

    async def widget_state(self, conversation_id: str) -> dict[str, Any] | None: ...

    async def rate(self, conversation_id: str, ticket_id: int, rating: int) -> None: ...


class RatingRefused(Exception):
    """A rating that was not saved: ``error`` is ``not_found`` (no such ticket in this conversation),
    ``not_rateable`` (not resolved yet, or already rated) or ``bad_rating``; ``message`` says it in words."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class Answer:
    """What became of a shopper's message: Rasa's replies (or the gateway's apology), whether the assistant
    could not answer (``degraded``), and whether a person has the conversation (``with_agent``)."""

    replies: list[dict[str, Any]]
    degraded: bool
    with_agent: bool


class ShopperPipeline:
    """The shopper's side of the gateway: identity, rate limits, messages to Rasa and the agents, ratings."""

    def __init__(self, settings: Settings, rasa: RasaClient, inbox: TicketDesk, limiter: ChatLimiter,
                 wake_replay: Callable[[], None], segments: SegmentCache | None = None) -> None:
        self.settings = settings
        self.rasa = rasa
        self.inbox = inbox
        self.limiter = limiter
        self.wake_replay = wake_replay
        self.segments = segments or SegmentCache()

    # ----------------------------------------------------------------- who is chatting, and how fast

    async def limited(self, conversation_id: str, client_host: str | None) -> Limited | None:
        """None when a message may go on; else which chat limit refused it."""
        return await self.limiter.check(conversation_id, client_host)

    async def identify(self, conversation_id: str, token: str) -> int:
        """The customer a signed token names (raises :class:`bot.shop.identity.InvalidToken`); a guest cart of
        this conversation moves into that customer's cart."""
        customer_id = verify_token(token, jwt_secret(self.settings), self.settings.jwt_issuer)
        await asyncio.to_thread(self._merge_guest_cart, conversation_id, customer_id)
        return customer_id

    def _merge_guest_cart(self, conversation_id: str, customer_id: int) -> None:
        """A guest who identifies keeps what they put in the cart: it moves into the customer's cart."""
        try:
            with session_scope(self.settings.database_url) as session:
                if cart.has_items(session, conversation_id):
                    cart.merge(session, conversation_id, cart.customer_cart_key(customer_id))
        except Exception:  # the chat goes on; the guest cart stays where it was
            log.exception("conversation %s: merging the guest cart failed", conversation_id)

    def _read_segment(self, customer_id: int) -> str | None:
        try:
            with session_scope(self.settings.database_url) as session:
                return crm.profile(session, customer_id).segment
        except crm.UnknownCustomer:
            return None

    async def segment_of(self, customer_id: int) -> str | None:
        """The customer's CRM segment (cached a minute); None when unknown or unreadable."""
        known, segment = self.segments.get(customer_id)
        if not known:
            try:
                segment = await asyncio.to_thread(self._read_segment, customer_id)
            except Exception:  # the chat goes on without the segment
                log.exception("customer %s: reading the CRM segment failed", customer_id)
                return None
            self.segments.put(customer_id, segment)
        return segment

    async def shopper_metadata(self, metadata: dict[str, Any] | None, channel: str, customer_id: int | None,
                               client_host: str | None) -> dict[str, Any]:
        """The client's metadata without forged identity (``channel`` unless it names one), plus what the gateway
        vouches for: the verified customer, their CRM segment, the client's address."""
        cleaned = clean_metadata(metadata)
        cleaned["channel"] = cleaned.get("channel", channel)
        out = identity_metadata(cleaned, customer_id, client_host)
        if customer_id:
            segment = await self.segment_of(customer_id)
            if segment:
                out["segment"] = segment
        return out

    # ----------------------------------------------------------------- a message

    async def message(self, conversation_id: str, text: str, *, metadata: dict[str, Any] | None = None,
                      channel: str = "api", customer_id: int | None = None, client_host: str | None = None,
                      clicked: str | None = None, payloads: bool = False,
                      on_stored: Callable[[bool], Awaitable[None]] | None = None) -> Answer:
        """Take a shopper's message (``text``, or a button's payload) to the agents and to Rasa.

        ``customer_id`` must come from :meth:`identify`. ``clicked``: the words of the button pressed (the agent
        sees them; Rasa gets ``text``, the payload). ``payloads``: ``text`` may be a payload (the widget's), shown
        to the agent in words. ``on_stored(with_agent)`` runs once the message is on the open ticket, before Rasa
        is asked (the widget shows its typing indicator then).
        """
        text = mask_cards(text)  # card numbers never reach Rasa or a store
        said = mask_cards(clicked) if clicked else payload_words(text) if payloads else text
        held = await self.inbox.shopper_said(conversation_id, said)
        with_agent = held is not None and held["status"] == CLAIMED
        if on_stored is not None:
            await on_stored(with_agent)
        vouched = await self.shopper_metadata(metadata, channel, customer_id, client_host)
        replies, degraded = await self.ask_rasa(conversation_id, text, vouched, with_agent)
        return Answer(replies, degraded, with_agent)

    def _hold_if_queued(self, session: Session, conversation_id: str, text: str, metadata: dict[str, Any],
                        always: bool) -> bool:
        """Hold the message behind this conversation's held ones (or ``always``); whether it was held."""
        if not always and not held_queue.has_held(session, conversation_id):
            return False
        held_queue.hold(session, conversation_id, text, metadata)
        return True

    async def ask_rasa(self, conversation_id: str, text: str, metadata: dict[str, Any],
                       with_agent: bool) -> tuple[list[dict[str, Any]], bool]:
        """Send a shopper's message to Rasa (always: while the bot is paused it only records it).

        ``with_agent``: a person has the conversation (its open ticket is claimed) and got the message. A message
        Rasa did not get, or may not have got (no answer in time), is kept and replayed in order once Rasa is back
        (:mod:`bot.held_messages.replay`); its id in the metadata (``MESSAGE_ID``) lets the replay see in Rasa's
        tracker whether Rasa took it after all, so it is answered once. Returns ``(replies, degraded)``.
        """
        metadata = {**metadata, MESSAGE_ID: uuid.uuid4().hex}  # the gateway's own: a client's is replaced
        database = self.settings.database_url
        if await in_session(database, self._hold_if_queued, conversation_id, text, metadata, False):
            self.wake_replay()  # earlier messages still wait for Rasa: this one goes behind them
            return ([] if with_agent else [{"text": HELD_MORE}]), not with_agent
        try:
            replies = await self.rasa.send(conversation_id, text, metadata)
        except RasaUnavailable as exc:
            log.warning("conversation %s: %s", conversation_id, exc)
            if exc.keep:
                await in_session(database, self._hold_if_queued, conversation_id, text, metadata, True)
                self.wake_replay()
            if with_agent:
                return [], False  # a person has the conversation and got the message
            return [{"text": TAKING_LONGER if exc.unsure else HELD if not exc.reached else APOLOGY}], True
        await self.inbox.rasa_replied(conversation_id, replies)
        return replies, False

    # ----------------------------------------------------------------- the chat with an agent

    async def widget_state(self, conversation_id: str) -> dict[str, Any] | None:
        """What the widget shows in its header: waiting for an agent, or talking to one; None without a ticket."""
        return await self.inbox.widget_state(conversation_id)

    async def rate(self, conversation_id: str, ticket_id: int, rating: int) -> None:
        """The shopper's 1 to 5 rating of a chat with an agent, once per ticket (raises :class:`RatingRefused`)."""
        try:
            await self.inbox.rate(conversation_id, ticket_id, rating)
        except tickets.TicketNotFound as exc:
            raise RatingRefused("not_found", "There is no such ticket in this conversation.") from exc
        except tickets.TicketError as exc:
            raise RatingRefused("not_rateable", str(exc)) from exc
        except ValueError as exc:
            raise RatingRefused("bad_rating", str(exc)) from exc
