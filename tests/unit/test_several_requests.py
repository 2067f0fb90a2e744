"""A message with two requests gets both answered: a product search with a policy question attached (either
way round), or two policy questions. Real knowledge base (MiniLM), real product search, real rasa_sdk Trackers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.search import ActionSearchProducts
from actions.shop_answers import ActionAnswerPolicy
from bot.knowledge.base import KnowledgeBase, get_knowledge_base
from bot.knowledge.requests import clauses, split_requests


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return get_knowledge_base()


def tracker(text: str, intent: str) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return Tracker(f"test-{uuid.uuid4().hex[:10]}", {}, latest, [], False, None, {}, "action_listen")


def run(action: Any, text: str, intent: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker(text, intent), {})
    return dispatcher.messages, events


def product_cards(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for m in messages if (c := m.get("custom")) and c.get("type") == "product_cards" for p in c["products"]]


def all_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text") or "") for m in messages)


def test_clauses_keep_their_joining_words() -> None:
    parts = clauses("black and white sneakers, and do you take paypal?")
    assert [c for _, c in parts] == ["black", "white sneakers", "do you take paypal?"]
    assert "".join(sep + c for sep, c in parts).startswith("black and white sneakers")
    assert clauses("red dress size 12") == [("", "red dress size 12")]


def test_a_search_with_a_question_attached_splits_in_two(kb: KnowledgeBase) -> None:
    requests = split_requests(kb, "i need a warm jacket under 80, and do you ship to canada?")
    assert requests.main == "i need a warm jacket under 80"
    assert [s.choice.topic for s in requests.side] == ["international_shipping"]
    kept = split_requests(kb, "black and white sneakers and do you take paypal?")
    assert kept.main == "black and white sneakers"  # the product's own "and" stays


def test_one_request_stays_whole(kb: KnowledgeBase) -> None:
    for text in ("red dress size 12", "what is your return policy", "boots and a matching scarf"):
        requests = split_requests(kb, text)
        assert requests.main == text and requests.side == ()


def test_search_action_answers_the_search_and_the_question(catalog: int) -> None:
    messages, events = run(ActionSearchProducts(), "i need a warm jacket under 80, and do you ship to canada?",
                           "search_product")
    found = product_cards(messages)
    assert found and all(p["price"] <= 80 for p in found)
    assert "Canada" in all_text(messages)
    assert any(e.get("name") == "search_query" and "canada" not in str(e.get("value")).lower() for e in events)


def test_policy_action_answers_the_question_and_runs_the_search(catalog: int) -> None:
    messages, events = run(ActionAnswerPolicy(), "do you ship to canada? also i'm looking for red sweaters",
                           "delivery_options")
    assert "Canada" in all_text(messages)
    assert product_cards(messages)
    assert any(e.get("name") == "shown_products" for e in events)


def test_two_policy_questions_get_two_answers(catalog: int) -> None:
    messages, _ = run(ActionAnswerPolicy(), "what's your return policy and how long does delivery take",
                      "check_refund_policy")
    text = all_text(messages)
    assert len(messages) == 2, messages
    assert "30 days" in text and "business day" in text
