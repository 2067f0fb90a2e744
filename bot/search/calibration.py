"""How much a catalog's search should trust meaning over words, learnt from the catalog itself.

MiniLM reads some catalogs better than others: on titles full of sizes, units and model numbers it
finds less than BM25 does, and a fixed fusion weight tuned on one catalog then loses to BM25 on
another. No relevance labels come with a shop's catalog, so the catalog makes its own: pseudo-queries
of two to four words drawn from a product's title (its brand left out), whose answer is that product
(or any product with the same title). Both signals search them; the dense signal's share of the two
mean reciprocal ranks says how well the embedding reads this catalog compared with BM25F.

Title words favour BM25F on every catalog, so the share is read relative to the catalogs we judged:
the fusion's base dense weight moves from ``DEFAULT_DENSE`` by ``SLOPE`` per unit of share away from
``REFERENCE_SHARE``, within ``[MIN_DENSE, MAX_DENSE]``. The constants are the line that does best on
the three relevance sets together (largest worst margin over the best baseline, read from each set's
``bench search --sweep``; docs/benchmarks.md, "Search relevance").
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from bot.search.dense import DenseIndex
from bot.search.lexical import LexicalIndex

PSEUDO_QUERIES = 1000
MIN_PRODUCTS = 500  # a smaller catalog gives too few pseudo-queries for a steady estimate: default weight
DEPTH = 100
DEFAULT_DENSE = 0.54
REFERENCE_SHARE = 0.40
SLOPE = 2.0
MIN_DENSE, MAX_DENSE = 0.3, 0.7
_WORD = re.compile(r"[A-Za-z0-9][\w'./-]*")


class Encoder(Protocol):
    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class Calibration:
    queries: int
    dense_mrr: float
    lexical_mrr: float
    dense_weight: float

    @property
    def dense_share(self) -> float:
        return dense_share(self.dense_mrr, self.lexical_mrr)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: Any) -> Calibration | None:
        try:
            return cls(int(data["queries"]), float(data["dense_mrr"]), float(data["lexical_mrr"]),
                       float(data["dense_weight"]))
        except (TypeError, KeyError, ValueError):
            return None


def dense_share(dense_mrr: float, lexical_mrr: float) -> float:
    """The dense signal's share of the two mean reciprocal ranks (the reference share when both are 0)."""
    total = dense_mrr + lexical_mrr
    return dense_mrr / total if total > 0 else REFERENCE_SHARE


def dense_weight_for(share: float) -> float:
    return float(np.clip(DEFAULT_DENSE + SLOPE * (share - REFERENCE_SHARE), MIN_DENSE, MAX_DENSE))


def pseudo_queries(ids: Sequence[int], titles: Sequence[str], brands: Sequence[str], count: int = PSEUDO_QUERIES,
                   seed: int = 0) -> list[tuple[str, frozenset[int]]]:
    """(query, ids of the products it was drawn from) for up to ``count`` products, deterministically."""
    same_title: dict[str, set[int]] = defaultdict(set)
    for pid, title in zip(ids, titles, strict=True):
        same_title[title.lower()].add(pid)
    rng = random.Random(seed)
    order = rng.sample(range(len(ids)), len(ids))
    queries: list[tuple[str, frozenset[int]]] = []
    for i in order:
        if len(queries) >= count:
            break
        brand = set(brands[i].lower().split())
        words = [w for w in _WORD.findall(titles[i]) if w.lower() not in brand]
        if len(words) < 3:
            continue
        k = rng.randint(2, min(4, len(words) - 1))
        picked = sorted(rng.sample(range(len(words)), k))
        queries.append((" ".join(words[j] for j in picked).lower(), frozenset(same_title[titles[i].lower()])))
    return queries


def _reciprocal_rank(ranked: np.ndarray, targets: frozenset[int]) -> float:
    for rank, pid in enumerate(ranked[:DEPTH].tolist()):
        if pid in targets:
            return 1.0 / (rank + 1)
    return 0.0


def calibrate(dense: DenseIndex, lexical: LexicalIndex, encoder: Encoder, ids: Sequence[int],
              titles: Sequence[str], brands: Sequence[str], count: int = PSEUDO_QUERIES) -> Calibration | None:
    """The catalog's calibration, or None when it is too small to draw enough pseudo-queries from."""
    if len(ids) < MIN_PRODUCTS:
        return None
    queries = pseudo_queries(ids, titles, brands, count)
    if len(queries) < MIN_PRODUCTS // 5:
        return None
    found = dense.search_many(encoder.encode([q for q, _ in queries]), DEPTH)
    dense_rr, lexical_rr = [], []
    for (text, targets), row in zip(queries, found, strict=True):
        dense_rr.append(_reciprocal_rank(row, targets))
        lex_ids, lex_scores = lexical.search(text)
        lexical_rr.append(_reciprocal_rank(lex_ids[np.argsort(-lex_scores, kind="stable")], targets))
    dense_mrr, lexical_mrr = float(np.mean(dense_rr)), float(np.mean(lexical_rr))
    weight = dense_weight_for(dense_share(dense_mrr, lexical_mrr))
    return Calibration(len(queries), round(dense_mrr, 4), round(lexical_mrr, 4), round(weight, 4))
