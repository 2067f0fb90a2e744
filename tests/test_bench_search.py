"""`python -m bot bench search` on a small dataset written here, and on search-dev when ../shared is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.search.benchmark import ndcg_at, recall_at

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DEV = ROOT.parent / "shared" / "datasets" / "search-dev"
KEYS = {"ndcg@10", "recall@100", "p50_ms", "p95_ms", "index_build_s", "products"}


def test_metrics() -> None:
    gains = {"a": 3, "b": 1, "c": 0}
    assert ndcg_at(["a", "b", "x"], gains) == pytest.approx(1.0)
    assert ndcg_at(["b", "a"], gains) < 1.0
    assert ndcg_at(["x", "y"], gains) == 0.0
    assert recall_at(["a", "x"], gains) == 0.5
    assert recall_at(["a"], {"z": 0}) is None


def _bench(dataset: Path, *extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "bot", "bench", "search", "--dataset", str(dataset), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, out.stdout
    return json.loads(lines[0])


def test_bench_search_prints_one_json_line_with_baselines(tmp_path: Path) -> None:
    products = [
        ("p1", "Waterproof hiking jacket", "A rain shell with taped seams for wet mountain days."),
        ("p2", "Insulated winter parka", "Very warm down filled coat for freezing city winters."),
        ("p3", "Espresso machine", "Pump espresso maker with a milk frother."),
        ("p4", "Drip coffee maker", "Brews ten cups of filter coffee."),
        ("p5", "Trail running shoes", "Grippy lightweight shoes for muddy trails."),
        ("p6", "Leather office shoes", "Polished oxford shoes for the office."),
    ]
    with (tmp_path / "products.jsonl").open("w") as f:
        for pid, title, description in products:
            f.write(json.dumps({"id": pid, "title": title, "description": description}) + "\n")
    (tmp_path / "queries.tsv").write_text("query_id\tquery\nq1\train jacket\nq2\tcoffee machine\n")
    (tmp_path / "qrels.tsv").write_text("query_id\tproduct_id\tgain\nq1\tp1\t3\nq1\tp2\t1\nq2\tp3\t2\nq2\tp4\t2\n")
    result = _bench(tmp_path, "--baselines")
    assert result.keys() >= KEYS and result["products"] == 6
    assert result["ndcg@10"] > 0.9 and result["recall@100"] == 1.0
    assert set(result["baselines"]) == {"bm25", "dense", "rrf"}
    assert all(KEYS - {"index_build_s", "products"} <= b.keys() for b in result["baselines"].values())


def test_bench_search_reports_a_missing_file(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "bot", "bench", "search", "--dataset", str(tmp_path)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "products.jsonl is missing" in out.stderr


@pytest.mark.skipif(not SEARCH_DEV.exists(), reason="../shared/datasets/search-dev is not here")
def test_search_dev_reaches_the_ndcg_target_and_beats_the_baselines() -> None:
    result = _bench(SEARCH_DEV, "--baselines")
    assert result["products"] == 5617
    assert result["ndcg@10"] >= 0.80
    assert all(result["ndcg@10"] > b["ndcg@10"] for b in result["baselines"].values())
