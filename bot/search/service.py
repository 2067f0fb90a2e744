"""Product search service used by the assistant: query in, ranked product views out."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.catalog.tables import Product
from bot.catalog.views import ProductView
from bot.config import get_settings
from bot.search import dense
from bot.search import index as product_index
from bot.search.embeddings import Embedder, get_embedder
from bot.search.facets import Facets
from bot.search.fusion import FusionWeights, fuse, reciprocal_rank
from bot.search.query import Filters, ParsedQuery, QueryParser, merge_entities
from bot.search.synonyms import Synonyms, stamp

_WORD = re.compile(r"[a-z0-9]+")
OUT_OF_STOCK_PENALTY = 0.1
OUT_OF_STOCK_POOL = 20
PARSER_DIR = "query_parser"
_STOP = {"the", "and", "for", "with", "from", "that", "this", "one", "ones", "something", "thing", "me", "my"}


@dataclass(frozen=True)
class Hit:
    product: ProductView
    score: float
    reason: str


class QueryVectorCache:
    """The embeddings of the latest ``size`` query texts (least recently used out; 0: no cache).

    A refinement ("cheaper", "in black", "show more") runs the same semantic text again with other filters,
    and popular searches repeat: their embedding (about 8 ms of CPU, most of a search) is reused. Vectors
    depend only on the text and the model, so a catalog change does not invalidate them. The search
    benchmark runs without it, so its latencies are those of a first query.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str, embedder: Embedder) -> np.ndarray:
        if self.size <= 0:
            return embedder.encode([text])[0]
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
                self.hits += 1
                return vector
        vector = embedder.encode([text])[0]
        vector.setflags(write=False)  # shared between searches
        with self._lock:
            self.misses += 1
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vector


class ProductSearch:
    """Hybrid product search over the catalog, kept in step with it.

    Every ``refresh_seconds`` (at most) a search checks whether the catalog changed (count, last
    id, last update); if so the index is synced product by product and the filter facets and the
    query parser are reloaded. The query parser is also rebuilt when the synonym file changes
    (``synonyms_file``, default: the ``search_synonyms_file`` setting).
    """

    def __init__(self, session_factory, index_dir: Path, embedder: Embedder | None = None,  # type: ignore[no-untyped-def]
                 weights: FusionWeights | None = None, refresh_seconds: float = 5.0, query_cache: int = 0,
                 synonyms_file: Path | None = None) -> None:
        self._synonyms_file = get_settings().search_synonyms_file if synonyms_file is None else synonyms_file
        self._session_factory = session_factory
        self.query_vectors = QueryVectorCache(query_cache)
        self.fixed_weights = weights  # None: the catalog's calibrated weights
        self._index_dir = index_dir
        self._embedder = embedder or get_embedder()
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        with self._session_factory() as session:
            self._index = product_index.ensure(session, self._embedder, index_dir)
            self._load_catalog_state(session)
        # One query at a time: a second OpenMP thread only adds waiting on a busy 2-core machine
        # (exact search at 100k: 29 ms p50 with two threads, 6 ms with one; docs/benchmarks.md, "Search at scale").
        dense.use_one_thread_per_query()

    def _load_catalog_state(self, session: Session) -> None:
        self._state = _catalog_state(session)
        self._checked = time.monotonic()
        self.facets = Facets.load(session)
        self._load_parser()

    def _load_parser(self) -> None:
        self._synonyms_stamp = stamp(self._synonyms_file)
        self.parser = QueryParser.ensure(self.facets.vocabulary(), self._index_dir / PARSER_DIR,
                                         Synonyms.load(self._synonyms_file))

    def refresh(self, force: bool = False) -> bool:
        """Sync with catalog changes; True when something changed."""
        if not force and time.monotonic() - self._checked < self._refresh_seconds:
            return False
        with self._lock, self._session_factory() as session:
            state = _catalog_state(session)
            self._checked = time.monotonic()
            if state == self._state and not force:
                if stamp(self._synonyms_file) == self._synonyms_stamp:
                    return False
                self._load_parser()  # the shop edited its synonyms
                return True
            texts = product_index.catalog_texts(session)
            report = self._index.sync(texts, self._embedder)
            if report.touched:
                self._index.save(self._index_dir)
            self._load_catalog_state(session)
            return True

    @property
    def index(self) -> product_index.ProductIndex:
        return self._index

    @property
    def weights(self) -> FusionWeights:
        """The fixed weights when given, else the defaults with this catalog's calibrated dense weight."""
        if self.fixed_weights is not None:
            return self.fixed_weights
        calibration = self._index.calibration
        return FusionWeights() if calibration is None else replace(FusionWeights(), dense=calibration.dense_weight)

    def parse(self, text: str, entities: list[dict[str, Any]] | None = None) -> ParsedQuery:
        parsed = self.parser.parse(text)
        return merge_entities(parsed, entities, self.parser.vocabulary, self.parser.aliases) if entities else parsed

    def retrieve(self, text: str, k: int, allowed: np.ndarray | None = None,
                 mode: str = "hybrid", lexical_text: str | None = None) -> list[tuple[int, float]]:
        """Top-``k`` product ids for a semantic query, among the ids ``allowed`` (a mask) when given.

        ``mode``: "hybrid" (score fusion weighted per query, ``fusion.py``), "dense", "lexical" or "rrf" (the
        baselines).
        ``lexical_text``: what BM25 searches instead of ``text`` (the text plus other names from the synonyms).
        """
        index = self._index
        if index.size == 0 or k <= 0 or (allowed is not None and not allowed.any()):
            return []
        if not text.strip():
            return self._best_rated(k, allowed)
        weights = self.weights
        depth = max(weights.depth, k)
        lexical_ids, lexical_scores = (index.lexical.search(lexical_text or text, allowed) if mode != "dense"
                                       else (None, None))
        if mode == "lexical":
            assert lexical_ids is not None and lexical_scores is not None
            order = np.argsort(-lexical_scores, kind="stable")[:k]
            return [(int(lexical_ids[i]), float(lexical_scores[i])) for i in order]
        vector = self.query_vectors.get(text, self._embedder)
        dense_ids, _ = index.dense.search(vector, depth, allowed)
        if lexical_ids is None or lexical_scores is None:
            ids, scores = dense_ids, index.dense.scores(vector, dense_ids)
        else:
            if lexical_ids.size > depth:
                top = np.argpartition(-lexical_scores, depth - 1)[:depth]
                top_ids = lexical_ids[top]
            else:
                top_ids = lexical_ids
            ids = np.unique(np.concatenate([dense_ids, top_ids]))
            dense = index.dense.scores(vector, ids)
            order = np.argsort(lexical_ids)
            at = np.clip(np.searchsorted(lexical_ids, ids, sorter=order), 0, max(lexical_ids.size - 1, 0))
            lexical = np.zeros(ids.size, dtype=np.float32)
            if lexical_ids.size:
                found = lexical_ids[order[at]] == ids
                lexical[found] = lexical_scores[order[at[found]]]
            known = np.isfinite(dense)
            ids, dense, lexical = ids[known], dense[known], lexical[known]
            if mode == "rrf":
                scores = reciprocal_rank(dense, lexical)
            else:
                weight = weights.for_query(index.lexical.query_terms(text))
                scores = fuse(dense, lexical, weight, weights.depth)
        order = np.argsort(-np.asarray(scores), kind="stable")[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def _best_rated(self, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """No words to match (only filters): the best-rated products, in stock first."""
        facets = self.facets
        candidates = np.flatnonzero(facets.exists if allowed is None else allowed[: facets.size] & facets.exists)
        score = (facets.rating[candidates] / 5.0 * np.log1p(facets.rating_count[candidates]) / 10.0
                 + (facets.stock[candidates] > 0))
        order = np.argsort(-score, kind="stable")[:k]
        return [(int(candidates[i]), float(score[i])) for i in order]

    def count(self, filters: Filters) -> int:
        """How many products satisfy these filters (the whole catalog when there are none)."""
        mask = self.facets.mask(filters)
        return int(self.facets.exists.sum() if mask is None else mask.sum())

    def search(self, query: ParsedQuery, limit: int = 5, offset: int = 0) -> list[Hit]:
        self.refresh()
        allowed = self.facets.mask(query.filters)
        with self._session_factory() as session:
            pool = limit + offset + (50 if query.wants_cheap else OUT_OF_STOCK_POOL)
            lexical = " ".join([query.text, *query.expansions]) if query.expansions else None
            ranked = self.retrieve(query.text, pool, allowed, lexical_text=lexical)
            products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_([i for i, _ in ranked])))}
            hits = [Hit(ProductView.of(products[pid]), score, _reason(products[pid], query))
                    for pid, score in ranked if pid in products]
        # Out-of-stock products stay findable but rank after comparable ones in stock.
        hits.sort(key=lambda h: h.score - (OUT_OF_STOCK_PENALTY if h.product.stock <= 0 else 0.0), reverse=True)
        if query.wants_cheap:  # among the relevant ones, cheapest first
            hits = sorted(hits[: max(limit + offset, 20)],
                          key=lambda h: (h.product.price is None, h.product.price or 0.0))
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


def _catalog_state(session: Session) -> tuple[Any, ...]:
    """Cheap summary that changes whenever products are added, removed, restocked or edited."""
    return tuple(session.execute(select(
        func.count(Product.id), func.max(Product.id), func.max(Product.updated_at), func.sum(Product.stock),
        func.sum(Product.price), func.sum(func.length(Product.title) + func.length(Product.description)),
    )).one())


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
