"""Candidates to judge for a relevance set: the union of the top products of three unrelated rankers.

    python scripts/relevance_pool.py benchmarks/search/electronics --catalogs ../shared/datasets/catalogs \
        --per-ranker 12 > /tmp/pool.tsv

The rankers are BM25 (title, brand, description), dense MiniLM cosine (title, brand, start of the
description) and character 3-5-gram TF-IDF over titles. Pooling from rankers other than the hybrid
under test keeps the judgements from favouring it; products outside the pool count as irrelevant.
Vectors are cached under ``--cache`` (a product's text hash), so a second pool run does not embed again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.search.embeddings import get_embedder
from bot.search.lexical import LexicalIndex
from bot.search.relevance_sets import load_products, load_queries


def _dense_text(p: dict) -> str:
    lead = " ".join(str(p.get("description", "")).split()[:30])
    facets = [p.get("brand", ""), p.get("color", ""), p.get("gender", "")]
    return ". ".join(x for x in [p["title"], *facets, lead] if x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("set", type=Path)
    parser.add_argument("--catalogs", type=Path)
    parser.add_argument("--per-ranker", type=int, default=12)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/relevance-pool-cache"))
    args = parser.parse_args()
    products = load_products(args.set, args.catalogs)
    queries = load_queries(args.set)
    texts = [_dense_text(p) for p in products]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    args.cache.mkdir(parents=True, exist_ok=True)
    cached = args.cache / f"{key}.npy"
    embedder = get_embedder()
    if cached.exists():
        vectors = np.load(cached)
    else:
        vectors = embedder.encode(texts, batch_size=128, progress=True)
        np.save(cached, vectors)
    ids = list(range(len(products)))
    lexical = LexicalIndex.build(ids, [" ".join([p["title"], p["title"], p.get("brand", ""), p.get("color", ""),
                                                 p.get("gender", ""), p.get("description", "")]) for p in products])
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)
    title_matrix = chars.fit_transform([p["title"] for p in products])
    k = args.per_ranker
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    out.writerow(["query_id", "query", "product_id", "title", "brand", "color", "gender", "description"])
    for qid, query in queries.items():
        pool: dict[int, None] = {}
        lex_ids, lex_scores = lexical.search(query)
        for i in lex_ids[np.argsort(-lex_scores, kind="stable")[:k]]:
            pool[int(i)] = None
        dense_scores = vectors @ embedder.encode([query])[0]
        for i in np.argsort(-dense_scores, kind="stable")[:k]:
            pool[int(i)] = None
        char_scores = (title_matrix @ chars.transform([query]).T).toarray().ravel()
        for i in np.argsort(-char_scores, kind="stable")[:k]:
            if char_scores[i] > 0:
                pool[int(i)] = None
        for i in pool:
            p = products[i]
            description = " ".join(str(p.get("description", "")).split()[:40])
            out.writerow([qid, query, p["sku"], p["title"], p.get("brand", ""), p.get("color", ""),
                          p.get("gender", ""), description])


if __name__ == "__main__":
    main()
