"""Fusing dense and lexical scores into one ranking, with a weight chosen per catalog and per query.

Each signal is min-max normalised over its own top-``depth`` candidates (the depth-th score maps
to 0, the best to 1, anything below clips to 0), then the two are mixed. How much the meaning
(dense) counts against the words (BM25F) is read without any relevance labels:

- **Per catalog** (``calibration.py``): pseudo-queries drawn from the catalog's own titles say how
  well the embedding reads this catalog compared with BM25F; that sets the base weight ``dense``.
- **Per query**: sizes, units and model numbers ("3/4in", "18v", "wh1000xm4") are read poorly by
  MiniLM, and a shopper who types them wants exactly them; their share of the query's idf mass
  moves the weight towards ``numeric_dense``.

Measured and left out: moving towards dense for words the catalog does not have (typos, needs) lost
on the fashion set; per-query confidence from score gaps, z-score normalisation, CombMNZ and
weighted RRF did not beat this on the three sets together (docs/benchmarks.md, "Search relevance").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    dense: float = 0.54  # a query of words; the catalog's calibration replaces it (calibration.py)
    numeric_dense: float = 0.2  # a query of sizes, units and model numbers
    depth: int = 300

    def for_query(self, terms: Sequence[tuple[str, float, bool]]) -> float:
        """The dense weight for a query's (token, idf, in the catalog) terms."""
        known = [(token, idf) for token, idf, found in terms if found]
        total = sum(idf for _, idf in known)
        if total <= 0:
            return self.dense
        numeric = sum(idf for token, idf in known if any(c.isdigit() for c in token)) / total
        return float(self.dense + (self.numeric_dense - self.dense) * numeric)


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
