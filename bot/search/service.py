"""Product search service used by the assistant: query in, ranked product views out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.models import Product
from bot.search import index as product_index
from bot.search.embeddings import Embedder, get_embedder
from bot.search.fusion import FusionWeights, fuse, reciprocal_rank
from bot.search.query import Filters, ParsedQuery, parse

_WORD = re.compile(r"[a-z0-9]+")
OUT_OF_STOCK_PENALTY = 0.1
OUT_OF_STOCK_POOL = 20
_STOP = {"the", "and", "for", "with", "from", "that", "this", "one", "ones", "something", "thing", "me", "my"}


@dataclass(frozen=True)
class ProductView:
    """What a conversation needs to know about a product (detached from the session)."""

    id: int
    sku: str
    title: str
    brand: str
    category: str
    price: float
    currency: str
    color: str
    material: str
    sizes: list[str]
    rating: float
    rating_count: int
    stock: int
    description: str
    features: list[str]

    @classmethod
    def of(cls, p: Product) -> ProductView:
        return cls(p.id, p.sku, p.title, p.brand, p.category, float(p.price), p.currency, p.color, p.material,
                   list(p.sizes or []), p.rating, p.rating_count, p.stock, p.description,
                   list((p.attributes or {}).get("features", [])))


@dataclass(frozen=True)
class Hit:
    product: ProductView
    score: float
    reason: str


class ProductSearch:
    def __init__(self, session_factory, index_dir: Path, embedder: Embedder | None = None,  # type: ignore[no-untyped-def]
                 weights: FusionWeights | None = None) -> None:
        self._session_factory = session_factory
        self.weights = weights or FusionWeights()
        self._index_dir = index_dir
        self._embedder = embedder or get_embedder()
        with self._session_factory() as session:
            self._index = product_index.ensure(session, self._embedder, index_dir)
            self.colors = frozenset(c for c in session.scalars(select(Product.color).distinct()) if c)

    def parse(self, text: str) -> ParsedQuery:
        return parse(text, self.colors)

    def retrieve(self, text: str, k: int, allowed_ids: list[int] | None = None,
                 mode: str = "hybrid") -> list[tuple[int, float]]:
        """Top-``k`` product ids for a semantic query, among ``allowed_ids`` when given.

        ``mode``: "hybrid" (tuned score fusion), "dense", "lexical" or "rrf" (the baselines).
        """
        index = self._index
        if index.size == 0 or k <= 0 or (allowed_ids is not None and not allowed_ids):
            return []
        depth = max(self.weights.depth, k)
        candidates: dict[int, None] = {}
        if mode != "lexical":
            vector = self._embedder.encode([text])[0]
            candidates.update((pid, None) for pid, _ in index.search(vector, depth, allowed_ids))
        lexical_all = index.lexical.scores(text) if mode != "dense" else None
        if lexical_all is not None:
            masked = lexical_all
            if allowed_ids is not None:
                masked = np.where(np.isin(index.lexical.ids, allowed_ids), lexical_all, -np.inf)
            top = np.argpartition(-masked, min(depth, masked.size - 1))[:depth]
            candidates.update((int(index.lexical.ids[i]), None) for i in top if np.isfinite(masked[i]))
        ids = list(candidates)
        if mode == "lexical":
            assert lexical_all is not None
            scores = lexical_all[np.searchsorted(index.lexical.ids, ids)]
        else:
            dense = index.vectors(ids) @ vector
            if mode == "dense":
                scores = dense
            else:
                assert lexical_all is not None
                lexical = lexical_all[np.searchsorted(index.lexical.ids, ids)]
                scores = reciprocal_rank(dense, lexical) if mode == "rrf" else fuse(dense, lexical, self.weights)
        order = np.argsort(-np.asarray(scores), kind="stable")[:k]
        return [(ids[i], float(scores[i])) for i in order]

    def search(self, query: ParsedQuery, limit: int = 5, offset: int = 0) -> list[Hit]:
        with self._session_factory() as session:
            allowed = None if query.filters.is_empty() else _allowed_ids(session, query.filters)
            pool = limit + offset + (50 if query.wants_cheap else OUT_OF_STOCK_POOL)
            ranked = self.retrieve(query.text, pool, allowed)
            products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_([i for i, _ in ranked])))}
            hits = [Hit(ProductView.of(products[pid]), score, _reason(products[pid], query))
                    for pid, score in ranked if pid in products]
        # Out-of-stock products stay findable but rank after comparable ones in stock.
        hits.sort(key=lambda h: h.score - (OUT_OF_STOCK_PENALTY if h.product.stock <= 0 else 0.0), reverse=True)
        if query.wants_cheap:  # among the relevant ones, cheapest first
            hits = sorted(hits[: max(limit + offset, 20)], key=lambda h: h.product.price)
        return hits[offset: offset + limit]

    def get(self, product_id: int) -> ProductView | None:
        with self._session_factory() as session:
            product = session.get(Product, product_id)
            return ProductView.of(product) if product else None

    def top_rated(self, limit: int = 5, category: str | None = None) -> list[ProductView]:
        with self._session_factory() as session:
            stmt = select(Product).where(Product.stock > 0, Product.rating_count >= 50)
            if category:
                stmt = stmt.where(Product.category == category)
            stmt = stmt.order_by(Product.rating.desc(), Product.rating_count.desc()).limit(limit)
            return [ProductView.of(p) for p in session.scalars(stmt)]


def _allowed_ids(session: Session, filters: Filters) -> list[int]:
    stmt = select(Product.id)
    if filters.min_price is not None:
        stmt = stmt.where(Product.price >= filters.min_price)
    if filters.max_price is not None:
        stmt = stmt.where(Product.price <= filters.max_price)
    if filters.colors:
        stmt = stmt.where(Product.color.in_(filters.colors))
    if filters.in_stock:
        stmt = stmt.where(Product.stock > 0)
    return list(session.scalars(stmt))


def _reason(product: Product, query: ParsedQuery) -> str:
    words = {w for w in _WORD.findall(query.text.lower()) if len(w) > 2 and w not in _STOP}
    haystack = " ".join([product.title, product.category, product.material, product.description]).lower()
    matched = sorted(w for w in words if w in haystack and w not in query.filters.colors)
    bits = []
    if matched:
        bits.append("matches " + ", ".join(matched[:4]))
    described = query.filters.describe()
    if described:
        bits.append(described)
    features = (product.attributes or {}).get("features") or []
    if not bits and features:
        bits.append(features[0])
    return "; ".join(bits)
