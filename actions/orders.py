"""Orders in the chat: track, cancel (with a confirmation), change the address, return, refunds,
the cancellation fee and the delivery date of a specific order.

Every form first pins the order (slot ``order_number``): a signed-in shopper picks from their recent
orders, a guest proves the order is theirs with its email or delivery postcode. Access is decided by
:class:`bot.shop.orders.OrderService` from the requester (conversation id, and the customer id only
when the gateway verified a signed token), never from a slot: the slots only say which order the
shopper means. The slot ``order_contact`` is transient (the email is never kept in the tracker).
"""

from __future__ import annotations

import hashlib
import re
from abc import abstractmethod
from datetime import date, datetime
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.context import intent_of, requester, user_text
from actions.messages import money, payload
from actions.profile import CONSENT_CONFIRMATION, answer_consent
from actions.services import order_service
from actions.shop_answers import say_policy_answer
from bot.search import references
from bot.shop.address import AddressError, parse_address
from bot.shop.orders import (
    RETURN_REASONS,
    DeliveryView,
    ItemView,
    OrderError,
    OrderStateError,
    OrderView,
    RefundView,
    VerificationLocked,
    normalize_order_number,
    utcnow,
)
from bot.shop.tables import SHIPPED

LOCKED = "locked"  # order_contact marker: verification is locked and the shopper was told
STOP_INTENTS = ("stop", "deny")
CANCEL = "cancel_order"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ORDER_IN_TEXT = re.compile(r"(?i)(?<![\w-])#?\s*((?:nw)?[\s-]?\d{6})(?!\d)")
_POSTCODE = re.compile(r"(?i)^[a-z0-9][a-z0-9 -]{1,9}$")
_ALL = re.compile(r"\b(all|everything|whole|entire|every)\b", re.I)

VERIFY_FAILED_TEXT = (
    "Sorry, I couldn't match those details to an order. Please check the order number and the email "
    "address or delivery postcode, and try again."
)
BAD_NUMBER_TEXT = (
    "That doesn't look like an order number. You'll find it in your order confirmation email; it looks "
    "like NW-100234."
)
BAD_CONTACT_TEXT = (
    "Please send the email address you used for the order, or the postcode it's being delivered to "
    "(like jane.doe@example.com or 62704)."
)


def say_date(day: date | datetime | None) -> str:
    return f"{day:%A}, {day:%B} {day.day}" if day else ""


def locked_text(exc: VerificationLocked) -> str:
    minutes = max(1, round((exc.until - utcnow()).total_seconds() / 60))
    return f"{exc} You can try again in about {minutes} minute{'s' if minutes != 1 else ''}."


def _item_line(item: ItemView) -> str:
    variant = ", ".join(p for p in [item.size and f"size {item.size}", item.color] if p)
    return f"- {item.quantity} x {item.title}{f' ({variant})' if variant else ''}"


def order_text(view: OrderView, estimate: DeliveryView | None = None) -> str:
    """Everything about an order a shopper asks for first: status, items, carrier, tracking, delivery."""
    lines = [f"Order {view.number} from {say_date(view.placed_at)}: {view.status_label}."]
    lines += [_item_line(i) for i in view.items]
    lines.append(f"Total: {money(view.total, view.currency)}")
    if view.carrier:
        tracking = f", tracking number {view.tracking_number}" if view.tracking_number else ""
        lines.append(f"Shipped with {view.carrier}{tracking}.")
        if view.tracking_url:
            lines.append(f"Track the parcel: {view.tracking_url}")
    if view.delivered_at:
        lines.append(f"Delivered on {say_date(view.delivered_at)}.")
    elif view.expected_delivery:
        lines.append(f"Expected delivery: {say_date(view.expected_delivery)}.")
    elif estimate is not None and estimate.earliest and estimate.latest:
        lines.append(f"Expected delivery: between {say_date(estimate.earliest)} and {say_date(estimate.latest)}.")
    return "\n".join(lines)


def order_card(view: OrderView) -> dict[str, Any]:
    """A structured copy of the order for widgets that render it (the text carries the same content)."""
    return {
        "type": "order_card",
        "number": view.number,
        "status": view.status,
        "status_label": view.status_label,
        "placed_at": view.placed_at.date().isoformat(),
        "items": [{"title": i.title, "quantity": i.quantity, "size": i.size, "color": i.color,
                   "price_label": money(i.unit_price, view.currency)} for i in view.items],
        "total_label": money(view.total, view.currency),
        "carrier": view.carrier,
        "tracking_number": view.tracking_number,
        "tracking_url": view.tracking_url,
        "expected_delivery": view.expected_delivery.date().isoformat() if view.expected_delivery else None,
        "delivered_at": view.delivered_at.date().isoformat() if view.delivered_at else None,
    }


def start_return_button(number: str) -> dict[str, str]:
    """Starts the return flow (``return_form``) for exactly this order: the payload pins it."""
    return {"title": "Start a return", "payload": payload("get_refund", order_number=number)}


def follow_refund_button(number: str) -> dict[str, str]:
    """Where the refund of this order stands (``refund_form`` pinned to it): how a return is followed in the chat."""
    return {"title": "Where's my refund?", "payload": payload("track_refund", order_number=number)}


def next_step_buttons(view: OrderView) -> list[dict[str, str]]:
    buttons = []
    if view.can_cancel:
        buttons.append({"title": "Cancel this order", "payload": "/cancel_order"})
    if view.can_change_address:
        buttons.append({"title": "Change the address", "payload": "/change_shipping_address"})
    if view.can_return:
        buttons.append({"title": "Return items", "payload": "/get_refund"})
    return buttons


def refund_text(refunds: list[RefundView], number: str) -> str:
    if not refunds:
        return f"There's no refund on order {number} yet."
    lines = []
    for r in refunds:
        why = f"return {r.rma}" if r.rma else ("cancellation" if r.reason == "cancellation" else r.reason)
        line = f"- {money(r.amount, r.currency)} for the {why}: {r.status_label}"
        if r.status == "refunded" and r.completed_at:
            line += f" on {say_date(r.completed_at)}"
        elif r.expected_by:
            line += f", expected by {say_date(r.expected_by)}"
        elif r.rma and r.status == "pending":
            line = f"- {money(r.amount, r.currency)} for the {why}: starts as soon as the parcel reaches us"
        lines.append(line + ".")
    return f"Refunds for order {number}:\n" + "\n".join(lines)


def focus_number(tracker: Tracker) -> str | None:
    """The order in focus (slot ``order_number``), normalised; None when there is none."""
    value = tracker.get_slot("order_number")
    return normalize_order_number(str(value)) if value else None


def focus_view(tracker: Tracker) -> OrderView | None:
    """The order in focus when this requester may see it."""
    number = focus_number(tracker)
    if not number:
        return None
    try:
        return order_service().get(requester(tracker), number)
    except OrderError:
        return None


def _entity_given(tracker: Tracker, name: str) -> bool:
    return any(e.get("entity") == name for e in tracker.latest_message.get("entities") or [])


def _slot_before_latest_message(tracker: Tracker, name: str) -> Any:
    """The slot's value as it was before the shopper's latest message (ignores this turn's candidates)."""
    events = list(tracker.events or [])
    latest_user = next((i for i in range(len(events) - 1, -1, -1) if events[i].get("event") == "user"), None)
    if latest_user is None:
        return None
    return next((e.get("value") for e in reversed(events[:latest_user])
                 if e.get("event") == "slot" and e.get("name") == name), None)


def _contact_like(text: str) -> str | None:
    text = text.strip()
    if found := _EMAIL.search(text):
        return found.group(0)
    words = re.sub(r"(?i)^(?:my |the |it'?s )?(?:(?:zip|post|postal)(?:\s*code)?(?:\s+is)?[:\s]+)?", "", text).strip()
    return words if _POSTCODE.match(words) and any(ch.isdigit() for ch in words) else None


# --------------------------------------------------------------------------- asking


class ActionAskOrderNumber(Action):
    """Asks which order: a signed-in shopper picks from recent orders, a guest types the number."""

    def name(self) -> str:
        return "action_ask_order_number"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        recent = order_service().recent_orders(requester(tracker), limit=5)
        if recent:
            dispatcher.utter_message(
                text="Which order do you mean? Here are your recent ones, or type the order number.",
                buttons=[{"title": f"{o.number} · {o.placed_at:%b} {o.placed_at.day} · {o.status_label}",
                          "payload": f'/inform{{"order_number": "{o.number}"}}'} for o in recent],
            )
        else:
            dispatcher.utter_message(text="What's the order number? You'll find it in your order confirmation "
                                          "email; it looks like NW-100234.")
        return []


class ActionAskOrderContact(Action):
    def name(self) -> str:
        return "action_ask_order_contact"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(text="To make sure it's your order: what's the email address you ordered with, "
                                      "or the delivery postcode?")
        return []


class ActionAskNewAddress(Action):
    def name(self) -> str:
        return "action_ask_new_address"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(text="What's the new delivery address? Please include the street and house number, "
                                      "city, postcode and country, e.g. \"12 Baker Street, London NW1 6XE, UK\".")
        return []


class ActionAskReturnItems(Action):
    def name(self) -> str:
        return "action_ask_return_items"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        number = focus_number(tracker) or ""
        try:
            items = order_service().returnable_items(requester(tracker), number)
        except OrderError as exc:
            dispatcher.utter_message(text=str(exc))
            return []
        buttons = [{"title": f"{i.title}{f' ({i.size})' if i.size else ''}" +
                    (f" x{i.returnable_quantity}" if i.returnable_quantity > 1 else ""),
                    "payload": f'/inform{{"return_items": "{i.id}"}}'} for i in items]
        if len(items) > 1:
            buttons.append({"title": "Everything", "payload": '/inform{"return_items": "all"}'})
        dispatcher.utter_message(text=f"Which items of order {number} would you like to return?", buttons=buttons)
        return []


class ActionAskReturnReason(Action):
    def name(self) -> str:
        return "action_ask_return_reason"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(
            text="What's the reason for the return?",
            buttons=[{"title": label, "payload": f'/inform{{"return_reason": "{key}"}}'}
                     for key, label in RETURN_REASONS.items()],
        )
        return []


# --------------------------------------------------------------------------- form validation

_REASON_WORDS = (
    ("too_small", r"small|tight|short"),
    ("too_large", r"big|large|loose|long"),
    ("damaged", r"damag|broke|faulty|defect|crack|doesn'?t work|not working"),
    ("wrong_item", r"wrong (item|product|size sent|colou?r sent)|not what i ordered|sent the wrong"),
    ("not_as_described", r"describ|pictur|photo|looks different|quality"),
    ("arrived_late", r"\blate\b|too late"),
    ("changed_mind", r"changed my mind|don'?t (want|need|like)|no longer"),
)


def reason_from_text(text: str) -> str | None:
    lowered = text.lower().strip()
    if lowered in RETURN_REASONS:
        return lowered
    for key, label in RETURN_REASONS.items():
        if lowered == label.lower():
            return key
    for key, pattern in _REASON_WORDS:
        if re.search(pattern, lowered):
            return key
    return None


class OrderFormValidation(FormValidationAction):
    """Pins the order for every order form; subclasses add the slots their flow needs."""

    extra_slots: tuple[str, ...] = ()

    @property
    @abstractmethod
    def form(self) -> str:
        """The form this action validates (subclasses set it as a class attribute)."""

    def name(self) -> str:
        return f"validate_{self.form}"

    def needs_extra(self, view: OrderView) -> bool:
        """Whether the flow can go on for this order (else the submit action explains why not)."""
        return False

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        if tracker.get_slot("order_contact") == LOCKED:
            return []
        number = focus_number(tracker)
        if not number:
            return ["order_number"]
        try:
            view = order_service().get(requester(tracker), number)
        except OrderError:
            return ["order_number", "order_contact"]
        return ["order_number", *(self.extra_slots if self.needs_extra(view) else ())]

    # -- extraction from free text when a slot was asked for (button payloads fill slots from entities)

    def _requested(self, tracker: Tracker, slot: str) -> bool:
        return tracker.get_slot("requested_slot") == slot and intent_of(tracker) not in STOP_INTENTS

    async def extract_order_number(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> dict[str, Any]:
        text = user_text(tracker)
        if not self._requested(tracker, "order_number") or _entity_given(tracker, "order_number") or not text:
            return {}
        if found := _ORDER_IN_TEXT.search(text):
            return {"order_number": found.group(1)}
        return {"order_number": text} if intent_of(tracker) == "inform" else {}

    async def extract_order_contact(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> dict[str, Any]:
        text = user_text(tracker)
        requested = tracker.get_slot("requested_slot")
        if not text or intent_of(tracker) in STOP_INTENTS:
            return {}
        if requested == "order_number" and (email := _EMAIL.search(text)):  # number and email in one message
            return {"order_contact": email.group(0)}
        if requested != "order_contact":
            return {}
        if contact := _contact_like(text):
            return {"order_contact": contact}
        return {"order_contact": text} if intent_of(tracker) == "inform" else {}

    # -- validation

    def validate_order_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> dict[str, Any]:
        pinned = _slot_before_latest_message(tracker, "order_number")
        if (pinned and tracker.get_slot("requested_slot") == "order_contact"
                and not _ORDER_IN_TEXT.search(user_text(tracker))):
            # asked for the email or postcode, the shopper sent one: digits the NLU took for an order
            # number (a postcode like 62704) do not replace the order being verified
            return {"order_number": pinned}
        number = normalize_order_number(str(value or ""))
        if number is None:
            dispatcher.utter_message(text=BAD_NUMBER_TEXT)
            return {"order_number": None}
        who = requester(tracker)
        service = order_service()
        if not service.can_access(who, number) and service.verification_locked_until(who) is not None:
            until = service.verification_locked_until(who)
            assert until is not None
            dispatcher.utter_message(text=locked_text(VerificationLocked(until)))
            return {"order_number": None, "order_contact": LOCKED}
        return {"order_number": number}

    def validate_order_contact(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        if value == LOCKED:
            return {"order_contact": LOCKED}
        number = focus_number(tracker)
        who = requester(tracker)
        service = order_service()
        if not number or service.can_access(who, number):
            return {"order_contact": None}
        contact = _contact_like(str(value or ""))
        if contact is None:
            dispatcher.utter_message(text=BAD_CONTACT_TEXT)
            return {"order_contact": None}
        try:
            ok = service.verify_guest(who, number, contact)
        except VerificationLocked as exc:
            dispatcher.utter_message(text=locked_text(exc))
            return {"order_number": None, "order_contact": LOCKED}
        if not ok:
            dispatcher.utter_message(text=VERIFY_FAILED_TEXT)
            return {"order_number": None, "order_contact": None}
        dispatcher.utter_message(text=f"Thanks, that matches order {number}.")
        return {"order_contact": None}


class ValidateTrackOrderForm(OrderFormValidation):
    form = "track_order_form"


class ValidateRefundForm(OrderFormValidation):
    form = "refund_form"


class ValidateCancelOrderForm(OrderFormValidation):
    form = "cancel_order_form"


class ValidateChangeAddressForm(OrderFormValidation):
    form = "change_address_form"
    extra_slots = ("new_address",)

    def needs_extra(self, view: OrderView) -> bool:
        return view.can_change_address

    async def extract_new_address(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> dict[str, Any]:
        text = user_text(tracker)
        if not self._requested(tracker, "new_address") or not text:
            return {}
        if intent_of(tracker) == "inform" or any(ch.isdigit() for ch in text):
            return {"new_address": text}
        return {}

    def validate_new_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        try:
            address = parse_address(str(value or ""))
        except AddressError as exc:
            dispatcher.utter_message(text=f"{exc.reason} Please send the whole address again.")
            return {"new_address": None}
        return {"new_address": address.one_line()}


class ValidateReturnForm(OrderFormValidation):
    form = "return_form"
    extra_slots = ("return_items", "return_reason")

    def needs_extra(self, view: OrderView) -> bool:
        return view.can_return

    def _items(self, tracker: Tracker) -> list[ItemView]:
        try:
            return order_service().returnable_items(requester(tracker), focus_number(tracker) or "")
        except OrderError:
            return []

    async def extract_return_items(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> dict[str, Any]:
        text = user_text(tracker)
        if not self._requested(tracker, "return_items") or _entity_given(tracker, "return_items") or not text:
            return {}
        items = self._items(tracker)
        if _ALL.search(text) or (len(items) == 1 and re.search(r"\b(it|that|this|one)\b", text, re.I)):
            return {"return_items": "all"}
        picked = references.positions(text, len(items)) or references.by_name(text, [i.title for i in items])
        if picked:
            return {"return_items": ",".join(str(items[p].id) for p in picked)}
        return {"return_items": text} if intent_of(tracker) == "inform" else {}

    def validate_return_items(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> dict[str, Any]:
        items = {i.id: i for i in self._items(tracker)}
        text = str(value or "").strip().lower()
        if text == "all" and items:
            return {"return_items": "all"}
        ids = [int(p) for p in re.split(r"[,\s]+", text) if p.isdigit()]
        if ids and all(i in items for i in ids):
            return {"return_items": ",".join(str(i) for i in dict.fromkeys(ids))}
        dispatcher.utter_message(text="I couldn't tell which item you mean. Please pick one of the buttons, "
                                      "or say \"everything\".")
        return {"return_items": None}

    async def extract_return_reason(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> dict[str, Any]:
        text = user_text(tracker)
        if not self._requested(tracker, "return_reason") or _entity_given(tracker, "return_reason") or not text:
            return {}
        reason = reason_from_text(text)
        if reason is None and intent_of(tracker) == "inform":
            reason = "other"
        return {"return_reason": reason} if reason else {}

    def validate_return_reason(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        reason = reason_from_text(str(value or ""))
        if reason is None:
            dispatcher.utter_message(text="Please pick one of the reasons below.")
            return {"return_reason": None}
        return {"return_reason": reason}


# --------------------------------------------------------------------------- what the forms do


def _pinned(dispatcher: CollectingDispatcher, tracker: Tracker) -> tuple[OrderView | None, list[dict[str, Any]]]:
    """The order a form pinned, or None after telling the shopper why not (once)."""
    if tracker.get_slot("order_contact") == LOCKED:  # the lock was explained when it happened
        return None, [SlotSet("order_contact", None)]
    number = focus_number(tracker)
    if not number:
        dispatcher.utter_message(text="Tell me the order number whenever you're ready, and I'll take a look.")
        return None, []
    try:
        return order_service().get(requester(tracker), number), []
    except OrderError as exc:
        dispatcher.utter_message(text=str(exc))
        return None, []


class ActionTrackOrder(Action):
    def name(self) -> str:
        return "action_track_order"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view, events = _pinned(dispatcher, tracker)
        if view is not None:
            estimate = order_service().delivery_estimate(requester(tracker), view.number) if (
                view.can_cancel) else None
            dispatcher.utter_message(text=order_text(view, estimate), buttons=next_step_buttons(view))
            dispatcher.utter_message(json_message=order_card(view))
        return events


class ActionTrackRefund(Action):
    def name(self) -> str:
        return "action_track_refund"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view, events = _pinned(dispatcher, tracker)
        if view is not None:
            refunds = order_service().refund_status(requester(tracker), view.number)
            buttons = [{"title": "Return items", "payload": "/get_refund"}] if not refunds and view.can_return else []
            dispatcher.utter_message(text=refund_text(refunds, view.number), buttons=buttons)
        return events


class ActionCancelOrder(Action):
    """Checks the pinned order can be cancelled and asks to confirm (``action_confirm`` does it)."""

    def name(self) -> str:
        return "action_cancel_order"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view, events = _pinned(dispatcher, tracker)
        if view is None:
            return events
        if view.status == "cancelled":
            dispatcher.utter_message(text=f"Order {view.number} is already cancelled.")
            return []
        if not view.can_cancel:
            fee = order_service().cancellation_fee(requester(tracker), view.number)
            # on its way or delivered within the window: the way on is a return (an order still on its way
            # is told, once the form has it, that the return opens when it arrives)
            buttons = [start_return_button(view.number)] if view.can_return or view.status == SHIPPED else []
            buttons.append({"title": "Track it", "payload": "/track_order"})
            dispatcher.utter_message(text=f"Order {view.number} is {view.status_label.lower()}, so it can't be "
                                          f"cancelled any more. {fee.explanation}", buttons=buttons)
            return []
        fee = order_service().cancellation_fee(requester(tracker), view.number)
        refund = "" if view.status == "placed" else f" You'll get {money(view.total, view.currency)} back."
        dispatcher.utter_message(
            text=f"Cancel order {view.number} from {say_date(view.placed_at)} ({view.item_count} "
                 f"item{'s' if view.item_count != 1 else ''}, {money(view.total, view.currency)})? "
                 f"{fee.explanation}{refund}",
            buttons=[{"title": "Yes, cancel it", "payload": "/affirm"},
                     {"title": "No, keep it", "payload": "/deny"}],
        )
        return [SlotSet("pending_confirmation", f"{CANCEL} {view.number}")]


class ActionConfirm(Action):
    """The shopper's yes or no to the pending confirmation: acts on exactly the order it named, or answers the
    consent question that ``action_save_preference`` asked."""

    def name(self) -> str:
        return "action_confirm"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        pending = str(tracker.get_slot("pending_confirmation") or "")
        clear = [SlotSet("pending_confirmation", None)]
        if pending == CONSENT_CONFIRMATION:
            return answer_consent(dispatcher, tracker, agreed=intent_of(tracker) == "affirm")
        what, _, number = pending.partition(" ")
        if what != CANCEL or not number:
            dispatcher.utter_message(response="utter_anything_else" if intent_of(tracker) == "affirm"
                                     else "utter_deny_ack")
            return clear
        if intent_of(tracker) != "affirm":
            dispatcher.utter_message(text=f"Okay, I won't cancel order {number}. Anything else I can do?")
            return clear
        try:
            outcome = order_service().cancel(requester(tracker), number)
        except OrderError as exc:
            dispatcher.utter_message(text=str(exc))
            return clear
        view = outcome.order
        if outcome.kind == "cancelled":
            text = f"Done: order {view.number} is cancelled."
            if outcome.refund:
                text += (f" Your refund of {money(outcome.refund.amount, outcome.refund.currency)} is on its way"
                         + (f" and should arrive by {say_date(outcome.refund.expected_by)}."
                            if outcome.refund.expected_by else "."))
            dispatcher.utter_message(text=text)
        elif outcome.kind == "already_cancelled":
            dispatcher.utter_message(text=f"Order {view.number} is already cancelled.")
        else:
            dispatcher.utter_message(text=f"Order {view.number} has shipped in the meantime, so it can't be "
                                          "cancelled any more. You can return it once it arrives.",
                                     buttons=[start_return_button(view.number),
                                              {"title": "Track it", "payload": "/track_order"}])
        return clear


def cannot_change_text(view: OrderView) -> str:
    if view.status == "cancelled":
        return f"Order {view.number} is cancelled, so there's nothing to change."
    if view.carrier and not view.delivered_at:
        link = f": {view.tracking_url}" if view.tracking_url else "."
        return (f"Order {view.number} has already shipped, so I can't change the address any more. The carrier's "
                f"tracking page may let you redirect the parcel{link}")
    return f"Order {view.number} is {view.status_label.lower()}, so its address can't be changed any more."


class ActionChangeAddress(Action):
    def name(self) -> str:
        return "action_change_address"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view, events = _pinned(dispatcher, tracker)
        events.append(SlotSet("new_address", None))
        if view is None:
            return events
        text = tracker.get_slot("new_address")
        if not view.can_change_address:
            dispatcher.utter_message(text=cannot_change_text(view), buttons=next_step_buttons(view))
            return events
        if not text:
            dispatcher.utter_message(text="I still need the new address. Let's try again.",
                                     buttons=[{"title": "Change the address", "payload": "/change_shipping_address"}])
            return events
        try:
            changed = order_service().change_address(requester(tracker), view.number, parse_address(str(text)))
        except (AddressError, OrderError) as exc:
            dispatcher.utter_message(text=str(exc))
            return events
        dispatcher.utter_message(text=f"Done: order {changed.number} will go to\n" + "\n".join(changed.address_lines))
        return events


def return_key(tracker: Tracker, number: str, items: str, reason: str) -> str:
    """One key per return request: the same form submitted twice opens one return."""
    started = next((str(e.get("timestamp")) for e in reversed(tracker.events or [])
                    if e.get("event") == "active_loop" and e.get("name") == "return_form"), "")
    raw = f"{tracker.sender_id}|{number}|{items}|{reason}|{started}"
    return "chat-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


class ActionStartReturn(Action):
    def name(self) -> str:
        return "action_start_return"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view, events = _pinned(dispatcher, tracker)
        events += [SlotSet("return_items", None), SlotSet("return_reason", None)]
        if view is None:
            return events
        who = requester(tracker)
        picked = str(tracker.get_slot("return_items") or "")
        reason = str(tracker.get_slot("return_reason") or "")
        try:
            returnable = {i.id: i for i in order_service().returnable_items(who, view.number)}
            if not picked or reason not in RETURN_REASONS:
                raise OrderError("Let's start the return again: which items, and why?")
            items = None if picked == "all" else {int(i): returnable[int(i)].returnable_quantity
                                                  for i in picked.split(",") if int(i) in returnable}
            ret = order_service().start_return(who, view.number, items, reason,
                                               return_key(tracker, view.number, picked, reason))
        except OrderStateError as exc:
            dispatcher.utter_message(text=str(exc))
            return events
        except OrderError as exc:
            dispatcher.utter_message(text=str(exc), buttons=[{"title": "Start again", "payload": "/get_refund"}])
            return events
        lines = [f"Your return {ret.rma} for order {ret.order_number} is registered ({ret.reason_label.lower()}):"]
        lines += [f"- {qty} x {item.title}" for item, qty in ret.items]
        lines.append(f"Refund: {money(ret.amount, ret.currency)}.")
        lines += list(ret.instructions)
        dispatcher.utter_message(text="\n".join(lines), buttons=[follow_refund_button(ret.order_number)])
        return events


# --------------------------------------------------------------------------- answers for the order in focus


def _unproven_hint(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """The shopper named an order they have not proven is theirs: offer to look it up."""
    if focus_number(tracker):
        dispatcher.utter_message(text="For the details of a specific order, I first need to confirm it's yours.",
                                 buttons=[{"title": "Look up my order", "payload": "/track_order"}])


class ActionCheckCancellationFee(Action):
    def name(self) -> str:
        return "action_check_cancellation_fee"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view = focus_view(tracker)
        if view is None:
            say_policy_answer(dispatcher, "check_cancellation_fee")
            _unproven_hint(dispatcher, tracker)
            return []
        fee = order_service().cancellation_fee(requester(tracker), view.number)
        buttons = [{"title": "Cancel this order", "payload": "/cancel_order"}] if fee.cancellable else []
        dispatcher.utter_message(text=f"Order {view.number}: {fee.explanation}", buttons=buttons)
        return []


class ActionDeliveryPeriod(Action):
    def name(self) -> str:
        return "action_delivery_period"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        view = focus_view(tracker)
        if view is None:
            say_policy_answer(dispatcher, "delivery_period")
            _unproven_hint(dispatcher, tracker)
            return []
        est = order_service().delivery_estimate(requester(tracker), view.number)
        if est.source == "delivered" and est.delivered_at:
            text = f"Order {est.order_number} was delivered on {say_date(est.delivered_at)}."
        elif est.source == "none" or est.earliest is None:
            text = f"Order {est.order_number} is {est.status_label.lower()}, so no delivery is planned."
        elif est.source == "carrier" or est.earliest == est.latest:
            text = f"Order {est.order_number} should arrive on {say_date(est.earliest)}"
            text += f" ({est.carrier})." if est.carrier else "."
        else:
            text = (f"Order {est.order_number} ({est.shipping_method} shipping) should arrive between "
                    f"{say_date(est.earliest)} and {say_date(est.latest)}.")
        if est.tracking_url and est.source != "delivered":
            text += f"\nTrack the parcel: {est.tracking_url}"
        dispatcher.utter_message(text=text)
        return []


class ActionChangeOrder(Action):
    """Item changes happen in the shop's order page; in the chat, the address of an unshipped order."""

    def name(self) -> str:
        return "action_change_order"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        say_policy_answer(dispatcher, "change_order")
        view = focus_view(tracker)
        if view is None:
            return []
        if view.can_change_address:
            dispatcher.utter_message(text=f"Order {view.number} hasn't shipped yet, so I can change its delivery "
                                          "address or cancel it right here.", buttons=next_step_buttons(view))
        else:
            dispatcher.utter_message(text=f"Order {view.number} is {view.status_label.lower()}, so it can't be "
                                          "changed any more.", buttons=next_step_buttons(view))
        return []


class ActionStop(Action):
    """Leaves whatever was going on (a form, a pending confirmation) and says so."""

    def name(self) -> str:
        return "action_stop"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(text="Okay, I've stopped there. Anything else I can help with?")
        return [SlotSet(name, None) for name in
                ("pending_confirmation", "order_contact", "new_address", "return_items", "return_reason")]
