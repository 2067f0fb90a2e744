"""``python -m bot bench topics``: clustering quality on the labelled set (``bot.topics.labelled``) and the
time to cluster 10,000 (and with ``--scale`` 100,000) messages.

The large sets repeat our messages with small edits (a dropped word or a changed letter) so they are new
texts with known labels; only the unique texts are embedded (that time is reported apart), then each copy's
embedding gets a small gaussian jitter (sigma 0.01 per dimension, renormalised) so no two are identical.
How honest that is: an edit moves a short message's embedding a fair way (mean cosine 0.82 to its original),
but there are only 5 texts per labelled message (the original and :data:`VARIANTS` edits), about 12,450
distinct in all (some edits coincide), so the 100,000 set is mostly jittered repeats (cosine about 0.96 to
each other; ``distinct_texts`` says how many texts a set really has). The scale rows therefore measure speed
and stability more than quality; the labelled set is the quality measure.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bot.topics.clustering import NOISE, ClusterParams, cluster
from bot.topics.embedding import embed
from bot.topics.labelled import load

JITTER = 0.01
VARIANTS = 4  # edited variants per message, embedded once each


@dataclass(frozen=True)
class BenchRow:
    messages: int
    distinct_texts: int
    method: str
    topics: int
    ari: float
    nmi: float
    noise_share: float
    embed_seconds: float
    cluster_seconds: float


def _score(labels: list[str], found: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return (round(float(adjusted_rand_score(labels, found)), 4),
            round(float(normalized_mutual_info_score(labels, found)), 4))


def edit(text: str, rng: random.Random) -> str:
    """Drop one word (of three or more) or change one letter."""
    words = text.split()
    if len(words) >= 3 and rng.random() < 0.5:
        del words[rng.randrange(len(words))]
        return " ".join(words)
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if not letters:
        return text
    i = rng.choice(letters)
    return text[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + text[i + 1:]


def _row(labels: list[str], vectors: np.ndarray, embed_seconds: float, params: ClusterParams,
         distinct_texts: int) -> BenchRow:
    started = time.perf_counter()
    result = cluster(vectors, params)
    seconds = time.perf_counter() - started
    ari, nmi = _score(labels, result.labels)
    return BenchRow(messages=len(labels), distinct_texts=distinct_texts, method=result.method,
                    topics=result.topics, ari=ari, nmi=nmi,
                    noise_share=round(float((result.labels == NOISE).mean()), 4),
                    embed_seconds=round(embed_seconds, 2), cluster_seconds=round(seconds, 2))


def run(sizes: tuple[int, ...] = (10_000,), tests_dir: Path | None = None, seed: int = 0,
        params: ClusterParams | None = None) -> list[BenchRow]:
    params = params or ClusterParams(seed=seed)
    data = load(tests_dir)
    texts, labels = list(data.texts), list(data.labels)
    started = time.perf_counter()
    base = embed(texts)
    rows = [_row(labels, base, time.perf_counter() - started, params, len(set(texts)))]
    if not sizes:
        return rows
    rng = random.Random(seed)
    variants = [edit(t, rng) for t in texts for _ in range(VARIANTS)]
    started = time.perf_counter()
    edited = embed(variants).reshape(len(texts), VARIANTS, -1)
    embed_seconds = time.perf_counter() - started
    pool = np.concatenate([base[:, None, :], edited], axis=1)  # (messages, 1 + VARIANTS, dim)
    pool_texts = [[t, *variants[i * VARIANTS:(i + 1) * VARIANTS]] for i, t in enumerate(texts)]
    noise = np.random.default_rng(seed)
    for size in sizes:
        which = noise.integers(0, len(texts), size)
        variant = noise.integers(0, VARIANTS + 1, size)
        vectors = pool[which, variant] + noise.normal(0.0, JITTER, (size, pool.shape[2])).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        distinct = len({pool_texts[i][j] for i, j in zip(which.tolist(), variant.tolist(), strict=True)})
        rows.append(_row([labels[i] for i in which], vectors.astype(np.float32), embed_seconds, params, distinct))
    return rows


def as_dicts(rows: list[BenchRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]


def main(scale: bool, as_json: bool) -> None:
    """Run and print a table (or one JSON document)."""
    import json
    import sys

    rows = run((10_000, 100_000) if scale else (10_000,))
    if as_json:
        json.dump(as_dicts(rows), sys.stdout)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bench topics (first row: the labelled set; others: synthetic copies)")
    for column in ("messages", "texts", "method", "topics", "ARI", "NMI", "noise", "embed s", "cluster s"):
        table.add_column(column, justify="left" if column == "method" else "right", no_wrap=True)
    for r in rows:
        table.add_row(f"{r.messages:,}", f"{r.distinct_texts:,}", r.method, str(r.topics), f"{r.ari:.3f}",
                      f"{r.nmi:.3f}", f"{r.noise_share:.1%}", f"{r.embed_seconds:.1f}", f"{r.cluster_seconds:.1f}")
    Console().print(table)
