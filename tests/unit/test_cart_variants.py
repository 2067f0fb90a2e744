"""A typed size or color answers the cart's "Which size of X?" question.

Real actions, real rasa_sdk Trackers (with the events Rasa sends, so the action can tell that it asked the
question just before), the test catalog and its SQLite database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete

from actions.cart import ActionAddToCart
from actions.search import USUAL_ACTIONS
from bot.catalog.tables import Product
from bot.db import session_scope
from bot.search import references
from bot.shop import cart
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("catalog")


def tracker(text: str, intent: str, sender: str, slots: dict[str, Any] | None = None,
            entities: list[dict[str, Any]] | None = None, events: list[dict[str, Any]] | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or []}
    return Tracker(sender, slots or {}, latest, events or [], False, None, {}, "action_listen")


def run(action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    return dispatcher.messages, events, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def answer_turn(asked: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """The events Rasa sends with the answer: the add, the bot's question (its slot events), then the answer."""
    return [{"event": "user", "text": "add it"}, {"event": "action", "name": "action_add_to_cart"},
            *({"event": "slot", "name": k, "value": v} for k, v in asked.items()),
            {"event": "action", "name": "action_listen"}, {"event": "user", "text": text}]


def lines(sender: str) -> list[tuple[str, str, int]]:
    with session_scope() as session:
        summary = cart.summary(session, cart.cart_key(sender, None))
    return [(line.size, line.color, line.quantity) for line in summary.lines]


@pytest.fixture
def variants() -> Iterator[dict[str, int]]:
    """A jacket in sizes S-XL and two colors, and a shoe in sizes 8-11 (one color), in the test catalog."""
    with session_scope() as session:
        jacket = Product(sku=f"VAR-J-{uuid.uuid4().hex[:6]}", title="Variant Test Parka", brand="Northpeak",
                         category="Clothing > Jackets", price=80.0, stock=20, color="Black",
                         sizes=["S", "M", "L", "XL"], attributes={"colors": ["Black", "Blue"]})
        shoe = Product(sku=f"VAR-S-{uuid.uuid4().hex[:6]}", title="Variant Test Runner", brand="Asics",
                       category="Shoes > Running Shoes", price=90.0, stock=20, color="white",
                       sizes=["8", "9", "10", "11"])
        session.add_all([jacket, shoe])
        session.flush()
        ids = {"jacket": jacket.id, "shoe": shoe.id}
    yield ids
    with session_scope() as session:
        session.execute(delete(cart.CartItem).where(cart.CartItem.product_id.in_(ids.values())))
        for pid in ids.values():
            session.delete(session.get(Product, pid))


def ask(product_id: int, sender: str, text: str = "add it to my cart") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages, _, slots = run(ActionAddToCart(), tracker(text, "add_to_cart", sender,
                                                        entities=[{"entity": "product_id", "value": str(product_id)}]))
    return messages, slots


@pytest.mark.parametrize(("typed", "intent", "size"), [
    ("M", "nlu_fallback", "M"), ("medium please", "inform", "M"), ("large", "refine_search", "L"),
    ("extra large", "state_preference", "XL"), ("xl", "add_to_cart", "XL"),
    ("I'll take a small", "product_details", "S"), ("size L", "search_product", "L"),
])
def test_a_typed_size_then_a_typed_color_add_the_variant(variants: dict[str, int], typed: str, intent: str,
                                                          size: str) -> None:
    sender = f"var-{uuid.uuid4().hex[:10]}"
    messages, asked = ask(variants["jacket"], sender)
    assert messages[0]["text"] == "Which size of Variant Test Parka?"
    assert asked["pending_variant"] == {"product_id": variants["jacket"], "ask": "size", "size": "", "color": "",
                                        "quantity": 1}
    messages, _, asked_color = run(ActionAddToCart(), tracker(typed, intent, sender, asked,
                                                              events=answer_turn(asked, typed)))
    assert messages[0]["text"] == "Which color of Variant Test Parka?"  # the size is taken, the color is next
    assert asked_color["pending_variant"]["size"] == size and asked_color["pending_variant"]["ask"] == "color"
    messages, _, done = run(ActionAddToCart(), tracker("the blue one pls", "nlu_fallback", sender, asked_color,
                                                       events=answer_turn(asked_color, "the blue one pls")))
    assert messages[0]["text"].startswith(f"Added 1 x Variant Test Parka (size {size}, Blue) to your cart.")
    assert done["pending_variant"] is None
    assert lines(sender) == [(size, "Blue", 1)]


@pytest.mark.parametrize("typed", ["size 10", "a 10", "ten", "10 please"])
def test_a_typed_shoe_size_adds_it(variants: dict[str, int], typed: str) -> None:
    sender = f"var-{uuid.uuid4().hex[:10]}"
    _, asked = ask(variants["shoe"], sender, "add 2 of those")
    assert asked["pending_variant"]["quantity"] == 2
    messages, _, _ = run(ActionAddToCart(), tracker(typed, "inform", sender, asked, events=answer_turn(asked, typed)))
    assert messages[0]["text"].startswith("Added 2 x Variant Test Runner (size 10) to your cart.")
    assert lines(sender) == [("10", "", 2)]


def test_color_and_size_in_one_answer_and_a_size_it_does_not_come_in(variants: dict[str, int]) -> None:
    sender = f"var-{uuid.uuid4().hex[:10]}"
    _, asked = ask(variants["jacket"], sender)
    messages, _, again = run(ActionAddToCart(), tracker("XXL", "nlu_fallback", sender, asked,
                                                        events=answer_turn(asked, "XXL")))
    assert "doesn't come in size XXL" in messages[0]["text"]
    assert [b["title"] for b in messages[0]["buttons"]] == ["S", "M", "L", "XL"]
    assert again["pending_variant"]["ask"] == "size"  # still waiting for a size
    messages, _, _ = run(ActionAddToCart(), tracker("M in black", "refine_search", sender, again,
                                                    events=answer_turn(again, "M in black")))
    assert messages[0]["text"].startswith("Added 1 x Variant Test Parka (size M, Black) to your cart.")


def test_a_message_that_answers_nothing_gets_its_usual_action(variants: dict[str, int]) -> None:
    sender = f"var-{uuid.uuid4().hex[:10]}"
    _, asked = ask(variants["jacket"], sender)
    for text, intent in (("show me boots under 100", "search_product"), ("what is it made of", "product_details"),
                         ("NW-100234", "inform"), ("medium or large?", "nlu_fallback")):
        messages, events, slots = run(ActionAddToCart(), tracker(text, intent, sender, asked,
                                                                 events=answer_turn(asked, text)))
        assert not messages, text
        assert slots == {"pending_variant": None}, text
        assert [e["name"] for e in events if e["event"] == "followup"] == [USUAL_ACTIONS[intent]], text
    assert lines(sender) == []


def test_an_old_question_is_not_answered_later(variants: dict[str, int]) -> None:
    """The slot survives a search in between; the events show the question was not the last thing asked."""
    sender = f"var-{uuid.uuid4().hex[:10]}"
    _, asked = ask(variants["jacket"], sender)
    events = [*answer_turn(asked, "show me boots")[:-1], {"event": "user", "text": "show me boots"},
              {"event": "action", "name": "action_search_products"}, {"event": "user", "text": "M"}]
    messages, followup, _ = run(ActionAddToCart(), tracker("M", "nlu_fallback", sender, asked, events=events))
    assert not messages and [e["name"] for e in followup if e["event"] == "followup"] == ["action_answer_policy"]
    assert lines(sender) == []


def test_buttons_still_work_and_set_no_question(variants: dict[str, int]) -> None:
    sender = f"var-{uuid.uuid4().hex[:10]}"
    messages, asked = ask(variants["shoe"], sender)
    nine = next(b for b in messages[0]["buttons"] if b["title"] == "9")
    entities = [{"entity": "product_id", "value": str(variants["shoe"])}, {"entity": "size", "value": "9"}]
    messages, _, slots = run(ActionAddToCart(), tracker(nine["payload"], "add_to_cart", sender, asked, entities,
                                                        events=answer_turn(asked, nine["payload"])))
    assert messages[0]["text"].startswith("Added 1 x Variant Test Runner (size 9)")
    assert slots["pending_variant"] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("M", ("M", "")), ("medium please", ("M", "")), ("Large", ("L", "")), ("extra large", ("XL", "")),
    ("x-large", ("XL", "")), ("xl pls", ("XL", "")), ("the black one", ("", "Black")), ("blue pls", ("", "Blue")),
    ("the red one", ("", "red")), ("s", ("S", "")), ("XXL", ("XXL", "")),
    ("show me jackets", None), ("the second one", None), ("medium or large", None), ("thanks", None),
])
def test_variant_answers(text: str, expected: tuple[str, str] | None) -> None:
    assert references.variant_answer(text, ["S", "M", "L", "XL"], ["Black", "Blue"], ["black", "blue", "red"]) \
        == expected


def test_shoe_sizes_by_number_and_word() -> None:
    for text in ("size 10", "a 10", "ten", "10"):
        assert references.variant_answer(text, ["8", "9", "10", "11"], []) == ("10", ""), text
    assert references.variant_answer("the black one", ["8", "9", "10"], []) is None  # no color to choose


def test_the_slot_and_the_rule_that_route_the_answer() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    slot = domain["slots"]["pending_variant"]
    assert slot["influence_conversation"] is False and [m["type"] for m in slot["mappings"]] == ["custom"]
    rules = yaml.safe_load((ROOT / "data" / "rules" / "rules.yml").read_text())["rules"]
    [rule] = [r for r in rules if r["steps"][0] == {"action": "action_add_to_cart"}]
    assert rule["steps"][-1] == {"action": "action_add_to_cart"} and "condition" not in rule
    routed = {s["intent"] for s in rule["steps"][1]["or"]}
    assert {"nlu_fallback", "inform", "refine_search", "state_preference"} <= routed
    assert routed <= set(USUAL_ACTIONS)  # each can be handed back when it answers nothing
