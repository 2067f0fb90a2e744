"""The order actions, run directly with real rasa_sdk Trackers against real orders in SQLite.

A ``Chat`` plays the Rasa server's part: the gateway's metadata on every user message, form slot
candidates after the form action, and the slot events the actions return applied to the next turn.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions import orders as order_actions
from actions.context import requester
from actions.orders import (
    BAD_CONTACT_TEXT,
    BAD_NUMBER_TEXT,
    VERIFY_FAILED_TEXT,
    ActionAskOrderNumber,
    ActionCancelOrder,
    ActionChangeAddress,
    ActionCheckCancellationFee,
    ActionConfirm,
    ActionDeliveryPeriod,
    ActionStartReturn,
    ActionStop,
    ActionTrackOrder,
    ActionTrackRefund,
    ValidateCancelOrderForm,
    ValidateChangeAddressForm,
    ValidateReturnForm,
    ValidateTrackOrderForm,
)
from bot.catalog.tables import Product
from bot.db import session_scope
from bot.demo.orders import add_order
from bot.knowledge.shop_policy_file import get_policy
from bot.shop.orders import NOT_FOUND_TEXT, utcnow
from bot.shop.tables import CANCELLED, DELIVERED, PAID, PLACED, SHIPPED, Customer, Order, Refund, Return
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("catalog")

DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
_numbers = iter(random.Random().sample(range(900000, 990000), 5000))


def new_number() -> str:
    return f"NW-{next(_numbers)}"


class Shopper:
    """A customer with orders in given states (fresh rows for every test)."""

    def __init__(self, statuses: list[str]) -> None:
        tag = uuid.uuid4().hex[:8]
        self.email = f"shopper.{tag}@example.com"
        self.postcode = "62704"
        self.numbers: dict[str, str] = {}
        now = utcnow().replace(microsecond=0)
        with session_scope() as session:
            customer = Customer(email=self.email, name=f"Pat {tag}", postcode=self.postcode)
            session.add(customer)
            session.flush()
            self.customer_id = customer.id
            products = list(session.scalars(select(Product).where(Product.price > 0, Product.stock > 5)
                                            .order_by(Product.id).limit(40)))
            rng = random.Random(tag)
            for status in statuses:
                number = new_number()
                lines = [(p, 1, "") for p in rng.sample(products, 2)]
                delivered = now - timedelta(days=3) if status == DELIVERED else None
                add_order(session, rng, number=number, customer=customer, email=self.email, name=f"Pat {tag}",
                          place=("Springfield", "IL", self.postcode, "US"), lines=lines, status=status,
                          placed_at=now - timedelta(days=8 if status == DELIVERED else 1), now=now,
                          policy=get_policy(), method="Standard", delivered_at=delivered)
                self.numbers[status] = number


def order_row(number: str) -> dict[str, Any]:
    with session_scope() as session:
        order = session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        return {"status": order.status, "line1": order.ship_line1,
                "refunds": session.scalar(select(func.count()).select_from(Refund).where(Refund.order_id == order.id)),
                "returns": session.scalar(select(func.count()).select_from(Return).where(Return.order_id == order.id)),
                "stock": [session.get(Product, i.product_id).stock for i in order.items]}


class Chat:
    """One conversation; ``customer_id`` is what the gateway verified (None: a guest)."""

    def __init__(self, customer_id: int | None = None) -> None:
        self.sender = f"test-{uuid.uuid4().hex[:12]}"
        self.metadata: dict[str, Any] = {"customer_id": customer_id} if customer_id else {}
        self.slots: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []

    def tracker(self, text: str, intent: str, entities: list[dict[str, Any]] | None = None,
                candidates: dict[str, Any] | None = None, form: str | None = None) -> Tracker:
        latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": entities or [],
                  "metadata": self.metadata}
        events: list[dict[str, Any]] = [{"event": "slot", "name": k, "value": v} for k, v in self.slots.items()]
        events.append({"event": "user", "text": text, "parse_data": latest, "metadata": self.metadata})
        if form:
            events.append({"event": "action", "name": form})
        events += [{"event": "slot", "name": k, "value": v} for k, v in (candidates or {}).items()]
        return Tracker(self.sender, {**self.slots, **(candidates or {})}, latest, events, False, None,
                       {"name": form} if form else {}, "action_listen")

    def _apply(self, events: list[dict[str, Any]], dispatcher: CollectingDispatcher) -> list[str]:
        for event in events:
            if event.get("event") == "slot":
                self.slots[event["name"]] = event["value"]
        self.messages = dispatcher.messages
        return [m.get("text") or "" for m in dispatcher.messages]

    def fill(self, validator: Any, text: str, intent: str = "inform", candidates: dict[str, Any] | None = None,
             entities: list[dict[str, Any]] | None = None) -> list[str]:
        """One user turn inside a form: the validation action extracts and validates, as Rasa calls it."""
        dispatcher = CollectingDispatcher()
        tracker = self.tracker(text, intent, entities, candidates, form=validator.form)
        events = asyncio.run(validator.run(dispatcher, tracker, DOMAIN))
        texts = self._apply(events, dispatcher)
        if not any(e.get("name") == "requested_slot" for e in events):
            # the action left it to Rasa: the first of the form's slots that is still empty
            required = DOMAIN["forms"][validator.form]["required_slots"]
            self.slots["requested_slot"] = next((s for s in required if self.slots.get(s) is None), None)
        return texts

    def act(self, action: Action, text: str = "", intent: str = "inform") -> list[str]:
        dispatcher = CollectingDispatcher()
        events = action.run(dispatcher, self.tracker(text, intent), DOMAIN)
        return self._apply(events, dispatcher)


def _everything(chat: Chat) -> str:
    return repr(chat.messages)


# --------------------------------------------------------------------------- identity


def test_requester_comes_from_message_metadata_only() -> None:
    chat = Chat(customer_id=42)
    chat.slots["customer_id"] = 7  # a slot can say anything: it is never read for identity
    assert requester(chat.tracker("hi", "greet")).customer_id == 42
    guest = Chat()
    assert requester(guest.tracker("hi", "greet")) .customer_id is None
    # metadata only on the user event (not copied into latest_message) is found too
    t = chat.tracker("hi", "greet")
    t.latest_message = {k: v for k, v in t.latest_message.items() if k != "metadata"}
    assert requester(t).customer_id == 42
    # nonsense values are no identity
    for bad in ("abc", -3, True, 0, None, 1.5):
        assert requester(Tracker("s", {}, {"metadata": {"customer_id": bad}}, [], False, None, {},
                                 "action_listen")).customer_id is None


# --------------------------------------------------------------------------- authorization


def test_signed_in_shopper_cannot_read_or_change_another_shoppers_order() -> None:
    alice, bob = Shopper([PAID, DELIVERED]), Shopper([PAID, SHIPPED, DELIVERED])
    before = {n: order_row(n) for n in bob.numbers.values()}
    chat = Chat(customer_id=alice.customer_id)
    # her own order is hers at once, no questions asked
    assert chat.fill(ValidateTrackOrderForm(), alice.numbers[PAID], candidates={"order_number": alice.numbers[PAID]}
                     ) == []
    assert chat.slots["requested_slot"] is None
    text = "\n".join(chat.act(ActionTrackOrder()))
    assert alice.numbers[PAID] in text

    for number in bob.numbers.values():
        # naming Bob's order makes the form ask for proof, and shows nothing
        chat.slots = {}
        chat.fill(ValidateTrackOrderForm(), number, candidates={"order_number": number})
        assert chat.slots["requested_slot"] == "order_contact"
        # every action with Bob's number in the slots (as if the shopper forced it there)
        for action in (ActionTrackOrder(), ActionTrackRefund(), ActionCancelOrder(), ActionStartReturn()):
            chat.slots = {"order_number": number, "return_items": "all", "return_reason": "too_small"}
            texts = chat.act(action)
            assert texts == [NOT_FOUND_TEXT], (action.name(), texts)
            assert "pending_confirmation" not in chat.slots or chat.slots["pending_confirmation"] is None
        chat.slots = {"order_number": number, "new_address": "12 Baker Street, London NW1 6XE, UK"}
        assert chat.act(ActionChangeAddress()) == [NOT_FOUND_TEXT]
        # a confirmation for Bob's order, forged into the slot, cancels nothing
        chat.slots = {"pending_confirmation": f"cancel_order {number}"}
        assert chat.act(ActionConfirm(), "yes", "affirm") == [NOT_FOUND_TEXT]
        # fee and delivery date: only the general policy answer
        chat.slots = {"order_number": number}
        for action, topic in ((ActionCheckCancellationFee(), "check_cancellation_fee"),
                              (ActionDeliveryPeriod(), "delivery_period")):
            texts = chat.act(action)
            assert texts[0] == get_policy().answer(topic).text
            assert number not in texts[0]
        for forbidden in (bob.email, bob.postcode):
            assert forbidden not in _everything(chat)
    # guessing numbers around Bob's gives the same answer as a number that does not exist
    base = int(bob.numbers[PAID].split("-")[1])
    for guess in [f"NW-{base + d}" for d in range(-3, 4)] + ["NW-999999"]:
        chat.slots = {"order_number": guess}
        texts = chat.act(ActionTrackOrder())
        assert texts == [NOT_FOUND_TEXT] or guess in alice.numbers.values()
    assert {n: order_row(n) for n in bob.numbers.values()} == before


def test_verified_guest_sees_only_the_order_they_proved() -> None:
    alice, bob = Shopper([PAID]), Shopper([PAID, PLACED])
    chat = Chat()  # a guest
    chat.fill(ValidateCancelOrderForm(), alice.numbers[PAID], candidates={"order_number": alice.numbers[PAID]})
    assert chat.slots["requested_slot"] == "order_contact"
    assert chat.fill(ValidateCancelOrderForm(), alice.email) == [f"Thanks, that matches order {alice.numbers[PAID]}."]
    assert chat.slots["requested_slot"] is None and chat.slots["order_contact"] is None  # the email is not kept
    assert alice.numbers[PAID] in chat.act(ActionTrackOrder())[0]
    before = order_row(bob.numbers[PAID])
    for number in bob.numbers.values():
        chat.slots = {"order_number": number}
        assert chat.act(ActionTrackOrder()) == [NOT_FOUND_TEXT]
        assert chat.act(ActionCancelOrder()) == [NOT_FOUND_TEXT]
        chat.slots = {"pending_confirmation": f"cancel_order {number}"}
        assert chat.act(ActionConfirm(), "yes", "affirm") == [NOT_FOUND_TEXT]
    assert order_row(bob.numbers[PAID]) == before
    # another conversation (another guest) does not inherit the proof
    other = Chat()
    other.slots = {"order_number": alice.numbers[PAID]}
    assert other.act(ActionTrackOrder()) == [NOT_FOUND_TEXT]


def test_guest_verification_with_postcode_and_no_enumeration() -> None:
    alice = Shopper([SHIPPED])
    number = alice.numbers[SHIPPED]
    replies = []
    for claimed, contact in ((number, "someone.else@example.com"), ("NW-999998", alice.email),
                             (number, "99999")):
        chat = Chat()
        chat.fill(ValidateTrackOrderForm(), claimed, candidates={"order_number": claimed})
        replies.append(chat.fill(ValidateTrackOrderForm(), contact))
        assert chat.slots["order_number"] is None and chat.slots["requested_slot"] == "order_number"
    assert replies == [[VERIFY_FAILED_TEXT]] * 3  # unknown order and wrong proof: word for word the same
    chat = Chat()
    chat.slots["requested_slot"] = "order_number"  # the form asked for it when it started
    chat.fill(ValidateTrackOrderForm(), f"my order is {number.lower().replace('-', ' ')}")
    assert chat.slots["order_number"] == number  # typed loosely, found in the text
    chat.fill(ValidateTrackOrderForm(), "my zip is 62704")
    assert chat.slots["requested_slot"] is None
    text = chat.act(ActionTrackOrder())[0]
    assert number in text and "Shipped with" in text and "tracking number" in text
    assert chat.messages[1]["custom"]["type"] == "order_card"


def test_verification_locks_after_five_failures_and_stops_the_form() -> None:
    alice = Shopper([PAID])
    number = alice.numbers[PAID]
    chat = Chat()
    for attempt in range(5):
        chat.fill(ValidateTrackOrderForm(), number, candidates={"order_number": number})
        texts = chat.fill(ValidateTrackOrderForm(), f"wrong{attempt}@example.com")
    assert "paused" in texts[0] and "try again in about 15 minutes" in texts[0]
    assert chat.slots["requested_slot"] is None  # the form ends
    assert chat.act(ActionTrackOrder()) == []  # the lock was already explained: nothing more, and no details
    assert chat.slots["order_contact"] is None
    # even the right email is refused while locked, and the form does not ask for it
    texts = chat.fill(ValidateTrackOrderForm(), number, candidates={"order_number": number})
    assert "paused" in texts[0] and chat.slots["requested_slot"] is None


# --------------------------------------------------------------------------- form validation


def test_bad_order_number_bad_email_and_bad_address_are_asked_again() -> None:
    alice = Shopper([PLACED])
    chat = Chat()
    chat.slots["requested_slot"] = "order_number"
    assert chat.fill(ValidateChangeAddressForm(), "hello there 12") == [BAD_NUMBER_TEXT]
    assert chat.slots["order_number"] is None and chat.slots["requested_slot"] == "order_number"
    chat.fill(ValidateChangeAddressForm(), alice.numbers[PLACED])
    assert chat.slots["requested_slot"] == "order_contact"
    assert chat.fill(ValidateChangeAddressForm(), "jane@") == [BAD_CONTACT_TEXT]
    assert chat.slots["requested_slot"] == "order_contact"
    chat.fill(ValidateChangeAddressForm(), f"it's {alice.email.upper()}")
    assert chat.slots["requested_slot"] == "new_address"
    texts = chat.fill(ValidateChangeAddressForm(), "Baker Street, London, UK")
    assert "postcode is missing" in texts[0] and chat.slots["requested_slot"] == "new_address"
    texts = chat.fill(ValidateChangeAddressForm(), "Baker Street, London NW1 6XE, UK")
    assert "house number is missing" in texts[0] and chat.slots["new_address"] is None
    assert chat.fill(ValidateChangeAddressForm(), "12 Baker Street\nLondon NW1 6XE\nUK") == []
    assert chat.slots["requested_slot"] is None
    texts = chat.act(ActionChangeAddress())
    assert texts[0].startswith(f"Done: order {alice.numbers[PLACED]} will go to") and "NW1 6XE" in texts[0]
    assert order_row(alice.numbers[PLACED])["line1"] == "12 Baker Street"


def test_address_change_after_shipment_is_refused_without_asking_for_an_address() -> None:
    alice = Shopper([SHIPPED])
    chat = Chat(customer_id=alice.customer_id)
    chat.fill(ValidateChangeAddressForm(), "", candidates={"order_number": alice.numbers[SHIPPED]})
    assert chat.slots["requested_slot"] is None  # no address asked for
    before = order_row(alice.numbers[SHIPPED])
    text = chat.act(ActionChangeAddress())[0]
    assert "already shipped" in text and "redirect" in text
    assert order_row(alice.numbers[SHIPPED]) == before


def test_stop_clears_the_flow() -> None:
    chat = Chat()
    chat.slots = {"pending_confirmation": "cancel_order NW-100001", "return_items": "all", "order_number": "NW-1"}
    assert "stopped" in chat.act(ActionStop(), "never mind", "stop")[0]
    assert chat.slots["pending_confirmation"] is None and chat.slots["return_items"] is None
    assert chat.slots["order_number"] == "NW-1"  # the order in focus stays for follow-ups


# --------------------------------------------------------------------------- flows


def test_signed_in_shopper_picks_from_recent_orders_buttons() -> None:
    alice, bob = Shopper([PAID, SHIPPED]), Shopper([PAID])
    chat = Chat(customer_id=alice.customer_id)
    chat.act(ActionAskOrderNumber())
    payloads = [b["payload"] for b in chat.messages[0]["buttons"]]
    assert {f'/inform{{"order_number": "{n}"}}' for n in alice.numbers.values()} == set(payloads)
    assert not any(n in repr(payloads) for n in bob.numbers.values())
    guest = Chat()
    guest.act(ActionAskOrderNumber())
    assert "order number" in guest.messages[0]["text"] and not guest.messages[0].get("buttons")


def test_cancel_asks_to_confirm_and_confirming_twice_cancels_once() -> None:
    alice = Shopper([PAID])
    number = alice.numbers[PAID]
    before = order_row(number)
    chat = Chat(customer_id=alice.customer_id)
    chat.slots = {"order_number": number}
    text = chat.act(ActionCancelOrder())[0]
    assert text.startswith(f"Cancel order {number}") and "?" in text
    assert [b["payload"] for b in chat.messages[0]["buttons"]] == ["/affirm", "/deny"]
    assert chat.slots["pending_confirmation"] == f"cancel_order {number}"
    assert order_row(number)["status"] == PAID  # nothing happens before the yes
    pending = dict(chat.slots)
    first = chat.act(ActionConfirm(), "yes", "affirm")[0]
    assert first.startswith(f"Done: order {number} is cancelled.") and "refund" in first
    assert chat.slots["pending_confirmation"] is None
    chat.slots = pending  # the same confirmation delivered again (double click, retry)
    assert chat.act(ActionConfirm(), "yes", "affirm") == [f"Order {number} is already cancelled."]
    after = order_row(number)
    assert after["status"] == CANCELLED and after["refunds"] == 1
    assert after["stock"] == [s + 1 for s in before["stock"]]  # restocked once


def test_no_keeps_the_order_and_a_stale_yes_cancels_nothing() -> None:
    alice = Shopper([PLACED])
    number = alice.numbers[PLACED]
    chat = Chat(customer_id=alice.customer_id)
    chat.slots = {"order_number": number}
    chat.act(ActionCancelOrder())
    assert chat.act(ActionConfirm(), "no", "deny") == [f"Okay, I won't cancel order {number}. Anything else I can do?"]
    chat.act(ActionConfirm(), "yes", "affirm")  # nothing pending any more
    assert chat.messages[0].get("response") == "utter_anything_else"
    assert order_row(number)["status"] == PLACED


def start_return(number: str) -> dict[str, str]:
    return {"title": "Start a return", "payload": f'/get_refund{{"order_number": "{number}"}}'}


def test_cancel_after_shipment_offers_the_return_path() -> None:
    """Issue 16, item 4: a shipped order that cannot be cancelled offers "Start a return" for that very order."""
    alice = Shopper([SHIPPED, DELIVERED])
    chat = Chat(customer_id=alice.customer_id)
    for status in (SHIPPED, DELIVERED):
        number = alice.numbers[status]
        chat.slots = {"order_number": number}
        text = chat.act(ActionCancelOrder())[0]
        assert "can't be cancelled" in text and "return" in text.lower()
        assert chat.slots.get("pending_confirmation") is None
        assert chat.messages[0]["buttons"][0] == start_return(number), (status, chat.messages)
    assert order_row(alice.numbers[DELIVERED])["status"] == DELIVERED

    # The button's payload pins its order: the return form starts with it (no "which order?") and, for the
    # parcel still on its way, the return says plainly when it can start.
    shipped = alice.numbers[SHIPPED]
    chat.slots = {}
    chat.fill(ValidateReturnForm(), start_return(shipped)["payload"], "get_refund",
              entities=[{"entity": "order_number", "value": shipped}], candidates={"order_number": shipped})
    assert chat.slots["order_number"] == shipped and chat.slots["requested_slot"] is None
    text = chat.act(ActionStartReturn())[0]
    assert text.startswith(f"Order {shipped} hasn't been delivered yet. Once it arrives you have ")
    assert order_row(shipped)["returns"] == 0


def test_an_order_that_ships_before_the_yes_offers_the_return() -> None:
    alice = Shopper([PAID])
    number = alice.numbers[PAID]
    chat = Chat(customer_id=alice.customer_id)
    chat.slots = {"order_number": number}
    chat.act(ActionCancelOrder())
    with session_scope() as session:  # the warehouse was quicker than the shopper
        order = session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        order.status = SHIPPED
    text = chat.act(ActionConfirm(), "yes", "affirm")[0]
    assert "has shipped in the meantime" in text
    assert chat.messages[0]["buttons"] == [start_return(number), {"title": "Track it", "payload": "/track_order"}]
    assert order_row(number)["status"] == SHIPPED


def test_return_with_items_and_reason_gives_an_rma_once() -> None:
    alice = Shopper([DELIVERED])
    number = alice.numbers[DELIVERED]
    chat = Chat(customer_id=alice.customer_id)
    form = ValidateReturnForm()
    chat.fill(form, "", candidates={"order_number": number})
    assert chat.slots["requested_slot"] == "return_items"
    assert chat.fill(form, "the zqxv thingamajig") != []  # not an item: asked again
    assert chat.slots["requested_slot"] == "return_items"
    chat.fill(form, "the first one")
    assert chat.slots["requested_slot"] == "return_reason" and "," not in chat.slots["return_items"]
    chat.fill(form, "/inform", entities=[{"entity": "return_reason", "value": "too_small"}],
              candidates={"return_reason": "too_small"})
    assert chat.slots["requested_slot"] is None
    ready = dict(chat.slots)
    text = chat.act(ActionStartReturn())[0]
    assert f"for order {number} is registered" in text and "RMA-" in text and "label" in text
    # no link to a page the demo shop does not have (issue 16, item 4): the chat follows the return
    assert "/returns" not in text and "follow the return at" not in text
    assert chat.messages[0]["buttons"] == [{"title": "Where's my refund?",
                                            "payload": f'/track_refund{{"order_number": "{number}"}}'}]
    rma = text.split("Your return ")[1].split()[0]
    chat.slots = ready  # submitted again: the same return, nothing new
    assert rma in chat.act(ActionStartReturn())[0]
    row = order_row(number)
    assert row["returns"] == 1 and row["refunds"] == 1 and row["status"] == DELIVERED  # one item is left
    chat.slots = {"order_number": number}
    text = chat.act(ActionTrackRefund())[0]
    assert f"return {rma}" in text and "as soon as the parcel reaches us" in text


def test_fee_and_delivery_for_the_order_in_focus() -> None:
    alice = Shopper([PAID, SHIPPED])
    chat = Chat(customer_id=alice.customer_id)
    chat.slots = {"order_number": alice.numbers[PAID]}
    assert chat.act(ActionCheckCancellationFee())[0] == f"Order {alice.numbers[PAID]}: Cancelling this order is free."
    text = chat.act(ActionDeliveryPeriod())[0]
    assert text.startswith(f"Order {alice.numbers[PAID]} (Standard shipping) should arrive between")
    chat.slots = {"order_number": alice.numbers[SHIPPED]}
    text = chat.act(ActionDeliveryPeriod())[0]
    assert "should arrive on" in text and "Track the parcel" in text
    chat.slots = {}
    assert chat.act(ActionDeliveryPeriod())[0] == get_policy().answer("delivery_period").text


def test_order_service_is_shared_by_the_actions() -> None:
    assert order_actions.order_service() is order_actions.order_service()


def test_a_postcode_the_nlu_took_for_an_order_number_does_not_replace_the_order() -> None:
    owner = Shopper([SHIPPED])
    number = owner.numbers[SHIPPED]
    chat = Chat()
    form = ValidateTrackOrderForm()
    chat.slots["requested_slot"] = "order_number"
    chat.fill(form, f"where is {number}", intent="track_order", candidates={"order_number": number})
    assert chat.slots["order_number"] == number and chat.slots["requested_slot"] == "order_contact"
    # DIET tags the bare postcode "62704" as an order_number entity: a candidate for the slot
    texts = chat.fill(form, owner.postcode, candidates={"order_number": owner.postcode},
                      entities=[{"entity": "order_number", "value": owner.postcode}])
    assert chat.slots["order_number"] == number, texts
    assert any(f"matches order {number}" in t for t in texts), texts
