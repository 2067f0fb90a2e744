"""`python -m bot bench search` on small sets written here, and on search-dev and our sets when ../shared is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.search_relevance import ndcg_at, recall_at
from bot.search.relevance_sets import RelevanceSetError, load

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"
SEARCH_DEV = SHARED / "search-dev"
KEYS = {"ndcg@10", "recall@100", "p50_ms", "p95_ms"}
OUR_SETS = sorted(d for d in (ROOT / "benchmarks" / "search").iterdir() if d.is_dir())


def test_metrics() -> None:
    gains = {"a": 3, "b": 1, "c": 0}
    assert ndcg_at(["a", "b", "x"], gains) == pytest.approx(1.0)
    assert ndcg_at(["b", "a"], gains) < 1.0
    assert ndcg_at(["x", "y"], gains) == 0.0
    assert recall_at(["a", "x"], gains) == 0.5
    assert recall_at(["a"], {"z": 0}) is None
    # fractional gains (the mean of several raters) count as they are
    assert 0 < ndcg_at(["b", "a"], {"a": 2.67, "b": 1.33}) < ndcg_at(["a", "b"], {"a": 2.67, "b": 1.33}) == 1.0


def _bench(*args: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "bot", "bench", "search", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "hybrid nDCG@10" in out.stderr  # the table
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


PRODUCTS = [
    ("p1", "Waterproof hiking jacket", "A rain shell with taped seams for wet mountain days."),
    ("p2", "Insulated winter parka", "Very warm down filled coat for freezing city winters."),
    ("p3", "Espresso machine", "Pump espresso maker with a milk frother."),
    ("p4", "Drip coffee maker", "Brews ten cups of filter coffee."),
    ("p5", "Trail running shoes", "Grippy lightweight shoes for muddy trails."),
    ("p6", "Leather office shoes", "Polished oxford shoes for the office."),
]


def test_bench_search_reports_the_hybrid_and_the_three_baselines_per_set(tmp_path: Path) -> None:
    jsonl = tmp_path / "jsonl-set"
    jsonl.mkdir()
    with (jsonl / "products.jsonl").open("w") as f:
        for pid, title, description in PRODUCTS:
            f.write(json.dumps({"id": pid, "title": title, "description": description}) + "\n")
    (jsonl / "queries.tsv").write_text("query_id\tquery\nq1\train jacket\nq2\tcoffee machine\n")
    (jsonl / "qrels.tsv").write_text("query_id\tproduct_id\tgain\nq1\tp1\t3\nq1\tp2\t1\nq2\tp3\t2\nq2\tp4\t2\n")
    # a set whose products come from a catalog file elsewhere (set.json), with fractional gains
    catalogs = tmp_path / "catalogs"
    catalogs.mkdir()
    (catalogs / "shop.csv").write_text("code,name,maker,text\n" + "".join(
        f"{pid},{title},Acme,{description}\n" for pid, title, description in PRODUCTS))
    from_catalog = tmp_path / "catalog-set"
    from_catalog.mkdir()
    (from_catalog / "set.json").write_text(json.dumps(
        {"catalog": "shop.csv", "map": ["code=sku", "name=title", "maker=brand", "text=description"]}))
    (from_catalog / "queries.tsv").write_text("query_id\tquery\nq1\tshoes for muddy trails\n")
    (from_catalog / "qrels.tsv").write_text("query_id\tproduct_id\tgain\nq1\tp5\t2.67\nq1\tp6\t1.33\n")
    results = _bench("--dataset", str(jsonl), "--dataset", str(from_catalog), "--catalogs", str(catalogs))
    assert [r["set"] for r in results] == ["jsonl-set", "catalog-set"]
    for result in results:
        assert result["products"] == 6 and result["index_build_s"] >= 0
        assert all(result[mode].keys() >= KEYS for mode in ("hybrid", "bm25", "dense", "rrf"))
        assert result["hybrid"]["ndcg@10"] > 0.9 and result["hybrid"]["recall@100"] == 1.0
        assert result["margin"] == pytest.approx(
            result["hybrid"]["ndcg@10"] - max(result[m]["ndcg@10"] for m in ("bm25", "dense", "rrf")), abs=1e-4)


def test_bench_search_reports_a_missing_file_or_catalog(tmp_path: Path) -> None:
    def fails(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "bot", "bench", "search", *args], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr[-2000:]
        return out.stderr

    assert "products.jsonl" in fails("--dataset", str(tmp_path))
    (tmp_path / "set.json").write_text(json.dumps({"catalog": "nowhere.csv", "map": ["a=sku", "b=title"]}))
    assert "nowhere.csv, which does not exist" in fails("--dataset", str(tmp_path), "--catalogs", str(tmp_path))


def test_a_relevance_set_with_bad_judgements_is_refused_with_the_line(tmp_path: Path) -> None:
    with (tmp_path / "products.jsonl").open("w") as f:
        f.write(json.dumps({"id": "p1", "title": "Jacket"}) + "\n")
    (tmp_path / "queries.tsv").write_text("query_id\tquery\nq1\tjacket\n")
    for rows, message in ((["q1\tp1\tgood"], "line 2: gain 'good' is not a number"),
                          (["q1\tp1\t2", "q9\tp1\t1"], "line 3: query 'q9' is not in queries.tsv"),
                          (["q1\tp1\t-1"], "must be 0 or more")):
        (tmp_path / "qrels.tsv").write_text("query_id\tproduct_id\tgain\n" + "\n".join(rows) + "\n")
        with pytest.raises(RelevanceSetError, match=message):
            load(tmp_path)


@pytest.mark.skipif(not (SHARED / "catalogs").exists(), reason="../shared/datasets/catalogs is not here")
@pytest.mark.parametrize("folder", OUR_SETS, ids=[d.name for d in OUR_SETS])
def test_our_relevance_sets_judge_products_of_their_catalog(folder: Path) -> None:
    loaded = load(folder, SHARED / "catalogs")
    skus = {p["sku"] for p in loaded.products}
    assert len(loaded.queries) >= 40
    for qid in loaded.queries:
        gains = loaded.qrels.get(qid, {})
        assert max(gains.values(), default=0) >= 2, f"{qid} has no relevant product"
        assert set(gains) <= skus, f"{qid} judges products the catalog does not have"


@pytest.mark.skipif(not SEARCH_DEV.exists(), reason="../shared/datasets/search-dev is not here")
def test_search_dev_reaches_the_ndcg_target_and_beats_the_baselines() -> None:
    [result] = _bench("--dataset", str(SEARCH_DEV))
    assert result["products"] == 5617
    assert result["hybrid"]["ndcg@10"] >= 0.80
    assert result["margin"] >= 0.01
