"""Search relevance, build time and latency on relevance sets (``bot.search.relevance_sets``).

Each set is loaded into a temporary store and indexed exactly as the shop's catalog is (the build
time includes embedding every product). Every query then runs the full search path (parsing,
filters, BM25F, FAISS, fusion) in each mode: the hybrid and the three baselines (BM25F alone, dense
alone, reciprocal-rank fusion of the two).
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.catalog.store import upsert_products
from bot.catalog.tables import Product
from bot.db import make_engine, migrate
from bot.demo import catalog as demo
from bot.search import index as product_index
from bot.search import relevance_sets
from bot.search.embeddings import Embedder, get_embedder
from bot.search.fusion import FusionWeights
from bot.search.service import ProductSearch

MODES = {"hybrid": "hybrid", "bm25": "lexical", "dense": "dense", "rrf": "rrf"}
BASELINES = ("bm25", "dense", "rrf")


def ndcg_at(ranked: list[str], gains: dict[str, float], k: int = 10) -> float:
    dcg = sum((2 ** gains.get(pid, 0) - 1) / math.log2(i + 2) for i, pid in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], gains: dict[str, float], k: int = 100) -> float | None:
    relevant = {pid for pid, g in gains.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else None


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


class SearchBench:
    """A relevance set loaded into a temporary store, optionally padded with demo products to ``pad_to``."""

    def __init__(self, loaded: relevance_sets.RelevanceSet, pad_to: int = 0, embedder: Embedder | None = None) -> None:
        self.name, self.queries, self.qrels = loaded.name, loaded.queries, loaded.qrels
        products = list(loaded.products)
        if pad_to > len(products):  # distractors from the demo catalog, to measure latency at scale
            products += [dict(p, sku=f"pad-{p['sku']}") for p in demo.generate(pad_to - len(products), seed=99)]
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-search-")
        url = f"sqlite:///{self._tmp.name}/bench.sqlite3"
        migrate(url)
        factory = sessionmaker(bind=make_engine(url), expire_on_commit=False)
        with factory() as session:
            upsert_products(session, products)
            session.commit()
            self.sku = dict(session.execute(select(Product.id, Product.sku)).tuples().all())
        embedder = embedder or get_embedder()
        start = time.perf_counter()
        with factory() as session:
            product_index.ensure(session, embedder, Path(self._tmp.name) / "index", progress=len(products) > 20_000)
        self.index_build_s = time.perf_counter() - start
        self.search = ProductSearch(factory, Path(self._tmp.name) / "index", embedder)
        self.products = len(products)
        for text in list(self.queries.values())[:10]:  # warm up, as a running server is
            self.search.search(self.search.parse(text), limit=10)

    def run(self, mode: str = "hybrid") -> dict[str, Any]:
        ndcgs, recalls, latencies = [], [], []
        for qid, text in self.queries.items():
            start = time.perf_counter()
            parsed = self.search.parse(text)
            allowed = self.search.facets.mask(parsed.filters)
            lexical = " ".join([parsed.text, *parsed.expansions]) if parsed.expansions else None
            ranked = self.search.retrieve(parsed.text or text, 100, allowed, mode=MODES[mode], lexical_text=lexical)
            latencies.append((time.perf_counter() - start) * 1000)
            skus = [self.sku[pid] for pid, _ in ranked]
            gains = self.qrels.get(qid, {})
            ndcgs.append(ndcg_at(skus, gains))
            if (r := recall_at(skus, gains)) is not None:
                recalls.append(r)
        return {"ndcg@10": round(float(np.mean(ndcgs)), 4),
                "recall@100": round(float(np.mean(recalls)), 4) if recalls else None,
                "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}

    def close(self) -> None:
        self._tmp.cleanup()


@dataclass
class SetResult:
    name: str
    products: int
    queries: int
    index_build_s: float
    modes: dict[str, dict[str, Any]]
    calibration: dict[str, Any] | None
    dense_weight: float
    sweep: dict[str, float] | None = None

    @property
    def margin(self) -> float:
        """nDCG@10 of the hybrid minus that of the best baseline."""
        return round(self.modes["hybrid"]["ndcg@10"] - max(self.modes[b]["ndcg@10"] for b in BASELINES), 4)

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": "search", "set": self.name, "products": self.products, "queries": self.queries,
                "index_build_s": round(self.index_build_s, 1), **self.modes, "margin": self.margin,
                "dense_weight": self.dense_weight, "calibration": self.calibration,
                **({"sweep": self.sweep} if self.sweep else {})}


def tune(benches: list[SearchBench]) -> FusionWeights:
    """The fixed fusion weights whose worst margin over the best baseline, across every set, is largest
    (to compare with the calibrated weights; the search itself calibrates per catalog)."""
    best_baseline = {b.name: max(b.run(mode)["ndcg@10"] for mode in BASELINES) for b in benches}
    best: tuple[float, float, FusionWeights] = (-math.inf, -math.inf, FusionWeights())
    for dense, numeric, depth in itertools.product((0.45, 0.5, 0.55, 0.6, 0.65), (0.1, 0.2, 0.3, 0.5), (200, 300)):
        weights = FusionWeights(dense=dense, numeric_dense=numeric, depth=depth)
        scores = []
        for bench in benches:
            bench.search.fixed_weights = weights
            scores.append(bench.run("hybrid")["ndcg@10"] - best_baseline[bench.name])
        if (min(scores), float(np.mean(scores))) > best[:2]:
            best = (min(scores), float(np.mean(scores)), weights)
    return best[2]


SWEEP = tuple(round(0.3 + 0.05 * i, 2) for i in range(10))  # fixed dense weights 0.3 ... 0.75


def sweep(bench: SearchBench) -> dict[str, float]:
    """The hybrid's nDCG@10 under each fixed base dense weight (how ``calibration.py``'s line was fit)."""
    out = {}
    for dense in SWEEP:
        bench.search.fixed_weights = FusionWeights(dense=dense)
        out[f"{dense:.2f}"] = bench.run("hybrid")["ndcg@10"]
    bench.search.fixed_weights = None
    return out


def benchmark(directories: list[Path], catalogs: Path | None = None, pad_to: int = 0,
              tune_weights: bool = False, sweep_weights: bool = False) -> tuple[list[SetResult], FusionWeights | None]:
    """Each set's results; with ``tune_weights`` under the fixed weights chosen on all the sets (returned),
    else under each catalog's own calibration."""
    benches = [SearchBench(relevance_sets.load(d, catalogs), pad_to) for d in directories]
    weights = tune(benches) if tune_weights else None
    results = []
    for bench in benches:
        bench.search.fixed_weights = weights
        calibration = bench.search.index.calibration
        results.append(SetResult(bench.name, bench.products, len(bench.queries), bench.index_build_s,
                                 {mode: bench.run(mode) for mode in MODES},
                                 calibration.as_dict() | {"dense_share": round(calibration.dense_share, 4)}
                                 if calibration else None, bench.search.weights.dense,
                                 sweep(bench) if sweep_weights else None))
        bench.close()
    return results, weights
