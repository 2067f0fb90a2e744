"""Handing a shopper to a person: ``action_escalate`` and the email follow-up when nobody can answer live.

``action_escalate`` runs when the escalation policy (``rasa_addons.escalation``) or the rule for
``contact_human_agent`` predicts it. It works out the reason with the same ``bot.escalation`` code as
the policy, gathers the context packet (transcript with intent, confidence and sentiment, mood
trajectory, CRM profile, recent orders, cart, last search, slots), opens the ticket and queues its
helpdesk deliveries in one transaction, then either pauses the bot for an agent (someone has their inbox
open, whatever the support hours say: they can claim the ticket now) or, with nobody online, says when
the team is back and offers an email follow-up (``followup_form``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions import services
from actions.context import intent_of, requester, user_text
from bot.clock import utcnow
from bot.config import escalation_thresholds, get_settings
from bot.db import session_scope
from bot.escalation.decision import Decision, decide, exchanges_from_events, policy_settings
from bot.escalation.episode import segment_from_events
from bot.escalation.model import ModelError
from bot.escalation.sentiment_triggers import EscalationThresholds, turns_from_events
from bot.handoff import hours
from bot.handoff.context import build_packet, payload_words, transcript_entry
from bot.handoff.delivery import enqueue
from bot.handoff.priority import priority
from bot.handoff.tickets import (
    agents_online,
    normalise_email,
    open_ticket,
    open_ticket_for,
    set_followup_email,
    update_context,
    wait_estimate,
)
from bot.sentiment import mood_trajectory, score
from bot.shop import cart, crm
from bot.shop.orders import OrderError, OrderView, Requester, get_order_service

log = logging.getLogger(__name__)

RECENT_ORDERS = 5
STOP_INTENTS = ("stop", "deny")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
EMAIL_ME = {"title": "Email me", "payload": "/request_followup"}
KEEP_CHATTING = {"title": "Keep chatting with the bot", "payload": "/deny"}
BAD_EMAIL_TEXT = ("That doesn't look like an email address. Could you type it like jane@example.com? "
                  "Or say \"stop\" to skip it.")



@lru_cache(maxsize=1)
def thresholds() -> EscalationThresholds:
    """``SHOP_ESCALATION_*`` as the policy reads them; the defaults (logged) when they do not parse."""
    try:
        return escalation_thresholds()
    except ValueError:
        log.exception("bad SHOP_ESCALATION_* setting; the action uses the defaults")
        return EscalationThresholds()


# --------------------------------------------------------------------------- reading the tracker


def _when(event: Mapping[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None)
    return None


def _bot_text(event: Mapping[str, Any]) -> str:
    """A bot event as words: its text, else what it showed (product cards, buttons)."""
    text = (event.get("text") or "").strip()
    data = event.get("data") or {}
    custom = data.get("custom") if isinstance(data, Mapping) else None
    if isinstance(custom, Mapping):
        kind = str(custom.get("type") or "custom")
        titles = [str(p.get("title")) for p in custom.get("products") or [] if isinstance(p, Mapping)]
        shown = f"[{kind.replace('_', ' ')}{': ' + '; '.join(titles[:5]) if titles else ''}]"
        text = f"{text}\n{shown}" if text else shown
    buttons = data.get("buttons") if isinstance(data, Mapping) else None
    if isinstance(buttons, list) and buttons:
        titles = [str(b.get("title")) for b in buttons if isinstance(b, Mapping) and b.get("title")]
        if titles:
            text = f"{text}\n[buttons: {', '.join(titles)}]" if text else f"[buttons: {', '.join(titles)}]"
    return text


def _offered(event: Mapping[str, Any]) -> dict[str, str]:
    """The buttons of a bot message, payload -> the words the shopper saw: quick replies by their title,
    product cards' buttons with the product ("Add to cart: Storm Shell"), cart lines' by the text the
    widget shows for them ("Remove Storm Shell")."""
    data = event.get("data") or {}
    if not isinstance(data, Mapping):
        return {}
    shown: dict[str, str] = {}

    def add(button: Any, label: str = "", use_text: bool = False) -> None:
        if not isinstance(button, Mapping) or not isinstance(button.get("payload"), str):
            return
        title = str((button.get("text") if use_text else None) or button.get("title") or "").strip()
        if title:
            shown.setdefault(button["payload"], f"{title}: {label}" if label else title)

    for button in data.get("buttons") or []:
        add(button)
    custom = data.get("custom")
    if isinstance(custom, Mapping):
        for product in custom.get("products") or []:
            if isinstance(product, Mapping):
                for button in product.get("buttons") or []:
                    add(button, str(product.get("title") or "").strip())
        for line in custom.get("lines") or []:
            if isinstance(line, Mapping):
                for button in line.get("buttons") or []:
                    add(button, use_text=True)
    return shown


def transcript(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every message of the conversation: the shopper's with intent, confidence and sentiment (from the
    NLU parse; scored here when the parse has none), the bot's, and agents' (bot events with
    ``metadata.agent``, which the gateway appends). A button the shopper pressed reads as the words on
    it (from the bot message that offered it), not as its payload."""
    out = []
    offered: dict[str, str] = {}  # payload -> words, of every button shown so far (a later offer wins)
    for event in events:
        kind = event.get("event")
        if kind == "user":
            text = event.get("text") or ""
            parse = event.get("parse_data") or {}
            intent = parse.get("intent") or {}
            sentiment = (parse.get("sentiment") or {}).get("compound")
            clicked = text.startswith("/")
            if sentiment is None and text and not clicked:
                sentiment = score(text).compound
            shown = (offered.get(text) or payload_words(text)) if clicked else text
            out.append(transcript_entry("shopper", shown, _when(event), intent.get("name"), intent.get("confidence"),
                                        sentiment, clicked=clicked))
        elif kind == "bot":
            offered.update(_offered(event))
            text = _bot_text(event)
            if not text:
                continue
            agent = (event.get("metadata") or {}).get("agent")
            out.append(transcript_entry("agent" if agent else "bot", text, _when(event), author=agent or None))
    return out


def escalation_reason(tracker: Tracker, segment: str | None) -> tuple[str, str, Decision | None]:
    """(reason, detail, decision) for the latest message, as the policy decided it (the same
    ``bot.escalation.decision`` over the same events and policy file). A hand-over the policy did not decide
    (the action predicted some other way, or the model file is unreadable) counts as a request."""
    try:
        decision = decide(exchanges_from_events(tracker.events), segment,
                          settings=policy_settings(get_settings().policy_file))
    except ModelError:
        log.exception("the escalation model does not load")
        decision = None
    if decision is not None:
        return decision.reason, decision.detail, decision
    intent = intent_of(tracker)
    return "explicit_request", f"handed over without a policy trigger (intent {intent or 'none'})", None


# --------------------------------------------------------------------------- gathering the packet


def _profile(customer_id: int | None) -> crm.ProfileView | None:
    if customer_id is None:
        return None
    with session_scope() as session:
        try:
            return crm.profile(session, customer_id)
        except crm.UnknownCustomer:
            return None


def _orders(who: Requester, tracker: Tracker) -> list[OrderView]:
    """The signed-in shopper's recent orders; for a guest, the order in focus if they proved it."""
    service = get_order_service()
    if who.customer_id is not None:
        return service.recent_orders(who, RECENT_ORDERS)
    number = tracker.get_slot("order_number")
    if number and service.can_access(who, str(number)):
        try:
            return [service.get(who, str(number))]
        except OrderError:
            return []
    return []


def _cart(who: Requester) -> cart.CartSummary:
    with session_scope() as session:
        return cart.summary(session, cart.cart_key(who.conversation_id, who.customer_id))


def gather_packet(tracker: Tracker, now: datetime) -> tuple[dict[str, Any], str, str, str | None, float | None]:
    """The context packet, with (reason, detail, segment, lifetime value) for the ticket."""
    services.database()
    who = requester(tracker)
    limits = thresholds()
    profile = _profile(who.customer_id)
    said = segment_from_events(tracker.events)  # what the policy saw (the gateway's metadata)
    segment = profile.segment if profile else said
    reason, detail, decision = escalation_reason(tracker, said or segment)
    moods = mood_trajectory(turns_from_events(tracker.events), limits)
    slots = dict(tracker.slots or {})
    packet = build_packet(
        transcript(list(tracker.events)), reason, decision, profile, _orders(who, tracker), _cart(who),
        {"query": slots.get("search_query"), "filters": slots.get("search_filters")}, slots,
        mood_trajectory=moods, reason_detail=detail, now=now)
    return packet, reason, detail, segment, profile.lifetime_value if profile else None


# --------------------------------------------------------------------------- the action


def _minutes(n: int) -> str:
    return "1 minute" if n == 1 else f"{n} minutes"


def _stop_flow() -> list[dict[str, Any]]:
    """Leave any form and pending question: the person takes it from here."""
    return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("pending_confirmation", None)]


def _support_contacts() -> str:
    support = services.policy().fact("shop.support")
    return f"{support['email']} or {support['phone']}"


class ActionEscalate(Action):
    """Opens (or finds) the conversation's ticket and tells the shopper what happens next."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or utcnow

    def name(self) -> str:
        return "action_escalate"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        now = self.clock()
        who = requester(tracker)
        try:
            packet, reason, detail, segment, value = gather_packet(tracker, now)
            decided = packet.get("decision") or {}
            points = priority(reason, segment, packet.get("mood"), value, decided.get("score"),
                              decided.get("threshold"))
            with session_scope() as session:
                ticket, created = open_ticket(session, conversation_id=tracker.sender_id,
                                              customer_id=who.customer_id, reason=reason, reason_detail=detail,
                                              context=packet, priority=points, now=now)
                if created:
                    enqueue(session, ticket, now=now)
                else:  # asked again: the agent gets the conversation as it is now
                    update_context(session, ticket.id, packet, points)
                # presence wins over the schedule: an agent whose inbox is open can claim the ticket now,
                # even outside the support hours, so the shopper is told one is coming
                online = agents_online(session, now) > 0
                estimate = wait_estimate(session, ticket, now) if online else None
                ticket_id, followup = ticket.id, ticket.followup_email
        except (SQLAlchemyError, OSError):
            log.exception("could not open a handoff ticket for %s", tracker.sender_id)
            dispatcher.utter_message(text="Sorry, I couldn't reach our team from here just now. You can write or "
                                          f"call them directly: {_support_contacts()}. I'm still here to help.")
            return []
        log.info("handoff ticket %s for %s (%s, %s, priority %s, %s)", ticket_id, tracker.sender_id, reason,
                 "new" if created else "existing", points, "online" if online else "offline")
        if estimate is not None:
            return self._queued(dispatcher, ticket_id, created, estimate.position, estimate.minutes)
        return self._offline(dispatcher, ticket_id, now, followup)

    @staticmethod
    def _queued(dispatcher: CollectingDispatcher, ticket_id: int, created: bool, position: int,
                minutes: int) -> list[dict[str, Any]]:
        if created:
            place = "You're next in line" if position <= 1 else f"You're number {position} in the queue"
            text = (f"I'm bringing in a person from our team. {place}, so it should take about {_minutes(minutes)}. "
                    "They'll see our whole conversation, so you won't have to repeat anything.")
        else:
            place = "next in line" if position <= 1 else f"number {position}"
            text = (f"You're already in the queue for a person ({place}, about {_minutes(minutes)}). Hang on, "
                    "they'll see everything we talked about.")
        dispatcher.utter_message(text=text)
        dispatcher.utter_message(json_message={"type": "handoff", "state": "queued", "ticket_id": ticket_id,
                                               "position": position, "wait_minutes": minutes})
        # Paused, Rasa predicts nothing more, so the tracker would end on action_escalate and the first message
        # after the agent hands back would find no rule (rules and the escalation policy expect action_listen
        # before a user message): end on action_listen, as if the bot had handed the turn to the shopper.
        return [*_stop_flow(), ConversationPaused(), ActionExecuted("action_listen")]

    @staticmethod
    def _offline(dispatcher: CollectingDispatcher, ticket_id: int, now: datetime,
                 followup: str | None) -> list[dict[str, Any]]:
        when = hours.hours_text()
        if hours.is_open(now):
            first = "Everyone on our team is busy right now, so I can't connect you live."
        else:
            nxt = hours.support_hours().next_opening_text(now)
            first = f"Our team is offline right now. They're here {when}, next {nxt}."
        passed = (f"I've passed our conversation on to them (request #{ticket_id}), so nobody will ask you to "
                  "repeat yourself.")
        if followup:
            text = f"{first} {passed} We'll email you at {followup} as soon as someone picks it up."
            buttons: list[dict[str, str]] = []
        else:
            text = (f"{first} {passed} Shall we email you when someone picks it up? Meanwhile I'm still here to "
                    "help.")
            buttons = [EMAIL_ME, KEEP_CHATTING]
        dispatcher.utter_message(text=text, buttons=buttons)
        opening = hours.next_opening(now)
        dispatcher.utter_message(json_message={
            "type": "handoff", "state": "offline", "ticket_id": ticket_id, "hours": when,
            "next_opening": opening.isoformat(timespec="seconds") + "Z" if opening else None})
        # The bot keeps answering: listen for the shopper's next message (the form, if any, has ended).
        return [*_stop_flow(), FollowupAction("action_listen")]


# --------------------------------------------------------------------------- email follow-up


def _open_ticket_id(conversation_id: str) -> int | None:
    services.database()
    with session_scope() as session:
        ticket = open_ticket_for(session, conversation_id)
        return ticket.id if ticket else None


def _account_email(tracker: Tracker) -> str | None:
    profile = _profile(requester(tracker).customer_id)
    return profile.email if profile and profile.email else None


class ValidateFollowupForm(FormValidationAction):
    """Asks for an email only while the conversation has an open ticket; finds the address in the text."""

    def name(self) -> str:
        return "validate_followup_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        return ["followup_email"] if _open_ticket_id(tracker.sender_id) is not None else []

    async def extract_followup_email(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        intent = intent_of(tracker)
        if intent in STOP_INTENTS:
            return {}
        given = next(tracker.get_latest_entity_values("email"), None)
        text = user_text(tracker)
        found = str(given) if given else (m.group(0) if (m := _EMAIL.search(text)) else None)
        if found:
            return {"followup_email": found}
        if tracker.get_slot("requested_slot") == "followup_email" and text and intent in ("inform", "nlu_fallback"):
            return {"followup_email": text}  # validated below: asked again
        return {}

    def validate_followup_email(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> dict[str, Any]:
        found = _EMAIL.search(str(value or ""))
        try:
            return {"followup_email": normalise_email(found.group(0) if found else "")}
        except ValueError:
            dispatcher.utter_message(text=BAD_EMAIL_TEXT)
            return {"followup_email": None}


class ActionAskFollowupEmail(Action):
    """Asks where to write; a signed-in shopper gets their account address as a button."""

    def name(self) -> str:
        return "action_ask_followup_email"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        email = _account_email(tracker)
        buttons = [{"title": f"Use {email}", "payload": f'/inform{{"email": "{email}"}}'}] if email else []
        dispatcher.utter_message(text="Which email address should we write to?", buttons=buttons)
        return []


class ActionSaveFollowup(Action):
    """Stores the follow-up address on the open ticket and says when to expect a reply."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or utcnow

    def name(self) -> str:
        return "action_save_followup"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        clear = [SlotSet("followup_email", None)]  # kept on the ticket, not in the conversation
        email = tracker.get_slot("followup_email")
        ticket_id = _open_ticket_id(tracker.sender_id)
        if ticket_id is None:
            dispatcher.utter_message(text="There's no open request with our team right now, so there's nothing to "
                                          "follow up by email. If you'd like a person, just say \"talk to a person\".")
            return clear
        if not email:
            dispatcher.utter_message(text="Okay, no email then. Your request stays with our team, and I'm still here "
                                          "if you need anything.")
            return clear
        try:
            with session_scope() as session:
                set_followup_email(session, ticket_id, str(email))
        except ValueError:  # resolved meanwhile, or not an address after all
            dispatcher.utter_message(text="Sorry, I couldn't save that address. Could you say \"email me\" again?")
            return clear
        now = self.clock()
        when = ("as soon as someone is free" if hours.is_open(now)
                else f"when our team is back, {hours.support_hours().next_opening_text(now)}")
        dispatcher.utter_message(text=f"Thanks! We'll write to {normalise_email(str(email))} about request "
                                      f"#{ticket_id} {when}. Anything else I can help with meanwhile?")
        return clear
