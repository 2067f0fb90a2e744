"""Fusing dense and lexical scores into one ranking, with a weight chosen per query.

Each signal is min-max normalised over its own top-``depth`` candidates (the depth-th score maps
to 0, the best to 1, anything below clips to 0), then the two are mixed. How much the meaning
(dense) counts against the words (BM25F) depends on the query, read without any relevance labels:

- **Words the catalog does not have.** A typo ("snekers"), a vague word ("lounge") or a need ("for
  flights") cannot be matched by BM25 at all; the share of the query's idf mass that no product
  contains moves the weight towards ``unknown_dense``.
- **Sizes, units and model numbers.** MiniLM reads "3/4in", "18v" or "wh1000xm4" poorly, and a
  shopper who types them wants exactly them; their share of the query's known idf mass moves the
  weight towards ``numeric_dense``.
- Otherwise ``dense``.

The three weights are chosen on every relevance set together (``python -m bot bench search --tune``
keeps the setting whose worst margin over the best baseline is largest), never on one set alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    # Chosen with `python -m bot bench search --tune` on search-dev, fashion and electronics together.
    dense: float = 0.55  # a query made of words the catalog has
    unknown_dense: float = 0.8  # a query whose words no product has
    numeric_dense: float = 0.2  # a query of sizes, units and model numbers
    depth: int = 300

    def for_query(self, terms: Sequence[tuple[str, float, bool]]) -> float:
        """The dense weight for a query's (token, idf, in the catalog) terms."""
        total = sum(idf for _, idf, _ in terms)
        if total <= 0:
            return self.dense
        unknown = sum(idf for _, idf, known in terms if not known) / total
        known_total = total * (1 - unknown)
        numeric = (sum(idf for token, idf, known in terms if known and any(c.isdigit() for c in token)) / known_total
                   if known_total > 0 else 0.0)
        weight = self.dense + (self.numeric_dense - self.dense) * numeric
        return float(weight + (self.unknown_dense - weight) * unknown)


def normalise(scores: np.ndarray, depth: int) -> np.ndarray:
    if scores.size == 0:
        return scores
    k = min(depth, scores.size)
    top = np.partition(scores, scores.size - k)[scores.size - k:]
    lo, hi = float(top.min()), float(top.max())
    if hi - lo < 1e-9:
        return (scores >= hi).astype(np.float32) if hi > 0 else np.zeros_like(scores)
    return np.clip((scores - lo) / (hi - lo), 0.0, None)


def fuse(dense: np.ndarray, lexical: np.ndarray, dense_weight: float, depth: int) -> np.ndarray:
    """Scores of the same candidates from both signals -> fused scores (same order)."""
    return dense_weight * normalise(dense, depth) + (1.0 - dense_weight) * normalise(lexical, depth)


def reciprocal_rank(*scores: np.ndarray, k: int = 60) -> np.ndarray:
    """Plain reciprocal-rank fusion (the baseline)."""
    fused = np.zeros_like(scores[0], dtype=np.float64)
    for s in scores:
        ranks = np.empty(s.size, dtype=np.int64)
        ranks[np.argsort(-s, kind="stable")] = np.arange(s.size)
        fused += 1.0 / (k + ranks + 1)
    return fused
