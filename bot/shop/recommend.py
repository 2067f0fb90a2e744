"""Recommendations: what goes with a product, what a shopper may like, and what sells now.

Four sources, each scored 0-1 and blended with weights (:class:`RecommendConfig`):

- **co_purchase** (item-item from orders): for an anchor product, the products bought in the
  same orders, scored by cosine of co-occurrence ``c(a, b) / sqrt(n(a) * n(b))`` where ``n`` counts
  orders; pairs seen in fewer than ``min_support`` orders are ignored. Reason: "often bought with X".
- **similar** (embeddings): the anchor's nearest neighbours in the search index (MiniLM, FAISS),
  cosine rescaled from ``similarity_floor..1`` to ``0..1``. Reason: "similar to X".
- **personal** (purchase history, only with consent): the products bought with, or similar to,
  what the shopper bought, each past item weighted by ``0.5 ** (age / half_life_days)``.
  Reason: "because you bought X".
- **popularity**: order counts with a shorter half-life (recent orders count more); when there
  are no orders at all, the best-rated products. Reason: "popular right now" / "top rated".

A candidate's score is the weighted sum of its best score from each source; its reason comes
from the source that contributed most. Never recommended: products out of stock or without a
price, the anchors themselves, what the caller excludes, and what the shopper already bought
unless it is a consumable (departments in ``consumable_departments``).

:class:`PurchaseModel` holds the co-purchase counts and popularity events and grows basket by
basket, so the offline benchmark can replay orders in time order.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.tables import Product
from bot.clock import utcnow
from bot.shop.tables import CANCELLED, Order, OrderItem

if TYPE_CHECKING:
    from bot.search.dense import DenseIndex

SOURCES = ("co_purchase", "similar", "personal", "popularity")
DAY_S = 86400.0



@dataclass(frozen=True)
class RecommendConfig:
    half_life_days: float = 90.0  # personal history: a purchase this old counts half
    popularity_half_life_days: float = 30.0
    min_support: int = 2  # co-purchase pairs seen in fewer orders are ignored
    neighbours: int = 50  # embedding neighbours fetched per anchor or past item
    history_items: int = 20  # at most this many past items (the most recent) drive personal picks
    similarity_floor: float = 0.3  # cosine at or below this scores 0
    personal_similar_factor: float = 0.7  # a past item's similar products count less than its co-purchases
    weights: dict[str, float] = field(default_factory=lambda: {
        "co_purchase": 1.0, "similar": 0.6, "personal": 0.8, "popularity": 0.15})
    consumable_departments: tuple[str, ...] = ("beauty", "grocery", "food", "health", "personal care",
                                               "pet supplies", "household", "baby")


@dataclass(frozen=True)
class ProductInfo:
    id: int
    title: str
    category: str
    price: float | None
    stock: int
    rating: float = 0.0
    rating_count: int = 0

    @property
    def department(self) -> str:
        return self.category.split(">", 1)[0].strip()

    @property
    def available(self) -> bool:
        return self.stock > 0 and self.price is not None


@dataclass(frozen=True)
class Basket:
    """The distinct products of one order that was not cancelled."""

    order_id: int
    customer_id: int | None
    placed_at: datetime
    product_ids: tuple[int, ...]


@dataclass(frozen=True)
class Purchase:
    product_id: int
    placed_at: datetime


@dataclass(frozen=True)
class Recommendation:
    product_id: int
    score: float
    source: str  # the source that contributed most
    reason: str  # shopper-facing: "often bought with ...", "because you bought ..."


# --------------------------------------------------------------------------- loading


def load_products(session: Session) -> dict[int, ProductInfo]:
    rows = session.execute(select(Product.id, Product.title, Product.category, Product.price, Product.stock,
                                  Product.rating, Product.rating_count))
    return {r.id: ProductInfo(r.id, r.title, r.category or "", None if r.price is None else float(r.price),
                              int(r.stock or 0), float(r.rating or 0.0), int(r.rating_count or 0)) for r in rows}


def load_baskets(session: Session, customer_id: int | None = None) -> list[Basket]:
    """Orders that were not cancelled, oldest first, as baskets of distinct product ids."""
    stmt = (select(Order.id, Order.customer_id, Order.placed_at, OrderItem.product_id)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .where(Order.status != CANCELLED, OrderItem.product_id.is_not(None))
            .order_by(Order.placed_at, Order.id, OrderItem.id))
    if customer_id is not None:
        stmt = stmt.where(Order.customer_id == customer_id)
    baskets: list[Basket] = []
    current: tuple[int, int | None, datetime] | None = None
    items: list[int] = []
    for order_id, cid, placed_at, pid in session.execute(stmt):
        if current is None or current[0] != order_id:
            if current is not None:
                baskets.append(Basket(*current, tuple(dict.fromkeys(items))))
            current, items = (order_id, cid, placed_at), []
        assert pid is not None  # the query keeps only rows with a product
        items.append(int(pid))
    if current is not None:
        baskets.append(Basket(*current, tuple(dict.fromkeys(items))))
    return baskets


def customer_history(session: Session, customer_id: int) -> list[Purchase]:
    """What a customer bought (orders not cancelled), oldest first."""
    return [Purchase(pid, b.placed_at) for b in load_baskets(session, customer_id) for pid in b.product_ids]


# --------------------------------------------------------------------------- co-purchases and popularity


class PurchaseModel:
    """Co-purchase counts and popularity events; grows one basket at a time."""

    def __init__(self, baskets: Iterable[Basket] = ()) -> None:
        self.orders_with: Counter[int] = Counter()  # product -> orders containing it
        self.pairs: dict[int, Counter[int]] = defaultdict(Counter)  # product -> product -> orders with both
        self._event_times: list[float] = []
        self._event_ids: list[int] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        for basket in baskets:
            self.add(basket)

    def add(self, basket: Basket) -> None:
        ids = list(dict.fromkeys(basket.product_ids))
        for a in ids:
            self.orders_with[a] += 1
            for b in ids:
                if a != b:
                    self.pairs[a][b] += 1
        at = basket.placed_at.timestamp()
        self._event_times.extend([at] * len(ids))
        self._event_ids.extend(ids)
        self._arrays = None

    @property
    def empty(self) -> bool:
        return not self._event_ids

    def co_purchased(self, product_id: int, min_support: int) -> dict[int, float]:
        """Products bought together with ``product_id``: cosine of order co-occurrence."""
        n_a = self.orders_with.get(product_id, 0)
        if not n_a:
            return {}
        return {b: c / math.sqrt(n_a * self.orders_with[b])
                for b, c in self.pairs.get(product_id, {}).items() if c >= min_support}

    def popularity(self, now: datetime, half_life_days: float) -> dict[int, float]:
        """Time-decayed order counts of products ordered before ``now``, scaled to 0-1."""
        if self._arrays is None:
            self._arrays = (np.asarray(self._event_times, np.float64), np.asarray(self._event_ids, np.int64))
        times, ids = self._arrays
        keep = times <= now.timestamp()
        if not keep.any():
            return {}
        ages = (now.timestamp() - times[keep]) / DAY_S
        weights = np.power(0.5, ages / half_life_days)
        counts = np.bincount(ids[keep], weights=weights)
        top = counts.max()
        nonzero = np.flatnonzero(counts)
        return {int(i): float(counts[i] / top) for i in nonzero}


# --------------------------------------------------------------------------- the recommender


class _Scores:
    """Per candidate: the best score and reason from each source."""

    def __init__(self) -> None:
        self.by: dict[int, dict[str, tuple[float, str]]] = defaultdict(dict)

    def add(self, source: str, product_id: int, score: float, reason: str) -> None:
        if score <= 0:
            return
        best = self.by[product_id].get(source)
        if best is None or score > best[0]:
            self.by[product_id][source] = (score, reason)


def _is_allowed(allowed: np.ndarray, pid: int) -> bool:
    """Whether the product may be recommended (``allowed`` is a mask indexed by product id)."""
    return 0 <= pid < allowed.size and bool(allowed[pid])


class Recommender:
    """Blends the sources for an anchor product, a purchase history, or neither (cold start)."""

    def __init__(self, products: dict[int, ProductInfo], model: PurchaseModel, vectors: DenseIndex | None,
                 config: RecommendConfig | None = None, now: datetime | None = None) -> None:
        self.products = products
        self.model = model
        self.vectors = vectors
        self.config = config or RecommendConfig()
        self.now = now or utcnow()
        size = max(products, default=0) + 1
        self._available = np.zeros(size, bool)
        for pid, info in products.items():
            self._available[pid] = info.available
        self._popularity: tuple[datetime, dict[int, float]] | None = None

    @classmethod
    def from_session(cls, session: Session, vectors: DenseIndex | None, config: RecommendConfig | None = None,
                     now: datetime | None = None) -> Recommender:
        return cls(load_products(session), PurchaseModel(load_baskets(session)), vectors, config, now)

    # ---------------------------------------------------------------- helpers

    def title(self, product_id: int) -> str:
        info = self.products.get(product_id)
        return info.title if info else "an earlier purchase"

    def consumable(self, product_id: int) -> bool:
        info = self.products.get(product_id)
        return bool(info) and info.department.lower() in self.config.consumable_departments  # type: ignore[union-attr]

    def _vector(self, product_id: int) -> np.ndarray | None:
        if self.vectors is None:
            return None
        try:
            return np.asarray(self.vectors.vectors(np.asarray([product_id], np.int64))[0], np.float32)
        except (RuntimeError, IndexError):  # not in the index (yet)
            return None

    def _similar(self, product_id: int, allowed: np.ndarray) -> list[tuple[int, float]]:
        vector = self._vector(product_id)
        if vector is None or not allowed.any():
            return []
        ids, scores = self.vectors.search(vector, self.config.neighbours, allowed)  # type: ignore[union-attr]
        floor = self.config.similarity_floor
        return [(int(i), max(0.0, (float(s) - floor) / (1.0 - floor))) for i, s in zip(ids, scores, strict=True)]

    def popularity(self, now: datetime | None = None) -> dict[int, float]:
        now = now or self.now
        if self._popularity is None or self._popularity[0] != now:
            self._popularity = (now, self.model.popularity(now, self.config.popularity_half_life_days))
        return self._popularity[1]

    # ---------------------------------------------------------------- the blend

    def recommend(self, anchors: Sequence[int] = (), history: Sequence[Purchase] = (), limit: int = 10,
                  exclude: Collection[int] = (), sources: Collection[str] | None = None,
                  now: datetime | None = None) -> list[Recommendation]:
        """Up to ``limit`` products, best first, each with its reason.

        ``history`` is the shopper's purchases: pass it only with their consent. It drives the
        personal source and keeps already-bought products (other than consumables) out; with
        ``sources`` limited to e.g. ``{"popularity"}`` it only does the latter.
        """
        config, now = self.config, now or self.now
        use = set(SOURCES if sources is None else sources)
        blocked = set(anchors) | set(exclude)
        blocked |= {p.product_id for p in history if not self.consumable(p.product_id)}
        allowed = self._available.copy()
        for pid in blocked:
            if 0 <= pid < allowed.size:
                allowed[pid] = False

        scores = _Scores()
        self._score_anchors(scores, anchors, use, allowed)
        if history and "personal" in use:
            self._score_history(scores, history, now, allowed)
        if "popularity" in use:
            for pid, s, reason in self._popular(now, allowed, max(limit * 5, 50)):
                scores.add("popularity", pid, s, reason)

        ranked: list[Recommendation] = []
        for pid, by_source in scores.by.items():
            weighted = {src: config.weights.get(src, 0.0) * s for src, (s, _) in by_source.items()}
            top = max(weighted, key=lambda src: (weighted[src], -SOURCES.index(src)))
            ranked.append(Recommendation(pid, round(sum(weighted.values()), 6), top, by_source[top][1]))
        ranked.sort(key=lambda r: (-r.score, r.product_id))
        return ranked[:limit]

    def _score_anchors(self, scores: _Scores, anchors: Sequence[int], use: set[str], allowed: np.ndarray) -> None:
        """The co-purchase and similar-product sources: products that go with the ``anchors``."""
        for anchor in anchors:
            name = self.title(anchor)
            if "co_purchase" in use:
                for pid, s in self.model.co_purchased(anchor, self.config.min_support).items():
                    if _is_allowed(allowed, pid):
                        scores.add("co_purchase", pid, s, f"often bought with {name}")
            if "similar" in use:
                for pid, s in self._similar(anchor, allowed):
                    scores.add("similar", pid, s, f"similar to {name}")

    def _score_history(self, scores: _Scores, history: Sequence[Purchase], now: datetime,
                       allowed: np.ndarray) -> None:
        """The personal source: what goes with, or is like, the shopper's past purchases (recent ones weigh more)."""
        config = self.config
        for pid, weight in self._history_weights(history, now):
            reason = f"because you bought {self.title(pid)}"
            for other, s in self.model.co_purchased(pid, config.min_support).items():
                if _is_allowed(allowed, other):
                    scores.add("personal", other, weight * s, reason)
            for other, s in self._similar(pid, allowed):
                scores.add("personal", other, weight * s * config.personal_similar_factor, reason)

    def _history_weights(self, history: Sequence[Purchase], now: datetime) -> list[tuple[int, float]]:
        """Past items with their decayed weight (a product bought twice counts once, at its latest)."""
        latest: dict[int, datetime] = {}
        for p in history:
            if p.placed_at <= now and (p.product_id not in latest or p.placed_at > latest[p.product_id]):
                latest[p.product_id] = p.placed_at
        weighted = [(pid, 0.5 ** (max(0.0, (now - at).total_seconds()) / DAY_S / self.config.half_life_days))
                    for pid, at in latest.items()]
        weighted.sort(key=lambda x: (-x[1], x[0]))
        return weighted[: self.config.history_items]

    def _popular(self, now: datetime, allowed: np.ndarray, limit: int) -> list[tuple[int, float, str]]:
        popular = self.popularity(now)
        if popular:
            best = sorted(((pid, s) for pid, s in popular.items() if pid < allowed.size and allowed[pid]),
                          key=lambda x: (-x[1], x[0]))[:limit]
            if best:
                return [(pid, s, "popular right now") for pid, s in best]
        # cold start: nothing ordered yet, so the best rated (rating weighted by how many rated it)
        rated = [(pid, info.rating / 5.0 * math.log1p(info.rating_count)) for pid, info in self.products.items()
                 if pid < allowed.size and allowed[pid] and info.rating_count]
        rated.sort(key=lambda x: (-x[1], x[0]))
        top = rated[0][1] if rated else 1.0
        return [(pid, s / top, f"top rated: ★ {self.products[pid].rating:.1f} "
                               f"({self.products[pid].rating_count} reviews)") for pid, s in rated[:limit]]
