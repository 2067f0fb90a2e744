"""Recommendations: each source with its reason, exclusions, cold start, the offline benchmark, the action.

A temporary SQLite database holds the same 600-product demo catalog as the shared test database
(same generator, same ids), so the real search index's vectors apply to it, plus orders made here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from benchmarks.recommend import NoOrders, benchmark
from bot.catalog.store import upsert_products
from bot.catalog.tables import Product
from bot.db import migrate, session_scope
from bot.demo import catalog as demo
from bot.search.dense import DenseIndex
from bot.shop.recommend import (
    Basket,
    Purchase,
    PurchaseModel,
    RecommendConfig,
    Recommender,
    customer_history,
    load_baskets,
    load_products,
    utcnow,
)
from bot.shop.tables import DELIVERED, Customer, Order, OrderItem
from tests.conftest import TEST_CATALOG_SIZE

ROOT = Path(__file__).resolve().parents[2]
NOW = utcnow().replace(microsecond=0)


def place(session: Session, customer: Customer | None, products: list[Product], days_ago: float,
          email: str = "guest@example.com") -> Order:
    placed = NOW - timedelta(days=days_ago)
    order = Order(number=f"R-{uuid.uuid4().hex[:10]}", customer=customer, email=customer.email if customer else email,
                  status=DELIVERED, placed_at=placed, paid_at=placed, updated_at=placed,
                  total=sum(p.price or 0 for p in products))
    order.items = [OrderItem(product_id=p.id, sku=p.sku, title=p.title, quantity=1, unit_price=p.price or 0)
                   for p in products]
    session.add(order)
    session.flush()
    return order


@dataclass(frozen=True)
class Shop:
    url: str
    ids: dict[str, int]  # role -> product id
    customers: dict[str, int]


@pytest.fixture(scope="module")
def shop(catalog: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """Orders with known structure over the demo catalog.

    anchor+partner bought together 3 times (support 3), anchor+rare once (below the minimum
    support of 2), anchor+soldout 3 times (soldout is out of stock), anchor+unpriced 3 times
    (unpriced has no price); hit (a Beauty product, consumable) is the most ordered product.
    """
    url = f"sqlite:///{tmp_path_factory.mktemp('recommend') / 'shop.sqlite3'}"
    migrate(url)
    with session_scope(url) as s:
        upsert_products(s, demo.generate(TEST_CATALOG_SIZE))
    with session_scope() as shared, session_scope(url) as s:  # same catalog, same ids as the indexed one
        assert [p.sku for p in shared.scalars(select(Product).order_by(Product.id).limit(50))] == \
               [p.sku for p in s.scalars(select(Product).order_by(Product.id).limit(50))]
    with session_scope(url) as s:
        priced = list(s.scalars(select(Product).where(Product.stock > 5, Product.price.is_not(None))
                                .order_by(Product.id)))
        jackets = [p for p in priced if p.category == "Clothing > Jackets"]
        boots = [p for p in priced if p.category == "Shoes > Boots"]
        beauty = [p for p in priced if p.department == "Beauty"]
        laptops = [p for p in priced if p.category == "Electronics > Laptops"]
        roles = {"anchor": jackets[0], "partner": boots[0], "rare": boots[1], "soldout": boots[2],
                 "unpriced": boots[3], "hit": beauty[0], "recent": laptops[0], "recent_partner": laptops[1],
                 "old": jackets[1], "old_partner": jackets[2]}
        people = {name: Customer(email=f"{name}-{uuid.uuid4().hex[:6]}@example.com", name=f"{name.title()} Buyer",
                                 consent_personalization=name != "nora") for name in ("ann", "bob", "cat", "nora")}
        s.add_all(people.values())
        s.flush()
        r = roles
        for i in range(3):
            place(s, None, [r["anchor"], r["partner"]], 40 + i)
            place(s, None, [r["anchor"], r["soldout"]], 30 + i)
            place(s, None, [r["anchor"], r["unpriced"]], 20 + i)
            place(s, None, [r["recent"], r["recent_partner"]], 50 + i)
            place(s, None, [r["old"], r["old_partner"]], 50 + i)
        place(s, None, [r["anchor"], r["rare"]], 15)
        for i in range(8):
            place(s, None, [r["hit"]], 1 + i)
        # ann: bought the anchor long ago, then the partner (held out by the benchmark)
        place(s, people["ann"], [r["anchor"]], 60)
        place(s, people["ann"], [r["partner"]], 2)
        place(s, people["bob"], [r["hit"]], 70)
        place(s, people["bob"], [r["hit"], r["recent"]], 3)
        place(s, people["nora"], [r["anchor"]], 65)
        place(s, people["nora"], [r["partner"]], 4)
        place(s, people["cat"], [r["old"]], 5)  # one order only: nothing to hold out
        s.flush()
        s.execute(update(Product).where(Product.id == r["soldout"].id).values(stock=0))
        s.execute(update(Product).where(Product.id == r["unpriced"].id).values(price=None))
        ids = {role: p.id for role, p in roles.items()}
        customers = {name: c.id for name, c in people.items()}
    yield Shop(url, ids, customers)


@pytest.fixture(scope="module")
def vectors(catalog: int) -> DenseIndex:
    from actions import services

    return services.product_search().index.dense


def recommender(shop: Shop, vectors: DenseIndex | None, **config: Any) -> Recommender:
    with session_scope(shop.url) as s:
        return Recommender.from_session(s, vectors, RecommendConfig(**config), now=NOW)


def test_what_goes_with_a_product_comes_from_co_purchases_then_similar_items(shop: Shop, vectors: DenseIndex) -> None:
    rec = recommender(shop, vectors)
    anchor = shop.ids["anchor"]
    picks = rec.recommend(anchors=[anchor], limit=10)
    assert picks[0].product_id == shop.ids["partner"] and picks[0].source == "co_purchase"
    assert picks[0].reason == f"often bought with {rec.title(anchor)}"
    ids = [p.product_id for p in picks]
    # never the anchor, nothing out of stock or without a price, however often bought with it
    assert anchor not in ids and shop.ids["soldout"] not in ids and shop.ids["unpriced"] not in ids
    # one order together is below the minimum support: no "often bought with" for it
    assert not any(p.product_id == shop.ids["rare"] and p.source == "co_purchase" for p in picks)
    assert any(p.product_id == shop.ids["rare"] and p.source == "co_purchase"
               for p in recommender(shop, vectors, min_support=1).recommend(anchors=[anchor], limit=10))
    similar = [p for p in picks if p.source == "similar"]
    assert similar and all(p.reason == f"similar to {rec.title(anchor)}" for p in similar)
    categories = [rec.products[p.product_id].category for p in similar]
    assert categories.count("Clothing > Jackets") > len(categories) / 2  # neighbours in the embedding space


def test_personal_history_decays_with_time_and_excludes_what_was_bought(shop: Shop, vectors: DenseIndex) -> None:
    rec = recommender(shop, vectors, half_life_days=30)
    history = [Purchase(shop.ids["recent"], NOW - timedelta(days=3)),
               Purchase(shop.ids["old"], NOW - timedelta(days=300))]
    picks = rec.recommend(history=history, limit=10, sources={"personal"})
    ids = [p.product_id for p in picks]
    assert shop.ids["recent"] not in ids and shop.ids["old"] not in ids  # bought already, not consumables
    assert picks[0].product_id == shop.ids["recent_partner"]
    assert picks[0].reason == f"because you bought {rec.title(shop.ids['recent'])}"
    assert ids.index(shop.ids["recent_partner"]) < (ids.index(shop.ids["old_partner"])
                                                    if shop.ids["old_partner"] in ids else len(ids))
    # with a long half-life the old purchase's partner comes up too
    slow = recommender(shop, vectors, half_life_days=10_000).recommend(history=history, limit=10,
                                                                       sources={"personal"})
    assert shop.ids["old_partner"] in [p.product_id for p in slow]


def test_consumables_can_be_bought_again_and_popularity_says_so(shop: Shop, vectors: DenseIndex) -> None:
    rec = recommender(shop, vectors)
    popular = rec.recommend(limit=5)
    assert popular[0].product_id == shop.ids["hit"] and popular[0].reason == "popular right now"
    # the most ordered product is a consumable (Beauty): someone who bought it is offered it again
    again = rec.recommend(history=[Purchase(shop.ids["hit"], NOW - timedelta(days=40))], limit=5,
                          sources={"popularity"})
    assert again[0].product_id == shop.ids["hit"]
    # a jacket once bought is not offered again
    bought = rec.recommend(history=[Purchase(shop.ids["anchor"], NOW - timedelta(days=40))], limit=50,
                           sources={"popularity"})
    assert shop.ids["anchor"] not in [p.product_id for p in bought]
    assert rec.recommend(limit=5, exclude=[shop.ids["hit"]])[0].product_id != shop.ids["hit"]


def test_cold_start_without_orders_offers_the_best_rated(shop: Shop) -> None:
    with session_scope(shop.url) as s:
        products = load_products(s)
    rec = Recommender(products, PurchaseModel(), None, now=NOW)
    picks = rec.recommend(limit=5)
    assert len(picks) == 5 and all(p.source == "popularity" and p.reason.startswith("top rated: ★") for p in picks)
    assert all(products[p.product_id].available for p in picks)
    ratings = [products[p.product_id].rating * 1.0 for p in picks]
    assert max(ratings) >= 4.0
    # nothing known at all about an anchor without vectors or orders: popularity still answers
    assert rec.recommend(anchors=[shop.ids["anchor"]], limit=3)


def test_purchase_model_counts_orders_and_cosine() -> None:
    t = NOW - timedelta(days=1)
    model = PurchaseModel([Basket(1, None, t, (1, 2)), Basket(2, None, t, (1, 2, 3)), Basket(3, None, t, (1,))])
    assert model.orders_with == {1: 3, 2: 2, 3: 1}
    assert model.co_purchased(1, min_support=2) == pytest.approx({2: 2 / (3 * 2) ** 0.5})
    assert model.co_purchased(3, min_support=1) == pytest.approx({1: 1 / 3 ** 0.5, 2: 1 / 2 ** 0.5})
    popularity = model.popularity(NOW, half_life_days=30)
    assert popularity[1] == 1.0 and popularity[2] == pytest.approx(2 / 3)
    assert model.popularity(t - timedelta(days=1), half_life_days=30) == {}  # nothing ordered before then


def test_history_and_baskets_skip_cancelled_orders(shop: Shop) -> None:
    with session_scope(shop.url) as s:
        ann = shop.customers["ann"]
        history = customer_history(s, ann)
        assert [p.product_id for p in history] == [shop.ids["anchor"], shop.ids["partner"]]
        order = s.scalar(select(Order).where(Order.customer_id == ann).order_by(Order.placed_at.desc()))
        assert order is not None
        order.status = "cancelled"
        s.flush()
        assert [p.product_id for p in customer_history(s, ann)] == [shop.ids["anchor"]]
        assert all(b.order_id != order.id for b in load_baskets(s))
        s.rollback()


def test_benchmark_holds_out_last_orders_and_compares_with_popularity(shop: Shop, vectors: DenseIndex) -> None:
    with session_scope(shop.url) as s:
        result = benchmark(s, vectors, k=10)
        everyone = benchmark(s, vectors, k=10, ignore_consent=True)
    assert result["customers_evaluated"] == 3  # ann, bob, nora; cat has one order
    assert result["customers_with_history_used"] == 2  # nora did not consent
    for key in ("hit_rate@10", "coverage", "p50_ms", "p95_ms", "customers"):
        assert key in result["blended"] and key in result["popularity"]
    # ann's held-out partner is what her earlier anchor is often bought with; bob's is a popular consumable
    assert result["blended_consenting"]["hits"] == 2
    assert 0 < result["blended"]["coverage"] <= 1 and result["catalog_products"] == TEST_CATALOG_SIZE
    assert everyone["blended_consenting"]["customers"] == 3 and everyone["blended"]["hits"] == 3
    assert result["popularity"]["hits"] <= result["blended"]["hits"]


def test_benchmark_needs_customers_with_two_orders(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    migrate(url)
    with session_scope(url) as s, pytest.raises(NoOrders, match="load the demo orders"):
        benchmark(s, None)


def test_bench_recommend_command_prints_one_json_line(shop: Shop) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "bot", "bench", "recommend", "--database", shop.url, "--k", "5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["k"] == 5 and result["vectors"] is True and result["customers_evaluated"] == 3
    assert {"hit_rate@5", "coverage", "p50_ms", "p95_ms"} <= set(result["blended"]) & set(result["popularity"])
    assert {"load_s", "total_s", "customers_with_history_used"} <= set(result)


# --------------------------------------------------------------------------- action_recommend, on the shared DB


def tracker(text: str, customer_id: int | None = None, slots: dict[str, Any] | None = None) -> Tracker:
    latest: dict[str, Any] = {"text": text, "intent": {"name": "recommend", "confidence": 0.98}, "entities": []}
    if customer_id is not None:
        latest["metadata"] = {"customer_id": customer_id}
    return Tracker(f"test-{uuid.uuid4().hex[:10]}", slots or {}, latest, [], False, None, {}, "action_listen")


def run(t: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from actions.search import ActionRecommend

    dispatcher = CollectingDispatcher()
    events = ActionRecommend().run(dispatcher, t, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def cards(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for m in messages if (c := m.get("custom")) and c.get("type") == "product_cards" for p in c["products"]]


@pytest.fixture
def buyer(catalog: int) -> Iterator[tuple[int, int]]:
    """A customer in the shared database who bought one jacket, with consent: (customer id, jacket id)."""
    with session_scope() as s:
        jacket = s.scalar(select(Product).where(Product.category == "Clothing > Jackets", Product.stock > 0,
                                                Product.price.is_not(None)).order_by(Product.id))
        assert jacket is not None
        customer = Customer(email=f"buyer-{uuid.uuid4().hex[:8]}@example.com", name="Rita Moss",
                            consent_personalization=True)
        s.add(customer)
        s.flush()
        place(s, customer, [jacket], 10)
        ids = (customer.id, jacket.id)
    yield ids
    with session_scope() as s:
        for order in s.scalars(select(Order).where(Order.customer_id == ids[0])):
            s.delete(order)
        s.flush()
        s.delete(s.get(Customer, ids[0]))


def test_action_recommends_from_history_only_with_consent(buyer: tuple[int, int]) -> None:
    from actions.profile import recommender_cache

    recommender_cache.clear()
    customer_id, jacket = buyer
    messages, slots = run(tracker("what would you recommend for me", customer_id))
    shown = cards(messages)
    assert messages[0]["text"] == "Picked for you, from what you've bought before:"
    assert len(shown) == 5 and jacket not in slots["shown_products"]
    assert any(c["reason"].startswith("Because you bought ") for c in shown)
    assert all(c["stock"] > 0 and c["price"] is not None for c in shown)
    with session_scope() as s:
        s.execute(update(Customer).where(Customer.id == customer_id).values(consent_personalization=False))
    messages, _ = run(tracker("what would you recommend for me", customer_id))
    assert messages[0]["text"] in ("Popular right now:", "Our best rated products right now:")
    assert not any(c["reason"].startswith("Because you bought") for c in cards(messages))


def test_action_what_goes_with_the_product_in_focus(buyer: tuple[int, int]) -> None:
    _, jacket = buyer
    messages, slots = run(tracker("what goes with this", slots={"focused_product": float(jacket)}))
    assert messages[0]["text"].startswith("These go well with ")
    assert jacket not in slots["shown_products"] and len(cards(messages)) == 5
    assert all(c["reason"] for c in cards(messages))
