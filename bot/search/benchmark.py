"""Search relevance and latency on a dataset folder (products.jsonl, queries.tsv, qrels.tsv)."""

from __future__ import annotations

import csv
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.catalog import demo, importers
from bot.catalog.models import Product
from bot.catalog.store import upsert_products
from bot.db import make_engine, migrate
from bot.search import index as product_index
from bot.search.embeddings import get_embedder
from bot.search.fusion import FusionWeights
from bot.search.service import ProductSearch

MODES = {"bm25": "lexical", "dense": "dense", "rrf": "rrf"}


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def load_dataset(directory: Path) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, int]]]:
    products = []
    for row in importers.read(directory / "products.jsonl", importers.Format.jsonl,
                              {"id": "sku", "title": "title", "description": "description", "brand": "brand",
                               "category": "category", "price": "price"}):
        if row.error:
            raise ValueError(f"{directory / 'products.jsonl'} line {row.line}: {row.error}")
        if row.product:
            products.append(row.product)
    queries = {r["query_id"]: r["query"] for r in _read_tsv(directory / "queries.tsv")}
    qrels: dict[str, dict[str, int]] = {}
    for r in _read_tsv(directory / "qrels.tsv"):
        qrels.setdefault(r["query_id"], {})[r["product_id"]] = int(r["gain"])
    return products, queries, qrels


def ndcg_at(ranked: list[str], gains: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** gains.get(pid, 0) - 1) / math.log2(i + 2) for i, pid in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], gains: dict[str, int], k: int = 100) -> float | None:
    relevant = {pid for pid, g in gains.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else None


class SearchBench:
    """A dataset loaded into a temporary store, optionally padded with demo products to ``pad_to``."""

    def __init__(self, directory: Path, pad_to: int = 0) -> None:
        products, self.queries, self.qrels = load_dataset(directory)
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
        embedder = get_embedder()
        start = time.perf_counter()
        with factory() as session:
            product_index.ensure(session, embedder, Path(self._tmp.name) / "index", progress=len(products) > 20_000)
        self.index_build_s = time.perf_counter() - start
        self.search = ProductSearch(factory, Path(self._tmp.name) / "index", embedder)
        self.products = len(products)
        for text in list(self.queries.values())[:10]:  # warm up, as a running server is
            self.search.search(self.search.parse(text), limit=10)

    def run(self, mode: str = "hybrid", weights: FusionWeights | None = None) -> dict[str, Any]:
        if weights is not None:
            self.search.weights = weights
        ndcgs, recalls, latencies = [], [], []
        for qid, text in self.queries.items():
            start = time.perf_counter()
            parsed = self.search.parse(text)
            allowed = self.search.facets.mask(parsed.filters)
            ranked = self.search.retrieve(parsed.text or text, 100, allowed, mode=mode)
            latencies.append((time.perf_counter() - start) * 1000)
            skus = [self.sku[pid] for pid, _ in ranked]
            gains = self.qrels.get(qid, {})
            ndcgs.append(ndcg_at(skus, gains))
            if (r := recall_at(skus, gains)) is not None:
                recalls.append(r)
        return {"ndcg@10": round(float(np.mean(ndcgs)), 4), "recall@100": round(float(np.mean(recalls)), 4),
                "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p95_ms": round(float(np.percentile(latencies, 95)), 2)}

    def tune(self) -> tuple[FusionWeights, float]:
        """Grid search of the fusion weights; deterministic, so the tuning is reproducible."""
        best = (FusionWeights(), -1.0)
        for depth in (50, 100, 200):
            for dense in np.round(np.arange(0.0, 1.0001, 0.05), 2):
                weights = replace(FusionWeights(), dense=float(dense), depth=depth)
                score = self.run("hybrid", weights)["ndcg@10"]
                if score > best[1]:
                    best = (weights, score)
        return best


def benchmark(directory: Path, baselines: bool = False, tune: bool = False, pad_to: int = 0) -> dict[str, Any]:
    bench = SearchBench(directory, pad_to)
    result: dict[str, Any] = {"benchmark": "search", "dataset": str(directory)}
    if tune:
        weights, _ = bench.tune()
        result["tuned_weights"] = {"dense": weights.dense, "depth": weights.depth}
        bench.search.weights = weights
    else:
        bench.search.weights = FusionWeights()
    result.update(bench.run("hybrid"))
    result.update({"index_build_s": round(bench.index_build_s, 1), "products": bench.products,
                   "queries": len(bench.queries)})
    if baselines:
        result["baselines"] = {name: bench.run(mode) for name, mode in MODES.items()}
    return result
