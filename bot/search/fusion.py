"""Fusing dense and lexical scores into one ranking.

Each signal is min-max normalised over its own top-``depth`` candidates (the depth-th score maps
to 0, the best to 1, anything below clips to 0), then combined with weights. Weights are tuned
on a relevance set with ``python -m bot bench search --tune`` and stored in ``FusionWeights``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    # Tuned on search-dev with `python -m bot bench search --dataset DIR --tune` (nDCG@10 0.8026).
    dense: float = 0.65
    depth: int = 200

    @property
    def lexical(self) -> float:
        return 1.0 - self.dense


def normalise(scores: np.ndarray, depth: int) -> np.ndarray:
    if scores.size == 0:
        return scores
    k = min(depth, scores.size)
    top = np.partition(scores, scores.size - k)[scores.size - k:]
    lo, hi = float(top.min()), float(top.max())
    if hi - lo < 1e-9:
        return (scores >= hi).astype(np.float32) if hi > 0 else np.zeros_like(scores)
    return np.clip((scores - lo) / (hi - lo), 0.0, None)


def fuse(dense: np.ndarray, lexical: np.ndarray, weights: FusionWeights) -> np.ndarray:
    """Scores of the same candidates from both signals -> fused scores (same order)."""
    return weights.dense * normalise(dense, weights.depth) + weights.lexical * normalise(lexical, weights.depth)


def reciprocal_rank(*scores: np.ndarray, k: int = 60) -> np.ndarray:
    """Plain reciprocal-rank fusion (the baseline)."""
    fused = np.zeros_like(scores[0], dtype=np.float64)
    for s in scores:
        ranks = np.empty(s.size, dtype=np.int64)
        ranks[np.argsort(-s, kind="stable")] = np.arange(s.size)
        fused += 1.0 / (k + ranks + 1)
    return fused
