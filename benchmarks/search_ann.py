"""Scale benchmark of the product vector index (:class:`bot.search.dense.DenseIndex`), exact vs IVF.

``python -m benchmarks.search_ann --sizes 20000,50000,100000 --queries 1000`` prints one JSON line per
catalog size: build time, recall@10 of the IVF index against exact search for several ``nprobe``,
single-query latency p50/p95 in ms (wall clock and CPU time) of both, bytes per product (serialized
index and resident-memory growth), filtered search with 1% and 20% of the products allowed and, at the
largest size, the time of an incremental update (remove 1,000 products, upsert 1,000 changed ones).

Synthetic catalogs. Uniform random vectors in 384 dimensions have no cluster structure, which makes
any ANN index look far worse than on real data, so the vectors are built around *real* product
embeddings ("anchors"): product texts (``--texts``: the demo catalog and/or real catalog files) are
embedded once with the real model and cached under ``results/ann-benchmark/``. Each synthetic
product is then

    normalise(a_i + sum_j w_j (a_j - a_i) + e)      w_j ~ N(0, (s / sqrt(K))^2),  e ~ N(0, (r s)^2 C / tr C)

where ``a_i`` is a random anchor, ``a_j`` its ``K`` nearest anchors (a SMOTE-like move towards similar
real products, so the variation follows the local shape of the real data) and ``e`` a smaller Gaussian
with the covariance ``C`` of the real anchors (variation in every direction real products vary in).
The scale ``s`` is calibrated so that the median nearest-neighbour cosine similarity of a synthetic
set of the anchors' size equals that of the real anchors (a smoothed bootstrap); every line reports
both medians (``synthetic_check``). Queries are fresh vectors drawn the same way (not in the index).

``--validate`` first compares IVF recall on the real anchors (with 1,000 held-out real products as
queries) with recall on synthetic sets of the same size, generated from all the anchors and from a
tenth of them. Measured on 63,985 real products (three real catalogs): the synthetic set is a little
easier than the real one (recall@10 at nprobe 16: 0.94 real, 0.96 synthetic), and it gets easier as
the catalog outgrows its anchors (blobs around few anchors are easy to partition): with 5,000 anchors a
1M catalog reached recall 0.98 at nprobe 4, against 0.94 with 64k anchors. So for decisions at 1M use
tens of thousands of anchors (``--anchors 63985`` with the three files of ``../shared/datasets``; the
embedding takes 25 minutes once on 2 busy cores, then comes from the cache) and keep a margin on nprobe.

Latency is per single query, as the assistant searches; ``--search-threads 1`` times searches with one
FAISS thread (with two OpenMP threads a single query on a busy 2-core machine waits for the second
thread: exact search at 100k took 29 ms p50 instead of 6). CPU time (all threads of the process, so
idle OpenMP threads still spinning after a build count too) is reported next to wall-clock time
because other work on the machine inflates the latter.
"""

from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import html
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bot.search import dense
from bot.search.dense import DenseIndex

DEFAULT_SIZES = (20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
DEFAULT_NPROBES = (8, 16, 24, 32, 48, 64)
CACHE_DIR = Path("results/ann-benchmark")
DIMENSION = 384
NEIGHBOURS = 10  # K: anchors a synthetic product may move towards
ISOTROPIC_SHARE = 0.5  # r: scale of the covariance-shaped noise relative to s
FILTER_SHARES = (0.01, 0.20)
UPDATE_COUNT = 1_000
CALIBRATION_SAMPLE = 6_000  # points whose nearest-neighbour similarity is measured when calibrating
K = 10

# ---------------------------------------------------------------------------------------------------
# Real product texts and their embeddings


_COLUMNS = {  # product field <- accepted column names (first non-empty wins, descriptions are joined)
    "title": ("title", "name", "productname", "product_name"),
    "description": ("description", "short_description", "long_description"),
    "brand": ("brand", "productbrand", "manufacturer"),
    "category": ("category", "product_type", "type"),
    "color": ("color", "colour", "primarycolor"),
    "gender": ("gender",),
    "material": ("material",),
}
_TAG = re.compile(r"<[^>]+>")


def _clean(value: Any) -> str:
    return " ".join(_TAG.sub(" ", html.unescape(str(value or ""))).split())


def _fields(record: dict[str, Any]) -> dict[str, str]:
    lowered = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
    out: dict[str, str] = {}
    for field, names in _COLUMNS.items():
        values = [_clean(lowered.get(name)) for name in names]
        values = [v for v in values if v]
        if field == "description":
            out[field] = " ".join(values)
        elif values:
            out[field] = values[0]
    return out


def _file_products(path: Path) -> Iterator[dict[str, str]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield _fields(json.loads(line))
    else:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for record in csv.DictReader(handle):
                yield _fields(record)


def _demo_products(count: int) -> Iterator[dict[str, str]]:
    from bot.demo import catalog as demo

    for p in demo.generate(count):
        yield {k: p[k] for k in ("title", "description", "brand", "category", "color", "material", "gender")}


def product_texts(sources: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """``count`` embedding texts (``Product.search_text``), an even share from each source.

    A source is ``demo`` (the demo catalog generator) or a ``.jsonl``/``.csv`` product file; rows are
    sampled at random (duplicates and rows without a title are dropped). A file with fewer distinct
    products than its share gives all of them and the other sources make up the difference.
    """
    from bot.catalog.tables import Product

    def texts_of(rows: Iterator[dict[str, str]]) -> list[str]:
        unique: dict[str, None] = {}
        for row in rows:
            if row.get("title"):
                unique.setdefault(Product(**{k: row.get(k, "") for k in _COLUMNS}).search_text(), None)
        return list(unique)

    files = {source: texts_of(_file_products(Path(source))) for source in sources if source != "demo"}
    shares = [count // len(sources) + (1 if n < count % len(sources) else 0) for n in range(len(sources))]
    capacity = [len(files[s]) if s in files else math.inf for s in sources]
    if any(share > cap for share, cap in zip(shares, capacity, strict=True)):  # fill the small files first
        remaining, left = count, len(sources)
        for n in sorted(range(len(sources)), key=lambda n: capacity[n]):
            shares[n] = int(min(capacity[n], -(-remaining // left)))
            remaining, left = remaining - shares[n], left - 1
        if remaining > 0:
            raise ValueError(f"{count} texts wanted, the sources have {count - remaining} distinct products")
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for source, share in zip(sources, shares, strict=True):
        pool = files[source] if source in files else texts_of(_demo_products(max(share * 4, 200)))
        if len(pool) < share:
            raise ValueError(f"{source}: {len(pool)} distinct products, {share} needed")
        texts += [pool[i] for i in sorted(rng.choice(len(pool), size=share, replace=False))]
    return texts


def embed_texts(texts: list[str], cache_dir: Path = CACHE_DIR) -> np.ndarray:
    """Embeddings of ``texts`` with the real model, cached by the texts' hash."""
    from bot.search.embeddings import MODEL_NAME, get_embedder

    digest = hashlib.sha256("\n".join([MODEL_NAME, *texts]).encode()).hexdigest()[:16]
    path = cache_dir / f"anchors-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = get_embedder().encode(texts, progress=sys.stderr.isatty())
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def random_anchors(count: int, dimension: int = DIMENSION, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Clustered random unit vectors, a stand-in for real anchors in tests (no model needed)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(clusters, size=count)] + 0.06 * rng.standard_normal((count, dimension))
    return normalise(vectors)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


# ---------------------------------------------------------------------------------------------------
# Synthetic catalogs around the anchors


def nn_similarity(vectors: np.ndarray, queries: np.ndarray | None = None, sample: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """Cosine similarity of each query to its nearest neighbour in ``vectors``; without ``queries``,
    of each vector (or of ``sample`` random ones) to its nearest *other* vector (leave-one-out)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    if queries is not None:
        scores, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
        return scores[:, 0]
    rows = np.arange(len(vectors))
    if sample is not None and sample < len(vectors):
        rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=sample, replace=False))
    scores, ids = index.search(np.ascontiguousarray(vectors[rows], dtype=np.float32), 2)
    own = ids[:, 0] == rows  # the vector itself, unless an exact duplicate came first
    return np.where(own, scores[:, 1], scores[:, 0])


@dataclass
class SyntheticCatalog:
    anchors: np.ndarray  # (M, d) real unit vectors
    neighbours: np.ndarray  # (M, K) indices of each anchor's nearest other anchors
    noise_basis: np.ndarray  # (d, d): standard normal @ noise_basis ~ N(0, C / tr C)
    scale: float = 0.5  # s
    isotropic_share: float = ISOTROPIC_SHARE  # r

    @classmethod
    def fit(cls, anchors: np.ndarray, neighbours: int = NEIGHBOURS, isotropic_share: float = ISOTROPIC_SHARE,
            calibrate: bool = True, seed: int = 0) -> SyntheticCatalog:
        anchors = normalise(anchors)
        index = faiss.IndexFlatIP(anchors.shape[1])
        index.add(anchors)
        _, ids = index.search(anchors, neighbours + 1)
        near = np.array([[j for j in row if j != i][:neighbours] for i, row in enumerate(ids)], dtype=np.int64)
        centred = anchors - anchors.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        basis = (singular[:, None] * vt) / math.sqrt(float((singular**2).sum()))  # z @ basis ~ N(0, C / tr C)
        catalog = cls(anchors, near, basis.astype(np.float32), isotropic_share=isotropic_share)
        if calibrate:
            catalog.calibrate(seed=seed)
        return catalog

    def sample(self, count: int, rng: np.random.Generator, chunk: int = 16_384) -> np.ndarray:
        """``count`` unit vectors: a_i + sum_j w_j (a_j - a_i) + e (see the module doc)."""
        out = np.empty((count, self.anchors.shape[1]), dtype=np.float32)
        k = self.neighbours.shape[1]
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            base = rng.integers(len(self.anchors), size=n)
            weights = rng.standard_normal((n, k), dtype=np.float32) * np.float32(self.scale / math.sqrt(k))
            vectors = self.anchors[base] * (1 - weights.sum(axis=1, keepdims=True))
            for j in range(k):
                vectors += weights[:, j:j + 1] * self.anchors[self.neighbours[base, j]]
            noise = rng.standard_normal((n, self.noise_basis.shape[0]), dtype=np.float32) @ self.noise_basis
            vectors += np.float32(self.scale * self.isotropic_share) * noise
            out[start:start + n] = normalise(vectors)
        return out

    def calibrate(self, seed: int = 0, rounds: int = 14, sample: int = CALIBRATION_SAMPLE) -> float:
        """Set ``scale`` so that a synthetic set of the anchors' size has the anchors' median
        nearest-neighbour similarity (bisection; the median falls as the scale grows). The medians
        are taken over ``sample`` random points (all of them for up to that many anchors)."""
        target = float(np.median(nn_similarity(self.anchors, sample=sample, seed=seed)))
        low, high = 0.0, 4.0
        for _ in range(rounds):
            self.scale = (low + high) / 2
            fake = self.sample(len(self.anchors), np.random.default_rng(seed))
            median = float(np.median(nn_similarity(fake, sample=sample, seed=seed)))
            low, high = (self.scale, high) if median > target else (low, self.scale)
        self.scale = (low + high) / 2
        return self.scale

    def check(self, seed: int = 0) -> dict[str, float]:
        """Nearest-neighbour similarity quantiles, real anchors vs a synthetic set of the same size."""
        real = nn_similarity(self.anchors, sample=CALIBRATION_SAMPLE, seed=seed + 1)
        fake = nn_similarity(self.sample(len(self.anchors), np.random.default_rng(seed + 1)), sample=CALIBRATION_SAMPLE,
                             seed=seed + 1)
        out: dict[str, float] = {"anchors": len(self.anchors), "scale": round(self.scale, 4)}
        for name, values in (("real", real), ("synthetic", fake)):
            for q in (10, 50, 90):
                out[f"{name}_nn_p{q}"] = round(float(np.percentile(values, q)), 4)
        return out


# ---------------------------------------------------------------------------------------------------
# Measurements


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def recall_at(found: Sequence[np.ndarray] | np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean share of each query's true top-``k`` ids found in its top-``k`` results."""
    if not len(truth):
        return 0.0
    return float(np.mean([len(np.intersect1d(f[:k], t[:k])) / k for f, t in zip(found, truth, strict=True)]))


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 3)


@contextmanager
def omp_threads(threads: int | None) -> Iterator[None]:
    """FAISS's OpenMP threads inside the block (``None``: unchanged)."""
    before = faiss.omp_get_max_threads()
    if threads:
        faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def timed_searches(index: DenseIndex, queries: np.ndarray, k: int = K, allowed: np.ndarray | None = None,
                   threads: int | None = None, warmup: int = 20) -> tuple[list[np.ndarray], dict[str, float]]:
    """One query at a time, as the assistant searches: results and p50/p95 wall and CPU ms.

    CPU time (all threads of the process) is reported too because other work on the machine
    inflates wall-clock latency but not the CPU a search needs."""
    results, wall, cpu = [], [], []
    with omp_threads(threads):
        for q in queries[:warmup]:
            index.search(q, k, allowed)
        for q in queries:
            w, c = time.perf_counter(), time.process_time()
            results.append(index.search(q, k, allowed)[0])
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
    return results, {"p50_ms": percentile_ms(wall, 50), "p95_ms": percentile_ms(wall, 95),
                     "cpu_p50_ms": percentile_ms(cpu, 50), "cpu_p95_ms": percentile_ms(cpu, 95)}


def serialized_bytes(index: faiss.Index) -> int:
    data = faiss.serialize_index(index)
    size = int(data.size)
    del data
    return size


def build(ids: np.ndarray, vectors: np.ndarray, ann: bool, nprobe: int = dense.NPROBE) -> tuple[DenseIndex, dict]:
    """Build the exact (``ann=False``) or IVF index and measure it."""
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    index = DenseIndex.build(ids, vectors, ann_threshold=0 if ann else len(ids), nprobe=nprobe)
    seconds = time.perf_counter() - start
    gc.collect()
    grown = rss_bytes() - before
    n = len(ids)
    stats = {"build_s": round(seconds, 2), "rss_bytes_per_product": round(grown / n, 1),
             "bytes_per_product": round(serialized_bytes(index.index) / n, 1)}
    return index, stats


def filtered_searches(index: DenseIndex, vectors: np.ndarray, queries: np.ndarray, share: float,
                      rng: np.random.Generator, k: int = K, threads: int | None = None) -> dict[str, Any]:
    """Search with a random allowed mask of ``share`` of the products: every query must return ``k``
    allowed ids; recall@k against exact search over the allowed products, and p95."""
    n = len(vectors)
    allowed_ids = np.sort(rng.choice(n, size=max(k, round(share * n)), replace=False))
    mask = np.zeros(n, dtype=bool)
    mask[allowed_ids] = True
    results, timing = timed_searches(index, queries, k, mask, threads)
    ok = sum(len(r) == k and bool(mask[r].all()) for r in results)
    truth, subset = [], vectors[allowed_ids]
    for start in range(0, len(queries), 50):
        scores = queries[start:start + 50] @ subset.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        truth.append(allowed_ids[top])
    del subset
    return {"share": share, "queries": len(queries), "ok": ok,
            "recall@10": round(recall_at(results, np.vstack(truth), k), 4),
            "p50_ms": timing["p50_ms"], "p95_ms": timing["p95_ms"], "cpu_p95_ms": timing["cpu_p95_ms"]}


def time_update(index: DenseIndex, catalog: SyntheticCatalog, rng: np.random.Generator,
                count: int = UPDATE_COUNT) -> dict[str, Any]:
    """Remove ``count`` products and upsert ``count`` others with changed vectors."""
    n = index.size
    chosen = rng.choice(n, size=2 * count, replace=False).astype(np.int64)
    removed, changed = chosen[:count], chosen[count:]
    new_vectors = catalog.sample(count, rng)
    start = time.perf_counter()
    index.remove(removed)
    remove_s = time.perf_counter() - start
    start = time.perf_counter()
    index.upsert(changed, new_vectors)
    upsert_s = time.perf_counter() - start
    first = [index.search(v, 1)[0] for v in new_vectors[:100]]
    found = np.mean([len(f) > 0 and f[0] == c for f, c in zip(first, changed[:100], strict=True)])
    return {"removed": count, "upserted": count, "remove_s": round(remove_s, 3), "upsert_s": round(upsert_s, 3),
            "total_s": round(remove_s + upsert_s, 3), "size_after": index.size,
            "upserted_found_first": round(float(found), 2)}


def benchmark_size(n: int, catalog: SyntheticCatalog, queries: np.ndarray, rng: np.random.Generator,
                   nprobes: Sequence[int] = DEFAULT_NPROBES, nprobe: int | None = None, target_recall: float = 0.95,
                   exact_queries: int = 300, filter_queries: int = 200, update: bool = False,
                   search_threads: int | None = None, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Everything for one catalog size; the vectors and the exact index are freed before returning.

    Recall and latency are measured for every ``nprobes``; the top-level ``nprobe``/``recall@10``/
    ``p95_ms`` and the filtered searches are for ``nprobe`` (default ``dense.NPROBE``), and
    ``nprobe_for_target`` is the smallest of ``nprobes`` whose recall@10 reaches ``target_recall``."""
    nprobe = nprobe or dense.NPROBE
    nprobes = sorted({*nprobes, nprobe})
    log(f"{n:,}: sampling vectors")
    vectors = catalog.sample(n, rng)
    ids = np.arange(n, dtype=np.int64)
    row: dict[str, Any] = {"products": n, "queries": len(queries),
                           "search_threads": search_threads or faiss.omp_get_max_threads()}

    log(f"{n:,}: exact index")
    exact, exact_stats = build(ids, vectors, ann=False)
    truth_scores, truth = exact.index.search(queries, K)  # batch ground truth
    exact_results, exact_timing = timed_searches(exact, queries[:exact_queries], threads=search_threads)
    row["query_nn_sim_median"] = round(float(np.median(truth_scores[:, 0])), 4)
    row["exact"] = {**exact_stats, **exact_timing, "queries": len(exact_results),
                    "recall@10": round(recall_at(exact_results, truth[:exact_queries]), 4)}
    row["exact"]["filtered"] = [filtered_searches(exact, vectors, queries[:filter_queries], share, rng,
                                                  threads=search_threads)
                                for share in FILTER_SHARES]
    if update:
        log(f"{n:,}: exact update")
        row["exact"]["update"] = time_update(exact, catalog, rng)
    del exact
    gc.collect()

    log(f"{n:,}: IVF index")
    ann, ann_stats = build(ids, vectors, ann=True)
    row.update(kind=ann.kind, nlist=ann.nlist,
               training_points=min(n, ann.nlist * dense.TRAINING_POINTS_PER_CLUSTER), **ann_stats)
    by_nprobe = []
    for probes in nprobes:
        log(f"{n:,}: IVF nprobe={probes}")
        ann.nprobe = probes
        results, timing = timed_searches(ann, queries, threads=search_threads)
        by_nprobe.append({"nprobe": probes, "recall@10": round(recall_at(results, truth), 4), **timing})
    chosen = next(r for r in by_nprobe if r["nprobe"] == nprobe)
    good = [r["nprobe"] for r in by_nprobe if r["recall@10"] >= target_recall]
    ann.nprobe = nprobe
    row.update(nprobe=nprobe, **{"recall@10": chosen["recall@10"]}, nprobe_for_target=good[0] if good else None,
               p50_ms=chosen["p50_ms"], p95_ms=chosen["p95_ms"], cpu_p95_ms=chosen["cpu_p95_ms"],
               exact_p95_ms=row["exact"]["p95_ms"], exact_cpu_p95_ms=row["exact"]["cpu_p95_ms"],
               exact_build_s=row["exact"]["build_s"], exact_bytes_per_product=row["exact"]["bytes_per_product"])
    log(f"{n:,}: filtered IVF search at nprobe={ann.nprobe}")
    row["filtered"] = [filtered_searches(ann, vectors, queries[:filter_queries], share, rng, threads=search_threads)
                       for share in FILTER_SHARES]
    row["filtered_p95_ms"] = {f"{int(f['share'] * 100)}%": f["p95_ms"] for f in row["filtered"]}
    row["filtered_ok"] = all(f["ok"] == f["queries"] for f in row["filtered"] + row["exact"]["filtered"])
    if update:
        log(f"{n:,}: IVF update")
        row["update"] = time_update(ann, catalog, rng)
    row["by_nprobe"] = by_nprobe
    row["loadavg"] = round(os.getloadavg()[0], 2)
    del ann, vectors
    gc.collect()
    return row


def recall_curve(vectors: np.ndarray, queries: np.ndarray, nprobes: Sequence[int]) -> dict[str, Any]:
    """Recall@10 of the IVF index (built as in production) per ``nprobe``, and the queries' median
    similarity to their 1st and 10th nearest neighbour."""
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    scores, truth = exact.search(queries, K)
    del exact
    ann = DenseIndex.build(np.arange(len(vectors), dtype=np.int64), vectors, ann_threshold=0)
    recalls = {}
    for nprobe in nprobes:
        ann.nprobe = nprobe
        _, found = ann.index.search(queries, K)
        recalls[str(nprobe)] = round(recall_at(found, truth), 4)
    return {"query_nn_sim_median": round(float(np.median(scores[:, 0])), 4),
            "query_10th_sim_median": round(float(np.median(scores[:, -1])), 4),
            "nlist": ann.nlist, "recall@10_by_nprobe": recalls}


def validate(real: np.ndarray, real_queries: np.ndarray, catalog: SyntheticCatalog, seed: int = 0,
             nprobes: Sequence[int] = (1, 2, 4, 8, 16, 32), ratio: int = 10) -> dict[str, Any]:
    """IVF recall on real embeddings (with held-out real queries) vs synthetic sets of the same size:
    one generated from all of them, as the benchmark does, and one from a ``ratio``-th of them, a
    catalog ``ratio`` times larger than its anchors, to see how the generator extrapolates."""
    out: dict[str, Any] = {"validate": True, "products": len(real), "queries": len(real_queries),
                           "real": recall_curve(real, real_queries, nprobes)}
    catalogs = [("synthetic", catalog)]
    if ratio > 1 and len(real) // ratio >= 500:
        catalogs.append((f"synthetic_{ratio}x", SyntheticCatalog.fit(real[:len(real) // ratio], seed=seed)))
    for name, synthetic in catalogs:
        rng = np.random.default_rng(seed + 7)
        vectors, queries = synthetic.sample(len(real), rng), synthetic.sample(len(real_queries), rng)
        out[name] = {"anchors": len(synthetic.anchors), "scale": round(synthetic.scale, 4),
                     **recall_curve(vectors, queries, nprobes)}
    return out


# ---------------------------------------------------------------------------------------------------
# Entry points


def load_anchors(count: int, sources: Sequence[str] | None = None, seed: int = 0, holdout: int = 0,
                 use_model: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, held-out real vectors): real embeddings of product texts, or clustered random
    vectors with ``use_model=False``."""
    if not use_model:
        vectors = random_anchors(count + holdout, seed=seed)
    else:
        vectors = embed_texts(product_texts(list(sources or ["demo"]), count + holdout, seed=seed))
        vectors = vectors[np.random.default_rng(seed).permutation(len(vectors))]
    return normalise(vectors[:count]), normalise(vectors[count:])


def run(sizes: list[int], queries: int = 1000, seed: int = 0, nprobes: Sequence[int] = DEFAULT_NPROBES,
        nprobe: int | None = None,
        anchors: int = 5000, texts: Sequence[str] | None = None, use_model: bool = True,
        anchor_vectors: np.ndarray | None = None, target_recall: float = 0.95, exact_queries: int = 300,
        filter_queries: int = 200, update: bool = True, validation: bool = False, search_threads: int | None = None,
        emit: Callable[[dict[str, Any]], None] | None = None,
        log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """Benchmark exact and IVF search for each catalog size; one dict per size (see the module doc).

    ``anchor_vectors`` skips loading anchors; ``update`` times an incremental update at the largest
    size; ``validation`` first compares IVF recall on held-out real vectors with synthetic ones and
    returns that as the first dict. ``search_threads`` sets FAISS's threads while searches are timed
    (otherwise the process default, one per core; builds always use it). ``emit`` is called with each
    dict as soon as it is ready.
    """
    rng = np.random.default_rng(seed)
    holdout = 1000 if validation else 0
    if anchor_vectors is not None:
        base, real_queries = normalise(anchor_vectors), np.zeros((0, anchor_vectors.shape[1]), np.float32)
    else:
        log("anchors: loading/embedding product texts")
        base, real_queries = load_anchors(anchors, texts, seed=seed, holdout=holdout, use_model=use_model)
    log(f"anchors: {len(base)}, calibrating the noise scale")
    catalog = SyntheticCatalog.fit(base, seed=seed)
    check = catalog.check(seed=seed)
    log(f"synthetic check: {json.dumps(check)}")
    rows: list[dict[str, Any]] = []

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        if emit:
            emit(row)

    if validation and len(real_queries):
        log("validating against held-out real vectors")
        done({**validate(base, real_queries, catalog, seed=seed), "synthetic_check": check})
    query_vectors = catalog.sample(queries, np.random.default_rng(seed + 1))
    largest = max(sizes) if sizes else 0
    for n in sizes:
        row = benchmark_size(n, catalog, query_vectors, rng, nprobes=nprobes, nprobe=nprobe,
                             target_recall=target_recall, exact_queries=exact_queries, filter_queries=filter_queries,
                             update=update and n == largest, search_threads=search_threads, log=log)
        row["synthetic_check"] = check
        done(row)
    return rows


def _ints(text: str) -> list[int]:
    return [int(float(part)) for part in text.replace("_", "").split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_ann", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES), help="catalog sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nprobes", type=_ints, default=list(DEFAULT_NPROBES), help="nprobe values to measure")
    parser.add_argument("--nprobe", type=int, default=dense.NPROBE,
                        help="the nprobe reported at the top level and used for filtered search (default: NPROBE)")
    parser.add_argument("--anchors", type=int, default=5000, help="real product texts to embed as anchors")
    parser.add_argument("--texts", default="demo",
                        help="comma-separated anchor sources: 'demo' (demo catalog) and/or .jsonl/.csv product files")
    parser.add_argument("--random-anchors", action="store_true", help="clustered random anchors, no model (fast)")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--exact-queries", type=int, default=300, help="queries timed on the exact index")
    parser.add_argument("--filter-queries", type=int, default=200)
    parser.add_argument("--no-update", action="store_true")
    parser.add_argument("--search-threads", type=int, default=None,
                        help="FAISS threads while timing searches (default: FAISS's, one per core); builds use all")
    parser.add_argument("--validate", action="store_true",
                        help="first compare IVF recall on 1,000 held-out real embeddings with synthetic ones")
    args = parser.parse_args(argv)

    def emit(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    run(args.sizes, queries=args.queries, seed=args.seed, nprobes=args.nprobes, nprobe=args.nprobe,
        anchors=args.anchors, texts=[t.strip() for t in args.texts.split(",") if t.strip()],
        use_model=not args.random_anchors,
        target_recall=args.target_recall, exact_queries=args.exact_queries, filter_queries=args.filter_queries,
        update=not args.no_update, validation=args.validate,
        search_threads=args.search_threads, emit=emit, log=log)


if __name__ == "__main__":
    main()
