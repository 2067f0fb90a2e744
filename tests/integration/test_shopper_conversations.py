"""Shoppers' own words through the whole stack (`POST /api/chat`: gateway, Rasa with the trained model, action
server): two requests in one message, corrections and negations, prices in words and slang, British and
American names, a typed size for the cart, a side question inside a form, specific knowledge answers and
off-topic messages."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bot.catalog.tables import Product
from tests.integration.test_integration import cards, say, texts

pytestmark = pytest.mark.integration


def products(db_session, shown: list[dict[str, Any]]) -> list[Product]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return [db_session.get(Product, c["id"]) for c in shown]


def new_conversation() -> str:
    return f"talk-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- two requests in one message


def test_a_search_and_a_shipping_question_in_one_message_get_both_answered(stack, db_session) -> None:  # type: ignore[no-untyped-def]
    replies = say(stack, new_conversation(), "i need a warm jacket under 80, and do you ship to canada?")
    found = cards(replies)
    assert found and all(c["price"] <= 80 for c in found), replies
    assert "Canada" in texts(replies), texts(replies)


# --------------------------------------------------------------------------- corrections and negations


def test_no_i_meant_blue_replaces_the_color(stack, db_session) -> None:  # type: ignore[no-untyped-def]
    cid = new_conversation()
    first = cards(say(stack, cid, "show me red sweaters"))
    assert first and all(p.color.lower() == "red" for p in products(db_session, first))
    corrected = cards(say(stack, cid, "no, I meant the blue ones"))
    assert corrected, "the correction fell back"
    assert all(p.color.lower() == "blue" and "Sweaters" in p.category for p in products(db_session, corrected))


def test_not_those_the_cheaper_ones(stack) -> None:  # type: ignore[no-untyped-def]
    cid = new_conversation()
    first = cards(say(stack, cid, "show me boots"))
    cheaper = cards(say(stack, cid, "not those, the cheaper ones"))
    assert first and cheaper
    assert max(c["price"] for c in cheaper) < sorted(c["price"] for c in first)[len(first) // 2]


def test_boots_not_leather(stack, db_session) -> None:  # type: ignore[no-untyped-def]
    found = cards(say(stack, new_conversation(), "boots, not leather"))
    shown = products(db_session, found)
    assert shown and all("Boots" in p.category for p in shown)
    assert not any("leather" in (p.material or "").lower() for p in shown), [p.material for p in shown]


def test_no_brand_and_anything_but_a_color(stack, db_session) -> None:  # type: ignore[no-untyped-def]
    cid = new_conversation()
    first = products(db_session, cards(say(stack, cid, "sneakers")))
    banned = first[0].brand
    without = products(db_session, cards(say(stack, cid, f"no {banned}")))
    assert without and all(p.brand != banned for p in without)
    shown = products(db_session, cards(say(stack, new_conversation(), "sweaters, anything but black")))
    assert shown and all(p.color.lower() != "black" for p in shown)


# --------------------------------------------------------------------------- prices in words, UK and US names


@pytest.mark.parametrize(("message", "highest"), [("a jacket under fifty bucks", 50),
                                                  ("hoodies under a hundred quid", 100),
                                                  ("sneakers no more than sixty dollars", 60)])
def test_prices_in_words_and_slang(stack, message: str, highest: float) -> None:  # type: ignore[no-untyped-def]
    found = cards(say(stack, new_conversation(), message))
    assert found and all(c["price"] <= highest for c in found), (message, [c["price"] for c in found])


def test_twenty_ish_is_around_twenty(stack) -> None:  # type: ignore[no-untyped-def]
    found = cards(say(stack, new_conversation(), "t-shirt for 20ish"))
    assert found and all(14 <= c["price"] <= 26 for c in found), [c["price"] for c in found]


@pytest.mark.parametrize(("british", "american"), [("jumpers", "sweaters"), ("trainers", "sneakers")])
def test_british_and_american_names_find_the_same_category(stack, db_session, british: str,  # type: ignore[no-untyped-def]
                                                           american: str) -> None:
    uk = products(db_session, cards(say(stack, new_conversation(), f"show me {british}")))
    us = products(db_session, cards(say(stack, new_conversation(), f"show me {american}")))
    assert uk and us
    assert {p.category for p in uk} == {p.category for p in us}


# --------------------------------------------------------------------------- the cart's variant question


def test_a_typed_size_answers_the_cart_question(stack) -> None:  # type: ignore[no-untyped-def]
    cid = new_conversation()
    found = cards(say(stack, cid, "show me sweaters"))
    pick = next(i for i, c in enumerate(found) if c["stock"] > 0 and c["price"] is not None)
    say(stack, cid, f"tell me more about the {['first', 'second', 'third', 'fourth', 'fifth'][pick]} one")
    asked = say(stack, cid, "add it to my cart")
    assert "Which size" in texts(asked), texts(asked)
    sizes = [b["title"] for b in asked[0]["buttons"]]
    wanted = "M" if "M" in sizes else sizes[0]
    typed = "medium please" if wanted == "M" else wanted
    added = say(stack, cid, typed)
    assert "Added 1 x" in texts(added) and f"size {wanted}" in texts(added), texts(added)


# --------------------------------------------------------------------------- knowledge answers and forms


def test_a_side_question_inside_a_form_gets_its_answer_and_the_form_goes_on(stack) -> None:  # type: ignore[no-untyped-def]
    cid = new_conversation()
    asked = texts(say(stack, cid, "where is my order"))
    assert "order number" in asked.lower(), asked
    side = texts(say(stack, cid, "btw do you ship to canada?"))
    assert "Canada" in side, side
    assert "order number" in side.lower(), side  # the form asks its question again


@pytest.mark.parametrize(("question", "expected", "not_expected"), [
    ("do you take crypto", "cryptocurrency", "help@northwind"),
    ("how much is next day delivery", "24.95", None),
    ("how long have i got to send stuff back", "30 days", None),
])
def test_specific_knowledge_answers(stack, question: str, expected: str, not_expected: str | None) -> None:  # type: ignore[no-untyped-def]
    answer = texts(say(stack, new_conversation(), question))
    assert expected in answer, answer
    if not_expected:
        assert not_expected not in answer, answer


@pytest.mark.parametrize("message", ["what's the weather like in london tomorrow",
                                     "transfer 50 quid from my savings to my current account",
                                     "recommend a good thriller film for tonight"])
def test_off_topic_gets_the_out_of_scope_answer(stack, message: str) -> None:  # type: ignore[no-untyped-def]
    replies = say(stack, new_conversation(), message)
    assert "outside what I can help with" in texts(replies), (message, texts(replies))
    assert not cards(replies)
