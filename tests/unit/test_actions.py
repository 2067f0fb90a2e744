"""Actions run against real Trackers, a real CollectingDispatcher, the real index and SQLite."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.cart import ActionAddToCart, ActionCheckout, ActionRemoveFromCart, ActionViewCart
from actions.search import (
    ActionCompareProducts,
    ActionProductDetails,
    ActionRecommend,
    ActionRefineSearch,
    ActionSearchProducts,
)
from actions.shop_answers import ActionAnswerPolicy
from bot.knowledge.shop_policy_file import get_policy

pytestmark = pytest.mark.usefixtures("catalog")


def tracker(text: str, intent: str, slots: dict[str, Any] | None = None, sender: str | None = None,
            entities: list[dict[str, Any]] | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.98}, "entities": entities or []}
    return Tracker(sender or f"test-{uuid.uuid4().hex[:10]}", slots or {}, latest, [], False, None, {}, "action_listen")


def run(action, t: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    return dispatcher.messages, slots


def cards(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for m in messages if (c := m.get("custom")) and c.get("type") == "product_cards" for p in c["products"]]


def test_policy_action_answers_from_the_policy_file() -> None:
    messages, _ = run(ActionAnswerPolicy(), tracker("what payment do you take", "check_payment_methods"))
    assert messages[0]["text"] == get_policy().answer("check_payment_methods").text
    assert messages[0]["buttons"][0]["payload"] == "/payment_issue"


def test_policy_action_falls_back_for_an_intent_without_answer() -> None:
    messages, _ = run(ActionAnswerPolicy(), tracker("hmm", "affirm"))
    assert messages[0]["response"] == "utter_default"


def test_search_shows_cards_with_reasons_and_narrowing_quick_replies() -> None:
    messages, slots = run(ActionSearchProducts(), tracker("warm waterproof jacket under 80", "search_product"))
    shown = cards(messages)
    assert 1 <= len(shown) <= 5
    assert all(c["price"] <= 80 and "Jacket" in c["title"] for c in shown)
    assert all(c["reason"] and c["image"].endswith(".svg") for c in shown)
    assert {b["title"] for b in shown[0]["buttons"]} == {"Details", "Add to cart"}
    quick = [b for m in messages for b in m.get("buttons", [])]
    titles = [b["title"] for b in quick]
    assert "Show more" in titles
    bands = [float(t.removeprefix("Under $")) for t in titles if t.startswith("Under $")]
    assert bands and bands[0] < 80
    assert all(b["payload"].startswith("/refine_search{") for b in quick)  # quick replies bypass NLU
    assert slots["shown_products"] == [c["id"] for c in shown]
    assert slots["search_filters"]["max_price"] == 80.0


def test_vague_request_gets_one_clarifying_question() -> None:
    messages, slots = run(ActionSearchProducts(), tracker("a gift", "search_product"))
    assert not cards(messages) and "?" in messages[0]["text"] and messages[0]["buttons"]
    assert not slots


def test_refine_cheaper_keeps_the_query_and_lowers_prices() -> None:
    _, first = run(ActionSearchProducts(), tracker("leather boots", "search_product"))
    from actions import services

    before = [services.product_search().get(i).price for i in first["shown_products"]]
    messages, refined = run(ActionRefineSearch(), tracker("cheaper", "refine_search", first))
    after = [c["price"] for c in cards(messages)]
    assert after and max(after) <= sorted(before)[len(before) // 2]
    assert refined["search_query"] == first["search_query"]


def test_refine_color_and_show_more() -> None:
    _, first = run(ActionSearchProducts(), tracker("clothing", "search_product"))
    messages, red = run(ActionRefineSearch(), tracker("in red", "refine_search", first))
    assert cards(messages) and all("Red" in c["title"] for c in cards(messages))
    messages, more = run(ActionRefineSearch(), tracker("show more", "refine_search", red))
    assert more["search_offset"] == 5.0
    assert not set(more["shown_products"]) & set(red["shown_products"])


def test_show_more_is_offered_only_while_there_is_more() -> None:
    messages, page = run(ActionSearchProducts(), tracker("red clothing", "search_product"))
    seen: list[int] = []
    for _ in range(60):
        seen += page["shown_products"]
        titles = [b["title"] for m in messages for b in m.get("buttons", []) if "/refine_search" in b["payload"]]
        if "Show more" not in titles:
            break
        messages, page = run(ActionRefineSearch(), tracker("show more", "refine_search", page))
        assert cards(messages), "Show more was offered but the next page was empty"
    else:
        pytest.fail("sixty pages of results: the test query is too broad")
    assert len(seen) == len(set(seen)) and len(seen) > 5  # paged at least once, never the same product twice
    messages, _ = run(ActionRefineSearch(), tracker("show more", "refine_search", page))
    assert not cards(messages) and "everything I have" in messages[0]["text"]


def test_no_results_relaxes_a_constraint_and_says_which() -> None:
    messages, _ = run(ActionSearchProducts(), tracker("headphones under 3 dollars", "search_product"))
    assert cards(messages) and all("Headphones" in c["title"] for c in cards(messages))
    assert "dropped the price limit" in messages[0]["text"]


def test_details_by_ordinal_and_by_button() -> None:
    _, found = run(ActionSearchProducts(), tracker("wireless headphones", "search_product"))
    messages, slots = run(ActionProductDetails(), tracker("tell me more about the second one", "product_details",
                                                          found))
    second = found["shown_products"][1]
    assert slots["focused_product"] == second
    assert cards(messages)[0]["id"] == second
    payload = f'/product_details{json.dumps({"product_id": str(second)})}'
    messages, _ = run(ActionProductDetails(), tracker(payload, "product_details", {},
                                                      entities=[{"entity": "product_id", "value": str(second)}]))
    assert cards(messages)[0]["id"] == second


def test_details_without_context_asks_which() -> None:
    messages, _ = run(ActionProductDetails(), tracker("tell me more", "product_details"))
    assert "Which product" in messages[0]["text"]


def test_compare_two_products_side_by_side() -> None:
    _, found = run(ActionSearchProducts(), tracker("smartwatch", "search_product"))
    messages, _ = run(ActionCompareProducts(), tracker("compare the first and the third", "compare_products", found))
    ids = [c["id"] for c in cards(messages)]
    assert ids == [found["shown_products"][0], found["shown_products"][2]]
    assert "Price:" in messages[0]["text"] and "Rating:" in messages[0]["text"]


def test_recommend_without_and_with_context() -> None:
    messages, top = run(ActionRecommend(), tracker("what do you recommend", "recommend"))
    assert len(cards(messages)) == 5
    focus = top["shown_products"][0]
    messages, similar = run(ActionRecommend(), tracker("anything similar", "recommend", {"focused_product": focus}))
    assert focus not in similar["shown_products"] and cards(messages)


def test_cart_flow_asks_for_size_checks_stock_and_checks_out() -> None:
    sender = f"cart-{uuid.uuid4().hex[:8]}"
    _, found = run(ActionSearchProducts(), tracker("running shoes", "search_product", sender=sender))
    messages, slots = run(ActionAddToCart(), tracker("add the first one", "add_to_cart", found, sender))
    assert "Which size" in messages[0]["text"]
    size_button = messages[0]["buttons"][0]
    product_id = found["shown_products"][0]
    payload = json.loads("{" + size_button["payload"].split("{", 1)[1])
    entities = [{"entity": k, "value": v} for k, v in payload.items()]
    messages, _ = run(ActionAddToCart(), tracker(size_button["payload"], "add_to_cart", slots, sender, entities))
    assert messages[0]["text"].startswith("Added 1 x")
    messages, _ = run(ActionViewCart(), tracker("whats in my cart", "view_cart", sender=sender))
    assert "Total:" in messages[0]["text"]
    card = next(m["custom"] for m in messages if (m.get("custom") or {}).get("type") == "cart")
    assert [(line["product_id"], line["size"]) for line in card["lines"]] == [(product_id, payload["size"])]
    messages, _ = run(ActionCheckout(), tracker("checkout", "checkout", sender=sender))
    checkout_url = messages[0]["custom"]["checkout_url"]
    assert "/checkout?cart=" in checkout_url and sender not in checkout_url  # signed, not the key
    messages, _ = run(ActionRemoveFromCart(), tracker("remove it", "remove_from_cart", sender=sender))
    assert "Removed" in messages[0]["text"] and "empty now" in messages[0]["text"]
    messages, _ = run(ActionCheckout(), tracker("checkout", "checkout", sender=sender))
    assert "empty" in messages[0]["text"]
    assert product_id


def test_add_to_cart_refuses_more_than_in_stock(db_session) -> None:
    from sqlalchemy import func, select

    from bot.catalog.tables import Product

    product = db_session.scalars(select(Product).where(func.json_array_length(Product.sizes) == 0, Product.stock > 0,
                                                       Product.stock <= 5).limit(1)).one()
    sender = f"stock-{uuid.uuid4().hex[:8]}"
    entities = [{"entity": "product_id", "value": str(product.id)}]
    messages, _ = run(ActionAddToCart(), tracker("add 9 of those", "add_to_cart", {}, sender, entities))
    assert f"Only {product.stock} of" in messages[0]["text"]
    messages, _ = run(ActionViewCart(), tracker("cart", "view_cart", sender=sender))
    assert "empty" in messages[0]["text"]


def test_out_of_stock_product_is_refused_before_asking_for_a_size(db_session) -> None:
    from sqlalchemy import select

    from bot.catalog.tables import Product

    product = db_session.scalars(select(Product).where(Product.stock == 0, Product.sizes != []).limit(1)).one()
    entities = [{"entity": "product_id", "value": str(product.id)}]
    messages, _ = run(ActionAddToCart(), tracker("add it", "add_to_cart", {}, entities=entities))
    assert "out of stock" in messages[0]["text"] and messages[0]["buttons"][0]["title"] == "Similar products"


def _product(pid: int):  # type: ignore[no-untyped-def]
    from actions import services

    return services.product_search().get(pid)


def test_search_cards_satisfy_every_stated_filter() -> None:
    messages, slots = run(ActionSearchProducts(), tracker("women's running shoes size 8 under 150", "search_product"))
    shown = cards(messages)
    assert len(shown) == 5
    for card in shown:
        product = _product(card["id"])
        assert product.category.endswith("Running Shoes") and "8" in product.sizes and product.price <= 150
    assert slots["search_filters"]["sizes"] == ["8"] and slots["search_filters"]["genders"] == ["women"]
    messages, _ = run(ActionSearchProducts(), tracker("Reebok sneakers", "search_product"))
    assert cards(messages) and all(c["brand"] == "Reebok" for c in cards(messages))


def test_rasa_entities_are_merged_into_the_filters() -> None:
    messages, slots = run(ActionSearchProducts(), tracker("a warm jacket", "search_product",
                                                          entities=[{"entity": "brand", "value": "patagonia"}]))
    assert cards(messages) and all(c["brand"] == "Patagonia" for c in cards(messages))
    assert slots["search_filters"]["brands"] == ["Patagonia"]


def test_refine_only_a_brand_from_a_quick_reply_keeps_the_rest() -> None:
    messages, first = run(ActionSearchProducts(), tracker("jacket under 200", "search_product"))
    brand_reply = next(b for m in messages for b in m.get("buttons", []) if b["title"].startswith("Only "))
    brand = brand_reply["title"].removeprefix("Only ")
    refinement = json.loads(brand_reply["payload"].removeprefix("/refine_search"))["refinement"]
    messages, refined = run(ActionRefineSearch(), tracker(brand_reply["payload"], "refine_search", first,
                                                          entities=[{"entity": "refinement", "value": refinement}]))
    assert cards(messages) and all(c["brand"] == brand and c["price"] <= 200 for c in cards(messages))
    assert refined["search_filters"]["brands"] == [brand] and refined["search_filters"]["max_price"] == 200
    messages, _ = run(ActionRefineSearch(), tracker("only Patagonia", "refine_search", first))
    assert cards(messages) and all(c["brand"] == "Patagonia" for c in cards(messages))
    messages, _ = run(ActionRefineSearch(), tracker("only Nike", "refine_search", first))  # no Nike jackets
    assert "dropped the brand" in messages[0]["text"] and cards(messages)


def test_refine_under_a_price_then_something_else_then_any_brand() -> None:
    _, first = run(ActionSearchProducts(), tracker("Adidas sneakers", "search_product"))
    messages, cheap = run(ActionRefineSearch(), tracker("under 90", "refine_search", first))
    assert cards(messages) and all(c["price"] <= 90 and c["brand"] == "Adidas" for c in cards(messages))
    messages, other = run(ActionRefineSearch(), tracker("something else", "refine_search", cheap))
    assert not set(other["shown_products"]) & set(cheap["shown_products"])
    assert all(c["price"] <= 90 for c in cards(messages))
    messages, anybrand = run(ActionRefineSearch(), tracker("any brand", "refine_search", other))
    assert anybrand["search_filters"]["brands"] == [] and anybrand["search_filters"]["max_price"] == 90


def test_relaxing_says_which_constraint_was_dropped_least_important_first() -> None:
    messages, _ = run(ActionSearchProducts(), tracker("purple Nike laptop", "search_product"))
    text = messages[0]["text"]
    assert "dropped the" in text and cards(messages)
    assert "brand" in text or "color" in text
