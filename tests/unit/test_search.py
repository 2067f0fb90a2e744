import numpy as np
import pytest
from sqlalchemy import select

from bot.catalog.tables import Product
from bot.search import index as product_index
from bot.search import references
from bot.search.embeddings import get_embedder
from bot.search.query import Filters, ParsedQuery, QueryParser, merge_entities

VOCABULARY = {
    "brand": ["Nike", "The North Face", "Levi's", "Red Tape", "Black"],
    "color": ["red", "black", "navy blue"],
    "category": ["Clothing", "Jackets", "Running Shoes", "Dresses", "Shoes"],
    "material": ["leather", "wool blend"],
    "size": ["S", "M", "L", "XL", "10", "10.5"],
    "gender": ["men", "women", "unisex"],
}


@pytest.fixture(scope="module")
def parser() -> QueryParser:
    return QueryParser.build(VOCABULARY)


@pytest.mark.parametrize(
    ("text", "semantic", "min_price", "max_price"),
    [
        ("warm waterproof jacket under 80", "warm waterproof jacket", None, 80.0),
        ("running shoes between 20 and 40 dollars", "running shoes", 20.0, 40.0),
        ("headphones less than $100", "headphones", None, 100.0),
        ("laptop over 1000", "laptop", 1000.0, None),
        ("do you have a yoga mat 20-40", "yoga mat", 20.0, 40.0),
        ("backpack $20-$40", "backpack", 20.0, 40.0),
        ("tent 150 dollars or less", "tent", None, 150.0),
        ("a kettle around 50", "kettle", 40.0, 60.0),
        ("rug from 1,000 to 2,000", "rug", 1000.0, 2000.0),
    ],
)
def test_price_expressions_become_filters(parser: QueryParser, text: str, semantic: str, min_price, max_price) -> None:
    parsed = parser.parse(text)
    assert parsed.text == semantic
    assert (parsed.filters.min_price, parsed.filters.max_price) == (min_price, max_price)


def test_catalog_attributes_become_filters_and_the_rest_is_the_query(parser: QueryParser) -> None:
    parsed = parser.parse("Nike running shoes in red size 10 for women under 80")
    f = parsed.filters
    assert (f.brands, f.colors, f.categories, f.sizes, f.genders) == (
        ("Nike",), ("red",), ("Running Shoes",), ("10",), ("women",))
    assert f.max_price == 80.0
    assert "size" not in parsed.text and "women" not in parsed.text and "80" not in parsed.text
    assert "running shoes" in parsed.text


def test_category_filters_only_the_head_noun_and_materials_stay_soft(parser: QueryParser) -> None:
    assert parser.parse("shoe rack").filters.categories == ()
    assert parser.parse("jackets for hiking").filters.categories == ("Jackets",)
    assert parser.parse("a jacket").filters.categories == ("Jackets",)
    leather = parser.parse("cheap black leather jacket")
    assert leather.wants_cheap and "cheap" not in leather.text
    assert leather.filters.colors == ("black",) and leather.filters.materials == ("leather",)
    assert leather.filters.brands == ()  # a brand named like a color stays a color
    assert parser.parse("red tape shoes").filters.brands == ("Red Tape",)


def test_ratings_stock_and_gender_forms(parser: QueryParser) -> None:
    assert parser.parse("dresses 4 stars and up").filters.min_rating == 4.0
    assert parser.parse("highly rated dresses").filters.min_rating == 4.0
    assert parser.parse("jackets in stock").filters.in_stock
    assert parser.parse("men's jackets xl").filters.genders == ("men",)
    assert parser.parse("men's jackets xl").filters.sizes == ("XL",)
    assert parser.parse("ladies jackets").filters.genders == ("women",)


def test_rasa_entities_are_merged_when_they_name_catalog_values(parser: QueryParser) -> None:
    parsed = parser.parse("something warm")
    merged = merge_entities(parsed, [{"entity": "brand", "value": "the north face"},
                                     {"entity": "color", "value": "purple"}], parser.vocabulary)
    assert merged.filters.brands == ("The North Face",)
    assert merged.filters.colors == ()  # not a catalog color


def test_parser_is_saved_and_rebuilt_when_the_vocabulary_changes(tmp_path) -> None:
    first = QueryParser.ensure(VOCABULARY, tmp_path / "parser")
    assert (tmp_path / "parser" / "vocabulary.json").exists()
    again = QueryParser.ensure(VOCABULARY, tmp_path / "parser")
    assert again.fingerprint == first.fingerprint
    assert again.parse("nike jacket").filters.brands == ("Nike",)
    changed = QueryParser.ensure({**VOCABULARY, "brand": ["Adidas"]}, tmp_path / "parser")
    assert changed.parse("nike jacket").filters.brands == ()
    assert changed.parse("adidas jacket").filters.brands == ("Adidas",)


def test_filters_round_trip_through_a_slot_and_merge() -> None:
    filters = Filters(max_price=50.0, brands=("Nike",), colors=("red",), exclude_ids=(3, 4))
    assert Filters.from_dict(filters.to_dict()) == filters
    merged = filters.merge(Filters(brands=("Adidas",), min_price=20.0))
    assert merged.brands == ("Adidas",) and merged.colors == ("red",)
    assert (merged.min_price, merged.max_price) == (20.0, None)


def test_search_finds_relevant_products(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    hits = search.search(search.parse("noise cancelling headphones"), limit=5)
    assert len(hits) == 5
    assert all("Headphones" in h.product.category for h in hits)
    assert all(h.reason for h in hits)


def test_filters_apply_inside_retrieval_and_still_fill_the_page(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    query = ParsedQuery("warm winter jacket", Filters(max_price=60.0, colors=("red",)))
    hits = search.search(query, limit=5)
    # The filter admits more than 5 products, so 5 must come back even if none were in an unfiltered top-5.
    with search._session_factory() as session:
        matching = session.scalars(select(Product).where(Product.price <= 60, Product.color == "red")).all()
    assert len(matching) >= 5
    assert len(hits) == 5
    assert all(h.product.price <= 60 and h.product.color == "red" for h in hits)


def test_pages_do_not_repeat(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    query = search.parse("sneakers")
    first = [h.product.id for h in search.search(query, limit=5)]
    second = [h.product.id for h in search.search(query, limit=5, offset=5)]
    assert len(second) == 5 and not set(first) & set(second)


def test_index_is_persisted_and_rebuilt_only_when_stale(catalog: int, db_session, tmp_path) -> None:
    embedder = get_embedder()
    built = product_index.ensure(db_session, embedder, tmp_path)
    assert built.size == catalog
    manifest = (tmp_path / product_index.MANIFEST_FILE).read_text()
    assert '"model": "all-MiniLM-L6-v2"' in manifest and '"dimension": 384' in manifest
    mtime = (tmp_path / product_index.INDEX_FILE).stat().st_mtime_ns
    again = product_index.ensure(db_session, embedder, tmp_path)
    assert again.fingerprint == built.fingerprint
    assert (tmp_path / product_index.INDEX_FILE).stat().st_mtime_ns == mtime  # reused, not rebuilt
    product = db_session.scalars(select(Product).limit(1)).one()
    product.description += " Now with a lifetime warranty."
    db_session.flush()
    rebuilt = product_index.ensure(db_session, embedder, tmp_path)
    assert rebuilt.fingerprint != built.fingerprint
    db_session.rollback()


def test_embeddings_are_normalised_and_semantic() -> None:
    vectors = get_embedder().encode(["waterproof rain jacket", "raincoat for wet weather", "espresso machine"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("tell me more about the second one", [1]), ("compare the first and the last", [0, 4]),
     ("number 3 please", [2]), ("the 4th", [3]), ("the tenth", [])],
)
def test_ordinal_references(text: str, expected: list[int]) -> None:
    assert references.positions(text, 5) == expected


def test_quantity_and_size_references() -> None:
    assert references.quantity("add 2 of those") == 2
    assert references.quantity("three pairs please") == 3
    assert references.quantity("add it") == 1
    assert references.size("in size M please", ["S", "M", "L"]) == "M"
    assert references.size("size 42", ["S", "M"]) == ""


def test_out_of_stock_products_rank_after_comparable_ones_in_stock(catalog: int) -> None:
    from actions import services
    from bot.search.service import OUT_OF_STOCK_PENALTY

    search = services.product_search()
    hits = search.search(search.parse("jacket"), limit=20)
    adjusted = [h.score - (OUT_OF_STOCK_PENALTY if h.product.stock <= 0 else 0) for h in hits]
    assert adjusted == sorted(adjusted, reverse=True)
    assert any(h.product.stock <= 0 for h in search.search(search.parse("jacket"), limit=40)), "no case tested"


def test_names_ignore_filler_words() -> None:
    from bot.search import references

    titles = ["The North Face Parka", "Sony WH-1000XM5 Headphones"]
    assert references.by_name("the zqxv thingamajig", titles) == []
    assert references.by_name("the sony one", titles) == [1]
    assert references.by_name("the north face one", titles) == [0]


def test_a_refinement_reuses_the_query_embedding_and_ranks_the_same(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    assert search.query_vectors.size == 1024  # the action server's default (SHOP_SEARCH_QUERY_CACHE)
    first = search.search(ParsedQuery("merino wool base layer", Filters()), limit=5)
    hits, misses = search.query_vectors.hits, search.query_vectors.misses
    cheaper = search.search(ParsedQuery("merino wool base layer", Filters(max_price=80.0)), limit=5)
    again = search.search(ParsedQuery("merino wool base layer", Filters()), limit=5)
    assert (search.query_vectors.hits, search.query_vectors.misses) == (hits + 2, misses)
    assert [h.product.id for h in again] == [h.product.id for h in first]
    assert all(h.product.price is not None and h.product.price <= 80 for h in cheaper)


def test_query_cache_keeps_the_latest_texts_and_returns_the_model_s_vectors() -> None:
    from bot.search.service import QueryVectorCache

    embedder = get_embedder()
    cache = QueryVectorCache(2)
    a = cache.get("rain jacket", embedder)
    cache.get("hiking boots", embedder)
    assert cache.get("rain jacket", embedder) is a  # a hit, and now the most recent
    cache.get("espresso machine", embedder)  # evicts "hiking boots", the least recently used
    cache.get("hiking boots", embedder)
    assert (cache.hits, cache.misses) == (1, 4)
    assert np.allclose(a, embedder.encode(["rain jacket"])[0])
    assert not a.flags.writeable  # shared between searches: nobody may change it in place
    off = QueryVectorCache(0)
    off.get("rain jacket", embedder)
    off.get("rain jacket", embedder)
    assert (off.hits, off.misses) == (0, 0)


def test_torch_threads_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.config import Settings
    from bot.search.embeddings import threads

    monkeypatch.setenv("SHOP_TORCH_THREADS", "1")
    assert threads(Settings().torch_threads) == 1
    monkeypatch.setenv("SHOP_TORCH_THREADS", "zero")
    with pytest.raises(ValueError, match="SHOP_TORCH_THREADS"):
        Settings()
    monkeypatch.delenv("SHOP_TORCH_THREADS")
    assert 1 <= threads(Settings().torch_threads) <= 4


def test_a_brand_spelled_like_a_function_word_is_not_read_from_every_query() -> None:
    parser = QueryParser.build({**VOCABULARY, "brand": [*VOCABULARY["brand"], "AND", "The", "ONLY"]})
    parsed = parser.parse("pink fit and flare dress")
    assert parsed.filters.brands == () and "and" in parsed.text.split()
    assert parser.parse("only dresses").filters.brands == ("ONLY",)  # a brand that is no stop word still is one
