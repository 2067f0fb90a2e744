"""The ANN scale benchmark on a small catalog (random anchors, no model): seconds, not minutes."""

from __future__ import annotations

import numpy as np

from benchmarks import search_ann as bench
from bot.search.dense import DenseIndex


def test_recall_is_one_for_the_exact_index_against_itself_and_counts_misses() -> None:
    catalog = bench.SyntheticCatalog.fit(bench.random_anchors(300, seed=1), calibrate=False)
    rng = np.random.default_rng(0)
    vectors, queries = catalog.sample(2000, rng), catalog.sample(50, rng)
    exact = DenseIndex.build(np.arange(2000), vectors, ann_threshold=2000)
    _, truth = exact.index.search(queries, 10)
    found = [exact.search(q, 10)[0] for q in queries]
    assert bench.recall_at(found, truth) == 1.0
    half = [np.concatenate([f[:5], np.arange(10_000, 10_005)]) for f in found]  # 5 of 10 right
    assert bench.recall_at(half, truth) == 0.5
    assert bench.recall_at([f[::-1] for f in found], truth) == 1.0  # order does not matter


def test_synthetic_vectors_are_unit_length_and_calibrated_to_the_anchors() -> None:
    catalog = bench.SyntheticCatalog.fit(bench.random_anchors(500, seed=2))
    vectors = catalog.sample(1000, np.random.default_rng(0))
    assert vectors.shape == (1000, bench.DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    check = catalog.check()
    assert abs(check["synthetic_nn_p50"] - check["real_nn_p50"]) < 0.03


def test_filtered_ivf_search_returns_k_ids_inside_the_mask() -> None:
    catalog = bench.SyntheticCatalog.fit(bench.random_anchors(300, seed=3), calibrate=False)
    rng = np.random.default_rng(0)
    vectors = catalog.sample(3000, rng)
    index = DenseIndex.build(np.arange(3000), vectors, ann_threshold=1000, nprobe=4)
    assert index.kind == "ivf"
    for share in (0.01, 0.2):
        result = bench.filtered_searches(index, vectors, catalog.sample(30, rng), share, rng)
        assert result["ok"] == result["queries"] == 30
        assert 0.0 < result["recall@10"] <= 1.0


KEYS = ("products", "kind", "nlist", "nprobe", "nprobe_for_target", "recall@10", "p50_ms", "p95_ms", "exact_p95_ms",
        "build_s", "exact_build_s", "bytes_per_product", "rss_bytes_per_product", "filtered_p95_ms", "by_nprobe",
        "synthetic_check", "query_nn_sim_median")


def test_run_reports_every_size_with_the_expected_keys() -> None:
    emitted: list[dict] = []
    rows = bench.run([2000, 3000], queries=60, nprobes=(2, 8), nprobe=8, exact_queries=30, filter_queries=20,
                     anchor_vectors=bench.random_anchors(400, seed=4), emit=emitted.append, search_threads=1)
    assert rows == emitted and [r["products"] for r in rows] == [2000, 3000]
    for row in rows:
        assert set(KEYS) <= set(row)
        assert row["kind"] == "ivf"
        assert row["exact"]["recall@10"] == 1.0  # ground truth comes from the exact index
        assert [r["nprobe"] for r in row["by_nprobe"]] == [2, 8] and row["nprobe"] == 8
        assert row["recall@10"] == row["by_nprobe"][1]["recall@10"]
        assert all(0.0 < r["recall@10"] <= 1.0 for r in row["by_nprobe"])
        assert row["by_nprobe"][1]["recall@10"] >= row["by_nprobe"][0]["recall@10"]
        assert row["filtered_ok"] and set(row["filtered_p95_ms"]) == {"1%", "20%"}
        assert 1536 <= row["bytes_per_product"] < 2500  # 384 float32 + id, plus IVF overhead
    assert "update" not in rows[0] and rows[1]["update"]["size_after"] == 3000 - bench.UPDATE_COUNT
    assert rows[1]["update"]["upserted_found_first"] == 1.0
