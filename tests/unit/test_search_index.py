"""The search index parts on real data: BM25, fusion, FAISS (exact and IVF), facets and in-place updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from bot.catalog.store import upsert_products
from bot.catalog.tables import Product
from bot.demo import catalog as demo
from bot.search import index as product_index
from bot.search.dense import DenseIndex
from bot.search.embeddings import Embedder, get_embedder
from bot.search.facets import Facets
from bot.search.fusion import FusionWeights, fuse, normalise, reciprocal_rank
from bot.search.lexical import LexicalIndex, tokenize
from bot.search.query import Filters


class CountingEmbedder:
    """The real embedder, counting how many texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts = 0

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)


def test_bm25_prefers_rare_terms_and_short_documents() -> None:
    lexical = LexicalIndex.build([1, 2, 3, 4], [
        "red wool scarf", "red cotton shirt with a long description about red things and more words here",
        "blue wool hat", "green cotton shirt"])
    ids, scores = lexical.search("red scarf")
    ranked = [int(i) for i in ids[np.argsort(-scores)]]
    assert ranked[0] == 1 and set(ranked) == {1, 2}
    assert tokenize("The Running Shoes") == ["run", "shoe"]


def test_bm25_updates_equal_a_fresh_build() -> None:
    texts = {1: "red wool scarf", 2: "red cotton shirt", 3: "blue wool hat", 4: "green cotton shirt"}
    updated = LexicalIndex.build(list(texts), list(texts.values()))
    updated.remove([3])
    updated.upsert([2, 5], ["red linen shirt", "wool socks"])
    final = {1: "red wool scarf", 2: "red linen shirt", 4: "green cotton shirt", 5: "wool socks"}
    fresh = LexicalIndex.build(list(final), list(final.values()))
    for query in ("red shirt", "wool", "linen", "hat"):
        a, b = updated.search(query), fresh.search(query)
        assert dict(zip(a[0].tolist(), a[1].tolist(), strict=True)) == pytest.approx(
            dict(zip(b[0].tolist(), b[1].tolist(), strict=True)))
    allowed = np.zeros(10, bool)
    allowed[[1]] = True
    assert updated.search("red", allowed)[0].tolist() == [1]


def test_fusion_normalises_each_signal_and_weights_them() -> None:
    assert normalise(np.array([1.0, 3.0, 2.0]), depth=3).tolist() == [0.0, 1.0, 0.5]
    dense, lexical = np.array([0.9, 0.5, 0.1]), np.array([0.0, 10.0, 5.0])
    assert np.argmax(fuse(dense, lexical, 1.0, depth=3)) == 0
    assert np.argmax(fuse(dense, lexical, 0.0, depth=3)) == 1
    assert np.argmax(fuse(dense, lexical, 0.5, depth=3)) == 1  # 0.5*0.5+0.5*1 > 0.5*1
    rrf = reciprocal_rank(dense, lexical)
    assert rrf[1] > rrf[2] and rrf[0] > rrf[2]


def test_sizes_units_and_model_numbers_lean_the_fusion_on_words() -> None:
    weights = FusionWeights(dense=0.5, numeric_dense=0.2)
    lexical = LexicalIndex.build([1, 2, 3], [
        {"title": "Samsung 55\" Class 4K TV", "brand": "Samsung"},
        {"title": "Cordless drill 18V", "description": "two batteries"},
        {"title": "Wool jumper", "attributes": "grey"}])
    assert weights.for_query(lexical.query_terms("wool jumper")) == pytest.approx(0.5)
    assert weights.for_query(lexical.query_terms("55 inch")) == pytest.approx(0.2)
    assert 0.2 < weights.for_query(lexical.query_terms("18 volt drill")) < 0.5
    # words no product has do not move it (measured: that lost on the fashion set)
    assert weights.for_query(lexical.query_terms("cosy woolly jumper")) == pytest.approx(0.5)
    assert weights.for_query(lexical.query_terms("unheard-of words")) == pytest.approx(0.5)
    assert weights.for_query([]) == pytest.approx(0.5)


def test_sizes_units_and_model_numbers_are_one_token_however_they_are_written() -> None:
    assert tokenize("3/4 in. PVC pipe") == tokenize("3/4 inch pvc pipe") == tokenize('3/4" PVC pipe')
    assert tokenize("10 ft HDMI cable")[0] == tokenize("10-foot hdmi cable")[0] == tokenize("10' HDMI cable")[0]
    assert tokenize("18V drill") == tokenize("18 volt drill") == ["18v", "drill"]
    assert tokenize("2 x 4 lumber") == tokenize("2x4 lumber") == ["2x4", "lumber"]
    assert tokenize("Samsung 55\u2033 Class") == tokenize("samsung 55 inch class")
    assert "wh1000xm4" in tokenize("Sony WH-1000XM4") and "tshirt" in tokenize("T-Shirt")
    assert tokenize("men's shoes") == ["men", "shoe"]


def test_bm25f_weighs_the_field_a_word_is_in() -> None:
    lexical = LexicalIndex.build([1, 2], [
        {"title": "Leather boots", "description": "classic boots, " + "polished and comfortable " * 6},
        {"title": "Boot polish", "description": "for your leather boots and shoes"}])
    ids, scores = lexical.search("leather boots")
    assert ids[np.argmax(scores)] == 1
    # the brand field counts more than the same word in a description
    branded = LexicalIndex.build([1, 2], [{"title": "Running shoe", "brand": "Asics"},
                                          {"title": "Running shoe", "description": "not by asics"}])
    ids, scores = branded.search("asics running shoe")
    assert ids[np.argmax(scores)] == 1
    # "3/4 inch" finds "3/4 in." and nothing else
    pipes = LexicalIndex.build([1, 2], [{"title": "PVC pipe 3/4 in. x 10 ft"}, {"title": "PVC pipe 1/2 in. x 10 ft"}])
    ids, scores = pipes.search("3/4 inch pvc pipe")
    assert ids[np.argmax(scores)] == 1 and scores.max() > scores.min()


def test_bm25f_index_saves_and_loads(tmp_path: Path) -> None:
    lexical = LexicalIndex.build([4, 7], [{"title": "red scarf", "brand": "Acme"}, "blue hat"])
    lexical.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25")
    assert loaded is not None
    for query in ("acme scarf", "hat", "red"):
        a, b = lexical.search(query), loaded.search(query)
        assert a[0].tolist() == b[0].tolist() and a[1] == pytest.approx(b[1])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "ids.npy").write_bytes((tmp_path / "bm25" / "ids.npy").read_bytes())
    (tmp_path / "old" / "vocabulary.json").write_text('{"red": 0}')  # an index from before fields
    assert LexicalIndex.load(tmp_path / "old") is None


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    anchors = np.random.default_rng(seed).normal(size=(20, 384))
    rng = np.random.default_rng(seed + 1)
    x = anchors[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, 384))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_filtered_search_returns_k_allowed_products_when_k_match(kind: str) -> None:
    vectors, ids = _vectors(4000), np.arange(1, 4001)
    dense = DenseIndex.build(ids, vectors, ann_threshold=10**9 if kind == "flat" else 100, nprobe=2)
    assert dense.kind == kind
    query = vectors[0]
    for allowed_count in (12, 400):
        allowed = np.zeros(4001, bool)
        allowed[np.random.default_rng(allowed_count).choice(ids, allowed_count, replace=False)] = True
        found, _ = dense.search(query, 10, allowed)
        assert len(found) == 10 and allowed[found].all()
        exact = np.flatnonzero(allowed)
        best = exact[np.argsort(-(vectors[exact - 1] @ query))][:10]
        if kind == "flat" or allowed_count == 12:  # exact (the IVF fallback scores the allowed set exactly)
            assert found.tolist() == best.tolist()
    few = np.zeros(4001, bool)
    few[[5, 6, 7]] = True
    assert sorted(dense.search(query, 10, few)[0].tolist()) == [5, 6, 7]


def test_ivf_index_removes_and_replaces_vectors_in_place(tmp_path: Path) -> None:
    vectors, ids = _vectors(3000, seed=3), np.arange(3000)
    dense = DenseIndex.build(ids, vectors, ann_threshold=100)
    dense.remove(np.array([10]))
    assert 10 not in dense.search(vectors[10], 5)[0].tolist()
    dense.upsert(np.array([11]), vectors[[10]])  # product 11 now looks like 10 did
    assert dense.search(vectors[10], 1)[0].tolist() == [11]
    dense.save(tmp_path / "ivf.faiss")
    loaded = DenseIndex.load(tmp_path / "ivf.faiss")
    assert loaded.kind == "ivf" and loaded.size == 2999
    assert loaded.search(vectors[10], 1)[0].tolist() == [11]
    assert sorted(loaded.all_ids().tolist()) == sorted(set(range(3000)) - {10})


def test_facets_mask_matches_sql_for_every_filter(db_session) -> None:
    facets = Facets.load(db_session)
    product = db_session.scalars(select(Product).where(Product.gender == "women", Product.sizes != "[]")).first()
    assert product is not None
    size, department = product.sizes[0], product.category.split(" > ")[0]
    filters = Filters(min_price=10, max_price=200, brands=(product.brand.upper(),), categories=(department,),
                      colors=(product.color,), sizes=(size,), genders=("Women",), min_rating=3.0, in_stock=True)
    mask = facets.mask(filters)
    assert mask is not None
    expected = {
        p.id for p in db_session.scalars(select(Product))
        if p.price is not None and 10 <= p.price <= 200 and p.brand == product.brand
        and p.category.startswith(department) and p.color == product.color and size in p.sizes
        and p.gender in ("women", "unisex") and p.rating >= 3.0 and p.stock > 0
    }
    assert set(np.flatnonzero(mask).tolist()) == expected
    assert facets.mask(Filters()) is None
    assert not facets.mask(Filters(brands=("No Such Brand",))).any()
    excluded = facets.mask(Filters(exclude_ids=(product.id,)))
    assert excluded is not None and not excluded[product.id] and excluded.sum() == facets.exists.sum() - 1


def test_every_filter_kind_applies_inside_retrieval(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    for text in ("jacket for hiking by Columbia", "red dress size M", "women's running shoes under 90",
                 "headphones rated 4 stars and up in stock"):
        query = search.parse(text)
        assert not query.filters.is_empty(), text
        matching = search.count(query.filters)
        hits = search.search(query, limit=5)
        assert len(hits) == min(5, matching), text
        allowed = search.facets.mask(query.filters)
        assert allowed is not None and all(allowed[h.product.id] for h in hits), text


def test_index_follows_catalog_changes_without_rebuilding(tmp_path: Path) -> None:
    from sqlalchemy.orm import sessionmaker

    from bot.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    migrate(url)
    factory = sessionmaker(bind=make_engine(url), expire_on_commit=False)
    rows = list(demo.generate(120, seed=11))
    embedder = CountingEmbedder(get_embedder())
    with factory() as session:
        upsert_products(session, rows[:100])
        session.commit()
        built = product_index.ensure(session, embedder, tmp_path / "index")  # type: ignore[arg-type]
    assert embedder.texts == 100
    with factory() as session:
        upsert_products(session, rows[100:])  # 20 new products
        changed = session.scalars(select(Product).order_by(Product.id).limit(3)).all()
        for p in changed:
            p.title = f"Ultralight titanium camping stove {p.id}"
        gone = session.scalars(select(Product.id).order_by(Product.id.desc()).limit(1)).one()
        session.execute(delete(Product).where(Product.id == gone))
        session.commit()
        embedder.texts = 0
        synced = product_index.ensure(session, embedder, tmp_path / "index")  # type: ignore[arg-type]
        texts = product_index.catalog_texts(session)
    assert embedder.texts == 19 + 3  # only the new and the changed products were embedded
    assert synced.size == 119 and gone not in synced.hashes
    fresh = product_index.ProductIndex.build(texts, get_embedder())
    assert synced.fingerprint == fresh.fingerprint == built.__class__.build(texts, get_embedder()).fingerprint
    vector = get_embedder().encode(["titanium camping stove"])[0]
    top_synced = synced.dense.search(vector, 3)[0].tolist()
    assert sorted(top_synced) == sorted(p.id for p in changed)
    assert top_synced == fresh.dense.search(vector, 3)[0].tolist()
    reloaded = product_index.load(tmp_path / "index")
    assert reloaded is not None and reloaded.fingerprint == synced.fingerprint


def test_search_service_sees_catalog_changes(catalog: int) -> None:
    from actions import services
    from bot.db import session_scope

    search = services.product_search()
    with session_scope() as session:
        product = session.scalars(select(Product).where(Product.stock > 0).order_by(Product.id)).first()
        assert product is not None
        pid, old_title, old_stock = product.id, product.title, product.stock
        product.title = "Quantum levitating espresso grinder"
        product.stock = 0
    try:
        assert search.refresh(force=True)
        hits = search.search(search.parse("levitating espresso grinder"), limit=1)
        assert hits and hits[0].product.id == pid
        assert not search.facets.mask(Filters(in_stock=True))[pid]
    finally:
        with session_scope() as session:
            restored = session.get(Product, pid)
            restored.title, restored.stock = old_title, old_stock
        search.refresh(force=True)
