"""How shoppers say it: negations, prices in words and slang, other names for a category, corrections.

Parser tests build a QueryParser from a small vocabulary; service tests use the demo catalog with the real
embedding model, FAISS and SQLite; refinement tests run the real actions with real rasa_sdk Trackers.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from actions.search import USUAL_ACTIONS, ActionRefineSearch, ActionSearchProducts
from bot.catalog.tables import Product
from bot.config import Settings, get_settings
from bot.db import get_engine, migrate, session_scope
from bot.search.facets import Facets
from bot.search.numbers import number_words, spell_prices
from bot.search.query import Filters, QueryParser, merge_entities
from bot.search.synonyms import Synonyms, SynonymsError
from tests.conftest import ROOT

VOCABULARY = {
    "brand": ["Nike", "Adidas", "The North Face", "Levi's", "Black"],
    "color": ["red", "black", "blue", "navy blue"],
    "category": ["Clothing", "Jackets", "Shoes", "Boots", "Sneakers", "Sweaters", "Smartphones", "Headphones"],
    "material": ["leather", "suede", "wool blend"],
    "size": ["S", "M", "L", "XL", "10"],
    "gender": ["men", "women", "kids"],
}
SYNONYMS = Synonyms.from_dict({"categories": {
    "sweater": ["jumper", "pullover"],
    "sneakers": ["trainers", "kicks"],
    "smartphone": ["mobile phone", "cell phone"],
    "hoodie": ["hooded sweatshirt", "hoody"],
    "flashlight": ["torch"],
}})


@pytest.fixture(scope="module")
def parser() -> QueryParser:
    return QueryParser.build(VOCABULARY, SYNONYMS)


def _set(filters: Filters) -> dict[str, Any]:
    return {k: v for k, v in filters.to_dict().items() if v not in (None, [], False)}


# --------------------------------------------------------------------------- negations


@pytest.mark.parametrize(
    ("text", "semantic", "expected"),
    [
        ("boots, not leather", "boots", {"categories": ["Boots"], "exclude_materials": ["leather"]}),
        ("no Nike", "", {"exclude_brands": ["Nike"]}),
        ("anything but black", "", {"exclude_colors": ["black"]}),
        ("jackets without leather", "jackets", {"categories": ["Jackets"], "exclude_materials": ["leather"]}),
        ("non-leather boots", "boots", {"categories": ["Boots"], "exclude_materials": ["leather"]}),
        ("sneakers not from adidas", "sneakers", {"categories": ["Sneakers"], "exclude_brands": ["Adidas"]}),
        ("shoes but not boots", "shoes", {"categories": ["Shoes"], "exclude_categories": ["Boots"]}),
        ("no nike shoes", "shoes", {"categories": ["Shoes"], "exclude_brands": ["Nike"]}),
        ("boots, not leather or suede", "boots",
         {"categories": ["Boots"], "exclude_materials": ["leather", "suede"]}),
        ("i don't want leather boots", "boots", {"categories": ["Boots"], "exclude_materials": ["leather"]}),
        ("any colour but black jackets", "jackets", {"categories": ["Jackets"], "exclude_colors": ["black"]}),
        ("jackets other than red", "jackets", {"categories": ["Jackets"], "exclude_colors": ["red"]}),
        ("red jacket, not in navy blue", "red jacket",
         {"categories": ["Jackets"], "colors": ["red"], "exclude_colors": ["navy blue"]}),
    ],
)
def test_negated_values_become_exclusions_not_searches(parser: QueryParser, text: str, semantic: str,
                                                       expected: dict[str, Any]) -> None:
    parsed = parser.parse(text)
    assert parsed.text == semantic
    assert _set(parsed.filters) == expected


def test_a_negated_size_or_gender_is_dropped_and_other_no_s_are_no_negations(parser: QueryParser) -> None:
    kids = parser.parse("shoes, not for kids")
    assert kids.filters.genders == () and kids.text == "shoes"  # not a filter for kids either way
    assert parser.parse("boots no more than 60 dollars").filters.max_price == 60.0
    corrected = parser.parse("no, I meant adidas")
    assert corrected.filters.brands == ("Adidas",) and corrected.filters.exclude_brands == ()
    assert corrected.text == "adidas"
    assert _set(parser.parse("no i meant the blue ones").filters) == {"colors": ["blue"]}


def test_rasa_entities_never_bring_back_a_negated_value(parser: QueryParser) -> None:
    parsed = parser.parse("sneakers, no nike")
    merged = merge_entities(parsed, [{"entity": "brand", "value": "Nike"}, {"entity": "color", "value": "red"}],
                            parser.vocabulary)
    assert merged.filters.brands == () and merged.filters.exclude_brands == ("Nike",)
    assert merged.filters.colors == ("red",)


def test_exclusions_add_up_in_a_refinement_and_a_new_wish_lifts_one() -> None:
    search = Filters(categories=("Boots",), materials=("leather",), brands=("Nike",))
    no_leather = search.merge(Filters(exclude_materials=("leather",)))
    assert no_leather.materials == () and no_leather.exclude_materials == ("leather",)
    no_adidas = no_leather.merge(Filters(exclude_brands=("Adidas",)))
    assert no_adidas.exclude_materials == ("leather",) and no_adidas.exclude_brands == ("Adidas",)
    assert no_adidas.brands == ("Nike",)
    adidas_after_all = no_adidas.merge(Filters(brands=("Adidas",)))
    assert adidas_after_all.brands == ("Adidas",) and adidas_after_all.exclude_brands == ()
    assert Filters.from_dict(no_adidas.to_dict()) == no_adidas
    old_slot = {"max_price": 50.0, "brands": ["Nike"], "exclude_ids": [3]}  # a slot saved before exclusions
    assert Filters.from_dict(old_slot) == Filters(max_price=50.0, brands=("Nike",), exclude_ids=(3,))
    assert "not leather" in no_adidas.describe() and "not by Adidas" in no_adidas.describe()


def test_an_excluded_material_removes_products_with_it_in_the_material_or_the_title(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'facets.sqlite3'}"
    migrate(url)
    with session_scope(url) as session:
        rows = [Product(sku="A", title="Chelsea Boots", material="leather", brand="Zara", color="black"),
                Product(sku="B", title="City Boots", material="vegan leather", brand="Nike", color="red"),
                Product(sku="C", title="Leather Work Boots", material="", brand="Nike", color="brown"),
                Product(sku="D", title="Rain Boots", material="rubber", brand="Hunter", color="black"),
                Product(sku="E", title="Trail Boots", material="suede", brand="Adidas", color="navy")]
        session.add_all(rows)
        session.flush()
        ids = {r.sku: r.id for r in rows}
        facets = Facets.load(session)
    allowed = facets.mask(Filters(exclude_materials=("leather",)))
    assert allowed is not None
    assert {sku for sku, pid in ids.items() if allowed[pid]} == {"D", "E"}
    no_nike_black = facets.mask(Filters(exclude_brands=("nike",), exclude_colors=("Black",)))
    assert no_nike_black is not None
    assert {sku for sku, pid in ids.items() if no_nike_black[pid]} == {"E"}


def test_boots_not_leather_finds_boots_without_leather(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    query = search.parse("boots, not leather")
    hits = search.search(query, limit=20)
    with search._session_factory() as session:
        leather = session.scalars(select(Product).where(Product.category.like("%Boots"),
                                                        Product.material.like("%leather%"))).all()
        others = session.scalars(select(Product).where(Product.category.like("%Boots"),
                                                       Product.material.not_like("%leather%"))).all()
    assert leather and len(others) >= 5, "the test catalog needs boots of both kinds"
    assert len(hits) == min(20, len(others))
    assert all("Boots" in h.product.category for h in hits)
    assert not [h for h in hits if "leather" in h.product.material.lower() or "leather" in h.product.title.lower()]
    assert search.count(query.filters) == len(others)


@pytest.mark.parametrize(("text", "field", "value"), [("no Nike sneakers", "brand", "Nike"),
                                                      ("anything but black jackets", "color", "black"),
                                                      ("sneakers, not from adidas", "brand", "Adidas")])
def test_excluded_brands_and_colors_never_come_back(catalog: int, text: str, field: str, value: str) -> None:
    from actions import services

    search = services.product_search()
    hits = search.search(search.parse(text), limit=30)
    assert len(hits) >= 5
    assert all(getattr(h.product, field).lower() != value.lower() for h in hits)


# --------------------------------------------------------------------------- prices in words and slang


@pytest.mark.parametrize(
    ("text", "semantic", "min_price", "max_price"),
    [
        ("headphones for fifty bucks", "headphones", None, 50.0),
        ("boots under a hundred quid", "boots", None, 100.0),
        ("a jacket for less than twenty pounds", "jacket", None, 20.0),
        ("sneakers 20ish", "sneakers", 16.0, 24.0),
        ("sneakers twenty-ish", "sneakers", 16.0, 24.0),
        ("a jacket around thirty", "jacket", 24.0, 36.0),
        ("shoes under fifty", "shoes", None, 50.0),
        ("headphones max 40", "headphones", None, 40.0),
        ("no more than sixty dollars for boots", "boots", None, 60.0),
        ("jackets between twenty and forty", "jackets", 20.0, 40.0),
        ("a smartphone under 1k", "smartphone", None, 1000.0),
        ("a smartphone under two grand", "smartphone", None, 2000.0),
        ("headphones under one hundred and fifty dollars", "headphones", None, 150.0),
        ("jackets from twenty five to forty quid", "jackets", 25.0, 40.0),
        ("a sweater for a tenner", "sweater", None, 10.0),
        ("shoes over two thousand five hundred", "shoes", 2500.0, None),
    ],
)
def test_prices_in_words_and_slang_set_the_price_filter(parser: QueryParser, text: str, semantic: str,
                                                         min_price: float | None, max_price: float | None) -> None:
    parsed = parser.parse(text)
    assert parsed.text == semantic
    assert (parsed.filters.min_price, parsed.filters.max_price) == (min_price, max_price)


def test_number_words_outside_a_price_keep_their_words(parser: QueryParser) -> None:
    assert spell_prices("two person tent") == "two person tent"
    assert spell_prices("4k tv under 300") == "4k tv under 300"
    assert spell_prices("the black one") == "the black one"
    parsed = parser.parse("two person tent")
    assert parsed.text == "two person tent" and parsed.filters.max_price is None
    assert parser.parse("headphones at least four stars").filters.min_rating == 4.0
    assert number_words(["a", "hundred", "and", "fifty"]) == (150, 4)
    assert number_words(["fifteen", "hundred"]) == (1500, 2)
    assert number_words(["twenty", "-", "five", "quid"]) == (25, 3)
    assert number_words(["two", "three"]) == (2, 1)
    assert number_words(["tent"]) is None


def test_headphones_under_fifty_bucks_cost_at_most_fifty(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    hits = search.search(search.parse("headphones under fifty bucks"), limit=5)
    assert hits and all(h.product.price is not None and h.product.price <= 50 for h in hits)
    assert all("Headphones" in h.product.category for h in hits)


# --------------------------------------------------------------------------- other names for a category


@pytest.mark.parametrize(
    ("text", "semantic", "categories"),
    [
        ("warm jumper", "warm sweater", ("Sweaters",)),
        ("pullovers for men", "sweaters", ("Sweaters",)),
        ("trainers", "sneakers", ("Sneakers",)),
        ("red kicks under 80", "red sneakers", ("Sneakers",)),
        ("a cell phone", "smartphone", ("Smartphones",)),
        ("mobile phones", "smartphones", ("Smartphones",)),
        ("sweater", "sweater", ("Sweaters",)),
    ],
)
def test_a_synonym_filters_by_the_catalog_category_and_searches_its_name(parser: QueryParser, text: str,
                                                                         semantic: str,
                                                                         categories: tuple[str, ...]) -> None:
    parsed = parser.parse(text)
    assert parsed.text == semantic
    assert parsed.filters.categories == categories


def test_the_other_names_of_a_category_go_to_the_lexical_search(parser: QueryParser) -> None:
    jumpers, sweaters = parser.parse("warm jumpers"), parser.parse("warm sweaters")
    assert jumpers == sweaters  # the same words, filters and other names: the same products
    assert jumpers.expansions == ("jumper", "pullover")
    assert parser.parse("trainers").expansions == ("trainers", "kicks")


def test_a_synonym_without_a_catalog_category_filters_nothing_and_adds_its_other_names(
        parser: QueryParser) -> None:
    for text, expansions in (("hooded sweatshirt", ("hoodie", "hoody")), ("hoody", ("hoodie", "hooded sweatshirt")),
                             ("torches", ("flashlight",)), ("flashlight", ("torch",)),
                             ("a flat", ())):  # "flat" (apartment) is no product: nothing happens
        parsed = parser.parse(text)
        assert parsed.text == text.removeprefix("a ") and parsed.filters.categories == ()
        assert parsed.expansions == expansions
    merged = merge_entities(parser.parse("something warm"), [{"entity": "category", "value": "jumper"}],
                            parser.vocabulary, parser.aliases)
    assert merged.filters.categories == ("Sweaters",)  # DIET's "jumper" too


def test_synonym_file_format_and_errors(tmp_path: Path) -> None:
    shipped = Synonyms.load(ROOT / "data" / "search_synonyms.yml")
    keys = dict(shipped.categories)
    assert {"jumper", "pullover"} <= set(keys["sweater"]) and "trainers" in keys["sneakers"]
    assert "torch" in keys["flashlight"] and "nappies" in keys["diapers"]
    assert Settings().search_synonyms_file == ROOT / "data" / "search_synonyms.yml"
    assert Synonyms.load(tmp_path / "missing.yml") == Synonyms()
    (tmp_path / "bad.yml").write_text("categories: [jumper, sweater]\n")
    with pytest.raises(SynonymsError, match="'categories' must map"):
        Synonyms.load(tmp_path / "bad.yml")
    (tmp_path / "typo.yml").write_text("category:\n  sweater: [jumper]\n")
    with pytest.raises(SynonymsError, match="unknown section"):
        Synonyms.load(tmp_path / "typo.yml")
    (tmp_path / "ok.yml").write_text("categories:\n  Sweater: [Jumper, '  Pull over ']\n  bag: purse\n")
    assert Synonyms.load(tmp_path / "ok.yml").categories == (("sweater", ("jumper", "pull over")),
                                                             ("bag", ("purse",)))


def test_the_saved_parser_is_rebuilt_when_the_synonyms_change(tmp_path: Path) -> None:
    directory = tmp_path / "parser"
    first = QueryParser.ensure(VOCABULARY, directory, SYNONYMS)
    again = QueryParser.ensure(VOCABULARY, directory, SYNONYMS)
    assert again.fingerprint == first.fingerprint and again.parse("jumper").filters.categories == ("Sweaters",)
    changed = QueryParser.ensure(VOCABULARY, directory, Synonyms.from_dict({"categories": {"boots": ["wellies"]}}))
    assert changed.fingerprint != first.fingerprint
    assert changed.parse("jumper").filters.categories == ()
    assert changed.parse("wellies").filters.categories == ("Boots",)
    assert QueryParser.load(directory).parse("wellies").filters.categories == ("Boots",)  # as saved


def test_jumpers_find_the_same_products_as_sweaters(catalog: int) -> None:
    from actions import services

    search = services.product_search()
    jumpers = search.search(search.parse("warm jumpers"), limit=5)
    sweaters = search.search(search.parse("warm sweaters"), limit=5)
    assert [h.product.id for h in jumpers] == [h.product.id for h in sweaters]
    assert all("Sweaters" in h.product.category for h in jumpers)
    trainers = search.search(search.parse("trainers"), limit=5)
    assert len(trainers) == 5 and all("Sneakers" in h.product.category for h in trainers)
    phones = search.search(search.parse("cell phone"), limit=5)
    assert len(phones) == 5 and all("Smartphones" in h.product.category for h in phones)


def test_the_search_rereads_an_edited_synonym_file(catalog: int, tmp_path: Path) -> None:
    from bot.search.embeddings import get_embedder
    from bot.search.service import PARSER_DIR, ProductSearch

    settings = get_settings()
    index = tmp_path / "index"
    shutil.copytree(settings.search_index_dir, index, ignore=shutil.ignore_patterns(PARSER_DIR))
    table = tmp_path / "synonyms.yml"
    table.write_text("categories:\n  boots: [wellies]\n  skillet: [frying pan]\n")
    search = ProductSearch(sessionmaker(bind=get_engine(settings.database_url)), index, get_embedder(),
                           refresh_seconds=0, synonyms_file=table)
    assert search.parse("wellies").filters.categories == ("Boots",)
    assert search.parse("jumper").filters.categories == ()
    skillet = search.parse("skillet")  # no such category: the words stay, BM25 also looks for "frying pan"
    assert (skillet.text, skillet.filters.categories, skillet.expansions) == ("skillet", (), ("frying pan",))
    assert search.retrieve("skillet", 5, mode="lexical") == []
    pans = search.retrieve("skillet", 5, mode="lexical", lexical_text="skillet frying pan")
    assert len(pans) == 5 and all("Frying Pan" in p.title for p in (search.get(i) for i, _ in pans) if p)
    assert all("Frying Pan" in h.product.title for h in search.search(skillet, limit=5))
    assert not search.refresh()  # nothing changed
    table.write_text("categories:\n  boots: [wellies, gumboots]\n  sweater: [jumper]\n")
    assert search.refresh()  # the catalog is the same; the table is not
    assert search.parse("jumper").filters.categories == ("Sweaters",)
    assert search.parse("gumboots").filters.categories == ("Boots",)


# --------------------------------------------------------------------------- corrections in a refinement


def tracker(text: str, intent: str, slots: dict[str, Any] | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return Tracker(f"lang-{uuid.uuid4().hex[:10]}", slots or {}, latest, [], False, None, {}, "action_listen")


def run(action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    return dispatcher.messages, events, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def _cards(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for m in messages if (c := m.get("custom")) and c.get("type") == "product_cards" for p in c["products"]]


def _common(field: str, category: str, count: int = 2) -> list[str]:
    """The most common values of a field among the catalog's products of a category (in stock)."""
    with session_scope() as session:
        rows = session.scalars(select(getattr(Product, field)).where(Product.category.like(f"%{category}"),
                                                                     Product.stock > 0)).all()
    return [value for value, _ in Counter(rows).most_common(count)]


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(("wording", "intent"), [("no, I meant the {} ones", "deny"), ("actually {}", "nlu_fallback"),
                                                 ("no i meant {}", "refine_search")])
def test_a_correction_replaces_the_color_it_contradicts(wording: str, intent: str) -> None:
    first_color, second_color = _common("color", "Sneakers")
    _, _, found = run(ActionSearchProducts(), tracker("sneakers", "search_product"))
    _, _, colored = run(ActionRefineSearch(), tracker(f"in {first_color}", "refine_search", found))
    assert colored["search_filters"]["colors"] == [first_color]
    messages, _, corrected = run(ActionRefineSearch(), tracker(wording.format(second_color), intent, colored))
    assert corrected["search_filters"]["colors"] == [second_color]
    assert corrected["search_filters"]["categories"] == ["Sneakers"]
    assert corrected["search_query"] == "sneakers"  # no "no", "meant", "actually" in the words searched
    assert "dropped" not in messages[0]["text"]
    assert all(second_color.title() in c["title"] for c in _cards(messages))


@pytest.mark.usefixtures("catalog")
def test_a_correction_replaces_the_brand_and_the_old_one_leaves_the_words() -> None:
    first_brand, second_brand = _common("brand", "Sneakers")
    _, _, found = run(ActionSearchProducts(), tracker(f"{first_brand} sneakers", "search_product"))
    assert found["search_filters"]["brands"] == [first_brand]
    messages, _, corrected = run(ActionRefineSearch(), tracker(f"no i meant {second_brand}", "deny", found))
    assert corrected["search_filters"]["brands"] == [second_brand]
    assert first_brand.lower() not in corrected["search_query"].lower()
    assert _cards(messages) and all(c["brand"] == second_brand for c in _cards(messages))


@pytest.mark.usefixtures("catalog")
def test_not_those_the_cheaper_ones_works_as_cheaper() -> None:
    _, _, found = run(ActionSearchProducts(), tracker("leather boots", "search_product"))
    _, _, cheaper = run(ActionRefineSearch(), tracker("cheaper", "refine_search", found))
    for text, intent in (("not those, the cheaper ones", "deny"), ("cheaper ones", "refine_search"),
                         ("no, the cheaper ones", "nlu_fallback")):
        messages, _, slots = run(ActionRefineSearch(), tracker(text, intent, found))
        assert slots["search_filters"] == cheaper["search_filters"], text
        assert slots["search_query"] == found["search_query"], text
        assert slots["search_filters"]["exclude_ids"] == [], text
        assert _cards(messages), text


@pytest.mark.usefixtures("catalog")
def test_a_plain_no_or_gibberish_after_results_gets_its_usual_answer() -> None:
    _, _, found = run(ActionSearchProducts(), tracker("sneakers", "search_product"))
    for text, intent in (("no thanks", "deny"), ("no", "deny"), ("asdf qwerty", "nlu_fallback")):
        messages, events, slots = run(ActionRefineSearch(), tracker(text, intent, found))
        assert not messages and not slots, text
        assert [(e["event"], e["name"]) for e in events] == [("followup", USUAL_ACTIONS[intent])], text
    assert USUAL_ACTIONS["deny"] == "utter_deny_ack"


@pytest.mark.usefixtures("catalog")
def test_a_correction_classified_as_a_search_still_refines_the_running_one() -> None:
    color = _common("color", "Jackets", 1)[0]
    _, _, found = run(ActionSearchProducts(), tracker("jackets under 150", "search_product"))
    messages, _, corrected = run(ActionSearchProducts(), tracker(f"actually {color}", "search_product", found))
    assert _cards(messages) and "dropped" not in messages[0]["text"]
    assert corrected["search_filters"]["categories"] == ["Jackets"]
    assert corrected["search_filters"]["max_price"] == 150.0 and corrected["search_filters"]["colors"] == [color]
    _, _, fresh = run(ActionSearchProducts(), tracker("no, show me laptops", "search_product", corrected))
    assert fresh["search_filters"]["categories"] == ["Laptops"]  # another kind of product: a new search
    assert fresh["search_filters"]["colors"] == [] and fresh["search_filters"]["max_price"] is None


@pytest.mark.usefixtures("catalog")
def test_refining_with_a_negation_excludes_and_keeps_the_rest() -> None:
    from actions import services

    search = services.product_search()
    _, _, found = run(ActionSearchProducts(), tracker("leather boots", "search_product"))
    assert found["search_filters"]["materials"] == ["leather"]
    brand = _common("brand", "Boots", 1)[0]
    messages, _, refined = run(ActionRefineSearch(), tracker("not leather", "refine_search", found))
    messages, _, refined = run(ActionRefineSearch(), tracker(f"no {brand}", "refine_search", refined))
    filters = refined["search_filters"]
    assert filters["materials"] == [] and filters["exclude_materials"] == ["leather"]
    assert filters["exclude_brands"] == [brand] and filters["categories"] == ["Boots"]
    assert "leather" not in refined["search_query"]
    products = [search.get(c["id"]) for c in _cards(messages)]
    assert products and all(p is not None and "leather" not in p.material and p.brand != brand for p in products)


def test_usual_actions_are_what_the_intents_own_rules_do() -> None:
    usual: dict[str, str] = {}
    for path in (ROOT / "data" / "rules").glob("*.yml"):
        for rule in yaml.safe_load(path.read_text())["rules"]:
            steps = rule["steps"]
            if "condition" not in rule and len(steps) > 1 and "intent" in steps[0] and "action" in steps[1]:
                usual.setdefault(steps[0]["intent"], steps[1]["action"])
    assert {intent: usual.get(intent) for intent in USUAL_ACTIONS} == USUAL_ACTIONS
    rules = yaml.safe_load((ROOT / "data" / "rules" / "rules.yml").read_text())["rules"]
    corrections = [r for r in rules if r["steps"][0] in ({"action": "action_search_products"},
                                                         {"action": "action_refine_search"})]
    assert len(corrections) == 2
    for rule in corrections:
        assert {s["intent"] for s in rule["steps"][1]["or"]} == {"deny", "nlu_fallback"}
        assert rule["steps"][2] == {"action": "action_refine_search"}
