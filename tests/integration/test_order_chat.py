"""Order flows over ``/api/chat``: the real gateway, Rasa with the trained model and the action server.

The authorization test of the issue: shopper A, signed in with a valid token, cannot read or change
shopper B's order by guessing numbers, and a guest cannot either without the right email or postcode.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from bot.config import get_settings
from bot.db import session_scope
from bot.shop.identity import issue_token, jwt_secret
from bot.shop.tables import CANCELLED, PAID, SHIPPED, Order, OrderItem, Refund, VerificationThrottle
from tests.unit.test_order_actions import Shopper

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("catalog")]


@pytest.fixture(autouse=True)
def fresh_throttle() -> None:
    """Every chat here comes from 127.0.0.1, and failed proofs count per client address: start clean."""
    with session_scope() as session:
        session.execute(delete(VerificationThrottle))


class Chat:
    """One conversation over the gateway's REST endpoint, signed in when ``customer_id`` is given."""

    def __init__(self, stack: Any, customer_id: int | None = None) -> None:
        self.url = f"{stack.gateway_url}/api/chat"
        self.id = f"oc-{uuid.uuid4().hex[:12]}"
        settings = get_settings()
        self.token = (issue_token(customer_id, 3600, jwt_secret(settings), settings.jwt_issuer)
                      if customer_id else None)
        self.seen: list[dict[str, Any]] = []

    def say(self, text: str) -> str:
        body: dict[str, Any] = {"conversation_id": self.id, "text": text}
        if self.token:
            body["token"] = self.token
        response = httpx.post(self.url, json=body, timeout=60)
        response.raise_for_status()
        replies = response.json()["replies"]
        assert not response.json()["degraded"], replies
        self.seen += replies
        return "\n".join(r.get("text") or "" for r in replies)

    def everything(self) -> str:
        return repr(self.seen)


def secrets_of(number: str) -> list[str]:
    """What must never be shown to someone who has not proven the order is theirs."""
    with session_scope() as session:
        order = session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        titles = [i.title for i in session.scalars(select(OrderItem).where(OrderItem.order_id == order.id))]
        tracking = [order.shipment.tracking_number] if order.shipment else []
        return [*titles, *tracking, order.ship_line1, order.email]


def status_of(number: str) -> tuple[str, int]:
    with session_scope() as session:
        order = session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        refunds = len(list(session.scalars(select(Refund).where(Refund.order_id == order.id))))
        return order.status, refunds


def test_signed_in_shopper_cannot_read_or_cancel_someone_elses_order(stack) -> None:  # type: ignore[no-untyped-def]
    a, b = Shopper([PAID]), Shopper([PAID, SHIPPED])
    target = b.numbers[PAID]
    chat = Chat(stack, a.customer_id)

    # guessing B's number: asked to prove it, and A's own email does not prove it
    chat.say(f"where is my order {target}")
    chat.say(a.email)
    # guessing numbers that may or may not exist gets the same answer as B's real one
    chat.say("track order NW-999999")
    chat.say(a.email)
    # trying to cancel B's order and saying yes changes nothing
    chat.say(f"cancel order {target}")
    chat.say(a.email)
    chat.say("yes")
    seen = chat.everything()
    for secret in secrets_of(target) + secrets_of(b.numbers[SHIPPED]):
        assert secret not in seen, secret
    assert status_of(target) == (PAID, 0)
    # identical wording for B's order and for a number that does not exist. (Failing twice may hand the chat
    # to a person: the escalation model reads repeated form failures as a shopper who is stuck.)
    failures = [m.get("text") for m in chat.seen if "couldn't match those details" in (m.get("text") or "")]
    assert len(failures) >= 2 and len(set(failures)) == 1, seen


def test_guest_needs_the_orders_email_or_postcode(stack) -> None:  # type: ignore[no-untyped-def]
    owner = Shopper([SHIPPED])
    number = owner.numbers[SHIPPED]
    guest = Chat(stack)
    guest.say(f"track my order {number}")
    assert "couldn't match" in guest.say("someone@example.com")
    for secret in secrets_of(number):
        assert secret not in guest.everything(), secret

    reply = guest.say(f"where is order {number}")
    assert "email" in reply.lower() or "postcode" in reply.lower(), reply
    proven = guest.say(owner.postcode)
    assert number in proven and secrets_of(number)[0] in proven, proven  # the items, once proven


def test_signed_in_shopper_tracks_then_cancels_their_own_order_once(stack) -> None:  # type: ignore[no-untyped-def]
    shopper = Shopper([PAID])
    number = shopper.numbers[PAID]
    chat = Chat(stack, shopper.customer_id)
    ask = chat.say("where is my order?")
    assert "recent" in ask, ask
    buttons = [b for r in chat.seen[-2:] for b in r.get("buttons") or []]
    pick = next(b for b in buttons if number in b["title"])
    tracked = chat.say(pick["payload"])
    assert number in tracked and "Paid" in tracked, tracked

    confirm = chat.say("I want to cancel it")
    assert f"Cancel order {number}" in confirm, confirm
    assert status_of(number) == (PAID, 0)  # nothing happens before the yes
    done = chat.say("yes")
    assert f"order {number} is cancelled" in done, done
    again = chat.say("yes")
    assert "Done" not in again
    assert status_of(number) == (CANCELLED, 1)  # one cancellation, one refund


def test_failed_proofs_lock_the_address_across_conversations(stack) -> None:  # type: ignore[no-untyped-def]
    owner = Shopper([SHIPPED])
    number = owner.numbers[SHIPPED]
    for attempt in range(5):  # a new conversation for every guess does not reset the count
        guesser = Chat(stack)
        guesser.say(f"track order {number}")
        answer = guesser.say(f"guess{attempt}@example.com")
        assert ("paused" if attempt == 4 else "couldn't match") in answer, answer  # the fifth failure locks
    late = Chat(stack)
    locked = late.say(f"track order {number}")
    assert "paused" in locked, locked
    late.say(f"where is order {number}")
    late.say(owner.email)  # even the right email is refused while locked
    assert "paused" in late.everything()
    for secret in secrets_of(number):
        assert secret not in late.everything(), secret


def test_a_question_in_the_middle_of_a_form_is_answered_and_the_form_asks_again(stack) -> None:  # type: ignore[no-untyped-def]
    """No learned dialogue policy decides this turn: the question's rule answers, EndOfTurnPolicy resumes the form."""
    owner = Shopper([SHIPPED])
    number = owner.numbers[SHIPPED]
    guest = Chat(stack)
    ask = guest.say("can you track my order")
    assert "order number" in ask.lower(), ask
    replies_before = len(guest.seen)
    answer = guest.say("which payment methods do you take")
    assert "sorry" not in answer.lower() and "rephrase" not in answer.lower(), answer
    texts = [r.get("text") or "" for r in guest.seen[replies_before:]]
    assert len(texts) >= 2 and "order number" in texts[-1].lower(), texts  # the answer, then the form's question
    assert "email" in guest.say(number).lower()  # the form goes on: the number is taken, the proof is asked
    proven = guest.say(owner.email)
    assert number in proven and secrets_of(number)[0] in proven, proven
