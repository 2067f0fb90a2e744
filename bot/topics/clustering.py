"""Clustering message embeddings into topics.

Chosen by measuring on the labelled set of ``bot.topics.labelled`` (2,677 unique messages, 52 labels: our
intents plus one ``off_topic`` label for the 15 off-topic subjects), noise counted as one cluster, on
2026-12-05 (2 cores):

=============================================  =====  =====  ======
method                                          ARI    NMI   noise
=============================================  =====  =====  ======
agglomerative, average linkage, cosine 0.65     0.465  0.688  25.2 %
agglomerative, average linkage, cosine 0.60     0.413  0.675  30.6 %
agglomerative, complete linkage, cosine 0.70    0.350  0.656  32.9 %
HDBSCAN, min_cluster_size 5, min_samples 3      0.108  0.509  59.0 %
HDBSCAN, min_cluster_size 10                    0.097  0.235  53.2 %
two-stage: k-means n/3 -> agglomerative 0.55    0.273  0.645  15.9 %
two-stage: k-means sqrt(n)*2 -> HDBSCAN 2       0.175  0.557  31.5 %
=============================================  =====  =====  ======

(topics under 5 messages are noise for the agglomerative rows). HDBSCAN finds few dense regions in these
short texts and leaves most messages as noise, so agglomerative clustering with a cosine distance cut wins.
Agglomerative clustering needs the full distance matrix (n² memory and more time), so up to
:data:`DIRECT_LIMIT` messages it runs on the messages themselves. Above that it clusters a uniform random
sample of :data:`SAMPLE_SIZE` messages (fixed seed; uniform, so each region of the embedding space is
represented in proportion, as a stratified sample would be) the same way, then every other message joins
the nearest sample topic when it lies within that topic's radius (:func:`nearest_within`, the rule the
incremental ``bot.topics.assign`` uses), else it is noise; centres and radii are then recomputed over all
members. ``python -m bot bench topics --scale``, 2026-12-05, 2 cores shared with other work:

=======================================================  ======  =====  =====  ======  =========
large path, synthetic set                                 topics   ARI    NMI   noise   cluster
=======================================================  ======  =====  =====  ======  =========
sample 5,000 + assign, 10,000 messages                       247  0.216  0.578  29.0 %     2.5 s
sample 5,000 + assign, 100,000 messages                      249  0.196  0.539  38.3 %     3.1 s
earlier two-stage (k-means micro-clusters), 10,000 *         440  0.108  0.605   6.2 %     5.8 s
earlier two-stage (k-means micro-clusters), 100,000 *      1,046  0.085  0.625   0.0 %    24.8 s
agglomerative on the first 6,000 of the 10,000 set           296  0.203  0.611  17.1 %     3.6 s
3 rounds (each re-samples what is still noise), 100,000    1,173  0.098  0.584   7.5 %     8.8 s
=======================================================  ======  =====  =====  ======  =========

(* an earlier run the same day.) So on these sets the sample costs little against clustering directly, and
extra rounds over the noise only add small, mixed topics. Forced onto the labelled set (a 2,000 sample of the
2,677) it gives ARI 0.379, NMI 0.645, 31.9 % noise, against 0.465 / 0.688 / 25.2 % directly. The synthetic
sets are our messages with small edits and embedding jitter, about 12,450 distinct texts in all (see
``benchmarks.topics``), so those rows measure speed and stability (seeds 0 to 2 at 10,000: ARI 0.204 to
0.216) more than quality. A limit to know: a subject with under about ``min_size * n / SAMPLE_SIZE`` messages
rarely shows in the sample and stays noise until it grows (or until incremental assignment, which also only
joins existing topics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NOISE = -1
METHOD_DIRECT = "agglomerative"
METHOD_SAMPLED = "sample+assign"
DISTANCE_CUT = 0.65   # cosine distance at which agglomerative (average linkage) stops merging
MIN_SIZE = 5          # smaller topics are noise
DIRECT_LIMIT = 6000   # above this many messages: cluster a sample, assign the rest
SAMPLE_SIZE = 5000    # messages clustered directly on the large path
RADIUS_PERCENTILE = 95  # a topic's radius: this percentile of its members' distances to the centre
ASSIGN_CHUNK = 20_000   # rows per distance block when assigning (bounds memory)


@dataclass(frozen=True)
class ClusterParams:
    distance_cut: float = DISTANCE_CUT
    min_size: int = MIN_SIZE
    direct_limit: int = DIRECT_LIMIT
    sample_size: int = SAMPLE_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.sample_size <= self.direct_limit:
            raise ValueError(f"sample_size must be in 1..direct_limit ({self.direct_limit}), not {self.sample_size}")

    def as_dict(self) -> dict[str, Any]:
        return {"distance_cut": self.distance_cut, "min_size": self.min_size, "direct_limit": self.direct_limit,
                "sample_size": self.sample_size, "seed": self.seed, "radius_percentile": RADIUS_PERCENTILE}


@dataclass(frozen=True)
class Clustering:
    """``labels[i]``: topic index of message i (0..k-1) or :data:`NOISE`; per topic its unit centre and
    radius (cosine distance within which new messages join it)."""

    method: str
    labels: np.ndarray
    centroids: np.ndarray
    radii: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def topics(self) -> int:
        return len(self.centroids)

    @property
    def noise(self) -> int:
        return int((self.labels == NOISE).sum())


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _agglomerative(x: np.ndarray, cut: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(x) < 2:
        return np.zeros(len(x), dtype=np.int64)
    return np.asarray(AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                              distance_threshold=cut).fit_predict(x))


def nearest_within(x: np.ndarray, centroids: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The assignment rule (also used by incremental assignment, ``bot.topics.assign``): per row of unit
    vectors ``x`` the index of the nearest centre (cosine) when the distance is at most that topic's radius,
    else :data:`NOISE`; and the distance to that nearest centre."""
    n = len(x)
    best = np.full(n, NOISE, dtype=np.int64)
    distance = np.ones(n, dtype=np.float64)
    if n == 0 or len(centroids) == 0:
        return best, distance
    centres = np.asarray(centroids, dtype=np.float32)
    limits = np.asarray(radii, dtype=np.float64)
    for start in range(0, n, ASSIGN_CHUNK):
        block = 1.0 - np.asarray(x[start:start + ASSIGN_CHUNK], dtype=np.float32) @ centres.T
        column = block.argmin(1)
        d = block[np.arange(len(block)), column].astype(np.float64)
        best[start:start + len(block)] = np.where(d <= limits[column], column, NOISE)
        distance[start:start + len(block)] = d
    return best, distance


def _topics(x: np.ndarray, raw: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (largest topic first, topics under ``min_size`` and negative raw labels as noise), unit
    centres and radii."""
    n = len(x)
    ids, counts = np.unique(raw[raw >= 0], return_counts=True)
    kept = [int(i) for i, c in sorted(zip(ids, counts, strict=True), key=lambda ic: -ic[1]) if c >= min_size]
    remap = np.full(int(raw.max()) + 2 if n else 1, NOISE, dtype=np.int64)  # its last slot maps NOISE (-1)
    for new, old in enumerate(kept):
        remap[old] = new
    labels = remap[raw]
    centroids = np.zeros((len(kept), x.shape[1] if n else 0), dtype=np.float32)
    radii = np.zeros(len(kept), dtype=np.float32)
    for t in range(len(kept)):
        members = x[labels == t]
        centroids[t] = _unit(members.mean(0, keepdims=True))[0]
        radii[t] = float(np.percentile(1.0 - members @ centroids[t], RADIUS_PERCENTILE))
    return labels.astype(np.int64), centroids, radii


def _sampled(x: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Cluster a random sample (fixed seed) directly, then every other message joins the nearest sample
    topic within its radius (:func:`nearest_within`), or is noise."""
    sample = np.sort(np.random.default_rng(params.seed).choice(len(x), params.sample_size, replace=False))
    labels, centroids, radii = _topics(x[sample], _agglomerative(x[sample], params.distance_cut), params.min_size)
    rest = np.ones(len(x), dtype=bool)
    rest[sample] = False
    raw = np.full(len(x), NOISE, dtype=np.int64)
    raw[sample] = labels
    raw[rest] = nearest_within(x[rest], centroids, radii)[0]
    return raw


def cluster(embeddings: np.ndarray, params: ClusterParams | None = None) -> Clustering:
    """Topics of unit-length embeddings (rows); deterministic for a given ``params.seed``."""
    params = params or ClusterParams()
    x = _unit(np.asarray(embeddings, dtype=np.float32))
    n = len(x)
    method = METHOD_DIRECT if n <= params.direct_limit else METHOD_SAMPLED
    if n == 0:
        raw = np.zeros(0, dtype=np.int64)
    else:
        raw = _agglomerative(x, params.distance_cut) if method == METHOD_DIRECT else _sampled(x, params)
    labels, centroids, radii = _topics(x, raw, params.min_size)
    return Clustering(method=method, labels=labels, centroids=centroids, radii=radii, params=params.as_dict())


def nearest(x: np.ndarray, centroids: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` rows of ``x`` nearest (cosine) to one centre."""
    distances = 1.0 - x @ centroids
    return [int(i) for i in np.argsort(distances, kind="stable")[:k]]
