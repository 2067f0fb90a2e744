"""Remembering a preference with consent, over ``/api/chat``: the real gateway, Rasa with the trained model and
the action server (issue 16, item 1).

A signed-in shopper without consent says "I'm a size M"; the assistant asks whether to remember it, and a typed
"yes" or the "Yes, remember it" button both turn consent on *and* save the size. A "no" saves nothing.
"""

from __future__ import annotations

import uuid

import pytest

from bot.db import session_scope
from bot.shop import crm
from bot.shop.tables import Customer
from tests.integration.test_order_chat import Chat

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("catalog")]


def new_customer() -> int:
    tag = uuid.uuid4().hex[:8]
    with session_scope() as session:
        customer = Customer(email=f"consent.{tag}@example.com", name=f"Robin {tag}", postcode="62704")
        session.add(customer)
        session.flush()
        assert not crm.has_consent(session, customer.id)
        return customer.id


def remembered(customer_id: int) -> tuple[bool, dict[str, list[str]]]:
    with session_scope() as session:
        view = crm.profile(session, customer_id)
        return crm.has_consent(session, customer_id), dict(view.preferences)


@pytest.mark.parametrize("answer", ["yes", "/give_consent"], ids=["typed yes", "the button"])
def test_a_yes_to_the_consent_question_saves_the_size(stack, answer: str) -> None:  # type: ignore[no-untyped-def]
    customer_id = new_customer()
    chat = Chat(stack, customer_id)
    asked = chat.say("I'm a size M")
    assert "remember" in asked.lower() and "size M" in asked, asked
    assert remembered(customer_id) == (False, {}), "saved before the shopper agreed"
    thanks = chat.say(answer)
    assert "size M" in thanks, thanks
    consent, preferences = remembered(customer_id)
    assert consent, chat.everything()
    assert preferences.get("size") == ["M"], (preferences, chat.everything())


def test_a_no_saves_nothing_and_leaves_consent_off(stack) -> None:  # type: ignore[no-untyped-def]
    customer_id = new_customer()
    chat = Chat(stack, customer_id)
    chat.say("I'm a size M")
    answer = chat.say("no thanks")
    assert "won't remember" in answer, answer
    assert remembered(customer_id) == (False, {})
