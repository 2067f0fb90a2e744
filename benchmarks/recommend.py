"""Offline evaluation of the recommender: hold out each customer's last order.

Orders are replayed in time order. For every customer with at least two orders (not cancelled),
the recommender sees only what happened before their last order: the co-purchase counts and
popularity come from every order placed earlier (any customer's), the personal history from the
customer's own earlier orders. It recommends ``k`` products; a *hit* is when one of them is in the
held-out order. Reported for the blended recommender and for popularity alone (both keep
already-bought products out the same way):

- ``hit_rate@k``: share of evaluated customers with a hit;
- ``category_hit_rate@k``: share with a recommended product in the category of a held-out one
  (a coarser signal: did it learn what the shopper shops for);
- ``coverage``: share of the catalog recommended to at least one customer;
- ``p50_ms``/``p95_ms``: time of one ``recommend`` call.

Personal history is used only for customers who consented, as in the chat; ``blended`` covers
every evaluated customer, ``blended_consenting`` only those who consented (``ignore_consent``
uses everyone's history, to measure the method itself).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.shop.recommend import (
    Basket,
    Purchase,
    PurchaseModel,
    RecommendConfig,
    Recommender,
    load_baskets,
    load_products,
)
from bot.shop.tables import Customer

if TYPE_CHECKING:
    from bot.search.dense import DenseIndex


class NoOrders(ValueError):
    """Nothing to evaluate: no customer has two orders."""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class _Tally:
    def __init__(self) -> None:
        self.hits = 0
        self.category_hits = 0
        self.evaluated = 0
        self.recommended: set[int] = set()
        self.ms: list[float] = []

    def add(self, recommended: list[int], held_out: set[int], ms: float, categories: dict[int, str]) -> None:
        self.evaluated += 1
        self.hits += bool(held_out & set(recommended))
        wanted = {categories.get(pid) for pid in held_out}
        self.category_hits += any(categories.get(pid) in wanted for pid in recommended)
        self.recommended.update(recommended)
        self.ms.append(ms)

    def report(self, k: int, catalog: int) -> dict[str, Any]:
        return {
            f"hit_rate@{k}": round(self.hits / self.evaluated, 4) if self.evaluated else 0.0,
            "hits": self.hits,
            f"category_hit_rate@{k}": round(self.category_hits / self.evaluated, 4) if self.evaluated else 0.0,
            "customers": self.evaluated,
            "coverage": round(len(self.recommended) / catalog, 4) if catalog else 0.0,
            "distinct_recommended": len(self.recommended),
            "p50_ms": round(statistics.median(self.ms), 3) if self.ms else 0.0,
            "p95_ms": round(_percentile(self.ms, 0.95), 3),
        }


def benchmark(session: Session, vectors: DenseIndex | None, k: int = 10, config: RecommendConfig | None = None,
              ignore_consent: bool = False) -> dict[str, Any]:
    """Leave-last-order-out hit rate and coverage, blended vs popularity only, as a dict."""
    started = time.perf_counter()
    config = config or RecommendConfig()
    products = load_products(session)
    baskets = load_baskets(session)
    consent = dict(session.execute(select(Customer.id, Customer.consent_personalization)).tuples().all())
    load_s = time.perf_counter() - started

    by_customer: dict[int, list[Basket]] = defaultdict(list)
    for basket in baskets:
        if basket.customer_id is not None:
            by_customer[basket.customer_id].append(basket)
    cases = sorted(((orders[-1], orders[:-1]) for orders in by_customer.values() if len(orders) >= 2),
                   key=lambda case: (case[0].placed_at, case[0].order_id))
    if not cases:
        raise NoOrders("no customer has two orders to learn from and test on: load the demo orders first "
                       "(python -m bot shop demo)")

    categories = {pid: info.category for pid, info in products.items()}
    model = PurchaseModel()
    recommender = Recommender(products, model, vectors, config)
    blended, blended_consenting, popular = _Tally(), _Tally(), _Tally()
    replayed = 0
    for held_out, earlier in cases:
        while replayed < len(baskets) and baskets[replayed].placed_at < held_out.placed_at:
            model.add(baskets[replayed])
            replayed += 1
        now = held_out.placed_at
        history = [Purchase(pid, b.placed_at) for b in earlier for pid in b.product_ids]
        personal = ignore_consent or bool(consent.get(held_out.customer_id or -1))
        # without consent the chat knows nothing of the shopper's history: neither recommender gets it
        known = history if personal else []
        target = set(held_out.product_ids)

        t0 = time.perf_counter()
        picks = [r.product_id for r in recommender.recommend(history=known, limit=k, now=now)]
        ms = (time.perf_counter() - t0) * 1000
        blended.add(picks, target, ms, categories)
        if personal:
            blended_consenting.add(picks, target, ms, categories)

        t0 = time.perf_counter()
        picks = [r.product_id for r in recommender.recommend(history=known, limit=k, now=now,
                                                             sources={"popularity"})]
        popular.add(picks, target, (time.perf_counter() - t0) * 1000, categories)

    catalog = len(products)
    return {
        "k": k,
        "customers_evaluated": len(cases),
        "customers_with_history_used": blended_consenting.evaluated,
        "orders": len(baskets),
        "catalog_products": catalog,
        "blended": blended.report(k, catalog),
        "blended_consenting": blended_consenting.report(k, catalog),
        "popularity": popular.report(k, catalog),
        "vectors": vectors is not None,
        "ignore_consent": ignore_consent,
        "config": {key: value for key, value in asdict(config).items() if key != "consumable_departments"},
        "load_s": round(load_s, 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
