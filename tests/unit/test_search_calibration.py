"""The per-catalog fusion calibration: pseudo-queries from the catalog's titles, on the real indexes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.catalog.store import upsert_products
from bot.catalog.tables import Product
from bot.db import make_engine, migrate
from bot.demo import catalog as demo
from bot.search import calibration
from bot.search import index as product_index
from bot.search.dense import DenseIndex
from bot.search.embeddings import get_embedder
from bot.search.lexical import LexicalIndex
from bot.search.service import ProductSearch


def test_pseudo_queries_are_title_words_without_the_brand_and_deterministic() -> None:
    ids = list(range(6))
    titles = ["Acme Trail Running Shoes Blue", "Acme Trail Running Shoes Blue", "Zed Wool Jumper Grey Large",
              "Tiny", "Nimbus 18V Cordless Drill Kit", "Polar Insulated Winter Parka"]
    brands = ["Acme", "Acme", "Zed", "", "Nimbus", "Polar"]
    queries = calibration.pseudo_queries(ids, titles, brands, count=10)
    assert queries == calibration.pseudo_queries(ids, titles, brands, count=10)
    assert len(queries) == 5  # "Tiny" has too few words
    for text, targets in queries:
        words = text.split()
        assert 2 <= len(words) <= 4
        assert not {"acme", "zed", "nimbus", "polar"} & set(words)
        if "trail" in words or "running" in words or "shoes" in words:
            assert targets == {0, 1}  # any product with the same title answers it
    assert len(calibration.pseudo_queries(ids, titles, brands, count=2)) == 2


def test_the_dense_weight_follows_the_dense_share_within_bounds() -> None:
    assert calibration.dense_weight_for(calibration.REFERENCE_SHARE) == pytest.approx(calibration.DEFAULT_DENSE)
    assert calibration.dense_weight_for(0.45) > calibration.dense_weight_for(0.40) > calibration.dense_weight_for(0.35)
    assert calibration.dense_weight_for(0.0) == calibration.MIN_DENSE
    assert calibration.dense_weight_for(1.0) == calibration.MAX_DENSE


class NoiseEncoder:
    """An encoder that knows nothing: random unit vectors."""

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        x = np.random.default_rng(len(texts)).normal(size=(len(texts), 384)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def _catalog(n: int) -> tuple[list[int], list[str], list[str], list[dict[str, str]]]:
    rows = list(demo.generate(n, seed=5))
    fields = [{"title": r["title"], "brand": r.get("brand", ""), "description": r.get("description", "")}
              for r in rows]
    return list(range(1, n + 1)), [r["title"] for r in rows], [r.get("brand", "") for r in rows], fields


def test_an_embedding_that_reads_nothing_gets_the_lowest_weight_and_a_real_one_more() -> None:
    ids, titles, brands, fields = _catalog(800)
    lexical = LexicalIndex.build(ids, fields)
    noise = NoiseEncoder()
    blind = calibration.calibrate(DenseIndex.build(np.asarray(ids), noise.encode(titles)), lexical, noise, ids,
                                  titles, brands, count=300)
    assert blind is not None and blind.dense_mrr < 0.05 < blind.lexical_mrr
    assert blind.dense_weight == calibration.MIN_DENSE
    embedder = get_embedder()
    real = calibration.calibrate(DenseIndex.build(np.asarray(ids), embedder.encode(titles)), lexical, embedder, ids,
                                 titles, brands, count=300)
    assert real is not None and real.dense_mrr > 0.3
    assert calibration.MIN_DENSE < real.dense_weight <= calibration.MAX_DENSE
    small = calibration.calibrate(DenseIndex.build(np.asarray(ids[:100]), noise.encode(titles[:100])),
                                  LexicalIndex.build(ids[:100], fields[:100]), noise, ids[:100], titles[:100],
                                  brands[:100])
    assert small is None  # too small a catalog for a steady estimate: the default weight


def test_the_index_keeps_its_calibration_and_the_search_uses_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    migrate(url)
    factory = sessionmaker(bind=make_engine(url), expire_on_commit=False)
    with factory() as session:
        upsert_products(session, list(demo.generate(700, seed=3)))
        session.commit()
        built = product_index.ensure(session, get_embedder(), tmp_path / "index")
    assert built.calibration is not None
    manifest = json.loads((tmp_path / "index" / product_index.MANIFEST_FILE).read_text())
    assert manifest["calibration"]["dense_weight"] == built.calibration.dense_weight
    search = ProductSearch(factory, tmp_path / "index", get_embedder())
    assert search.index.calibration == built.calibration
    assert search.weights.dense == built.calibration.dense_weight
    # a few changes keep the calibration; a tenth of the catalog changed makes a new one
    with factory() as session:
        products = session.scalars(select(Product).order_by(Product.id).limit(80)).all()
        for p in products[:10]:
            p.title = f"Handmade ceramic teapot {p.id}"
        session.commit()
        synced = product_index.ensure(session, get_embedder(), tmp_path / "index")
        assert synced.calibration == built.calibration and synced.changed_since_calibration == 10
        for p in products[10:80]:
            p.title = f"Handmade ceramic teapot {p.id}"
        session.commit()
        again = product_index.ensure(session, get_embedder(), tmp_path / "index")
    assert again.calibration is not None and again.changed_since_calibration == 0
    reloaded = product_index.load(tmp_path / "index")
    assert reloaded is not None and reloaded.calibration == again.calibration
