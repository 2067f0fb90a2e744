"""Product variants from the Shopify import: each with its own SKU, price and stock, in the cart and the chat.

The service tests import tests/fixtures/shopify_variants.csv into a SQLite database of their own (real
importer, real store, real cart); the chat tests put the same products in the test catalog and run the
real add-to-cart action with real rasa_sdk Trackers.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from actions.cart import ActionAddToCart
from bot.catalog import importers
from bot.catalog.store import upsert_products
from bot.catalog.tables import Product, ProductVariant
from bot.catalog.views import ProductView
from bot.db import migrate, session_scope
from bot.shop import cart
from bot.shop.cart import CartError, NotEnoughStock
from tests.conftest import ROOT
from tests.support.scratch_db import OLD_SCARF, migrated_to

VARIANTS_CSV = ROOT / "tests" / "fixtures" / "shopify_variants.csv"


def _import(session: Session) -> dict[str, int]:
    rows = list(importers.read(VARIANTS_CSV, importers.Format.shopify))
    assert not [r.error for r in rows if r.error]
    upsert_products(session, [r.product for r in rows if r.product])
    return {p.sku: p.id for p in session.scalars(select(Product).where(Product.sku.in_(["trail-runner",
                                                                                         "city-parka"])))}


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Session, dict[str, int]]]:
    url = f"sqlite:///{tmp_path / 'variants.sqlite3'}"
    migrate(url)
    with session_scope(url) as session:
        yield session, _import(session)


def test_the_cart_sells_a_variant_at_its_own_price_sku_and_stock(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    summary = cart.add_item(session, "c1", ids["trail-runner"], size="11")
    [line] = summary.lines
    assert (line.size, line.color, line.unit_price, line.sku, line.stock) == ("11", "Black", 99.0, "TR-11-BLK", 4)
    summary = cart.add_item(session, "c1", ids["trail-runner"], 2, size="8")
    assert [(x.size, x.unit_price, x.sku) for x in summary.lines] == [("11", 99.0, "TR-11-BLK"),
                                                                      ("8", 90.0, "TR-8-BLK")]
    assert summary.total == 99.0 + 2 * 90.0
    with pytest.raises(NotEnoughStock, match=r"Only 2 of Trail Runner \(size 8, Black\) left in stock, and they're "
                                             r"all in your cart already"):
        cart.add_item(session, "c1", ids["trail-runner"], size="8")  # the variant's stock (2), not the product's (11)
    summary = cart.add_item(session, "c1", ids["city-parka"], size="M", color="red")
    assert (summary.lines[-1].color, summary.lines[-1].unit_price, summary.lines[-1].sku) == ("Red", 125.0, "CP-M-RED")


def test_an_out_of_stock_size_or_color_is_refused_with_what_is_in_stock(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    with pytest.raises(NotEnoughStock, match=r"Sorry, Trail Runner \(size 10\) is out of stock\. In stock: 8, 9, 11\."):
        cart.add_item(session, "c1", ids["trail-runner"], size="10")
    with pytest.raises(NotEnoughStock, match=r"Sorry, City Parka \(size L, Red\) is out of stock\. In stock in size L: "
                                             r"Blue\.$"):
        cart.add_item(session, "c1", ids["city-parka"], size="L", color="Red")
    with pytest.raises(CartError, match=r"Which color of City Parka \(size M\)\? In stock: Blue, Red\."):
        cart.add_item(session, "c1", ids["city-parka"], size="M")
    with pytest.raises(CartError, match=r"Trail Runner doesn't come in size 13\. In stock: 8, 9, 11\."):
        cart.add_item(session, "c1", ids["trail-runner"], size="13")
    # size L is in stock only in Blue: no question, the line is that variant
    [line] = cart.add_item(session, "c1", ids["city-parka"], size="L").lines
    assert (line.size, line.color, line.sku, line.unit_price) == ("L", "Blue", "CP-L-BLU", 120.0)
    parka = session.get(Product, ids["city-parka"])
    assert cart.product_sizes(parka) == ["M", "L"] and cart.product_colors(parka, "L") == []
    runner = session.get(Product, ids["trail-runner"])
    assert cart.product_sizes(runner) == ["8", "9", "11"]
    assert cart.product_sizes(runner, in_stock=False) == ["8", "9", "10", "11"]


def test_quantities_and_a_merge_are_bounded_by_the_variant_stock(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    line = cart.add_item(session, "c1", ids["city-parka"], size="M", color="Red").lines[0]
    with pytest.raises(NotEnoughStock, match=r"Only 1 of City Parka \(size M, Red\) left in stock"):
        cart.set_quantity(session, "c1", line.id, 2)
    cart.add_item(session, "guest", ids["trail-runner"], 2, size="8")
    customer = cart.customer_cart_key(1)
    cart.add_item(session, customer, ids["trail-runner"], 1, size="8")
    merged = cart.merge(session, "guest", customer)
    assert [(x.size, x.quantity) for x in merged.lines] == [("8", 2)]  # 1 + 2, capped at the variant's 2


def test_a_line_whose_variant_went_out_of_the_catalog_is_not_sold(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    cart.add_item(session, "c1", ids["trail-runner"], size="9")
    cart.add_item(session, "c1", ids["trail-runner"], size="11")
    upsert_products(session, [{"sku": "trail-runner", "variants": [
        {"sku": "TR-11-BLK", "size": "11", "color": "Black", "options": {"Size": "11"}, "price": 95.0, "stock": 4,
         "position": 0}]}])
    session.expire_all()
    assert [(x.size, x.unit_price) for x in cart.summary(session, "c1").lines] == [("11", 95.0)]
    assert session.scalar(select(ProductVariant.sku).where(ProductVariant.sku == "TR-9-BLK")) is None


def test_the_product_view_offers_only_sizes_in_stock(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    view = ProductView.of(session.get(Product, ids["trail-runner"]))
    assert view.sizes == ["8", "9", "11"] and view.price == 90.0 and view.stock == 11


def test_the_variants_migration_keeps_the_products_and_goes_back(tmp_path: Path) -> None:
    from alembic import command

    db = tmp_path / "old.sqlite3"
    cfg = migrated_to(db, "0009")
    with sqlite3.connect(db) as conn:
        conn.execute(OLD_SCARF)
    command.upgrade(cfg, "0010")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT sku, price, stock FROM products").fetchall() == [("P7", 20, 9)]
        conn.execute("INSERT INTO product_variants (product_id, sku, size, color, options, price, stock, position) "
                     "VALUES (7, 'P7-S', 'S', '', '{}', 21, 3, 0)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO product_variants (product_id, sku, size, color, options, price, stock, position) "
                         "VALUES (7, 'P7-S', 'M', '', '{}', 21, 3, 1)")
    command.downgrade(cfg, "0009")
    with sqlite3.connect(db) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "product_variants" not in tables and "products" in tables


# --------------------------------------------------------------------------- the chat, on the test catalog


@pytest.fixture
def in_catalog(catalog: int) -> Iterator[dict[str, int]]:
    with session_scope() as session:
        ids = _import(session)
    yield ids
    with session_scope() as session:
        session.execute(delete(cart.CartItem).where(cart.CartItem.product_id.in_(ids.values())))
        for pid in ids.values():
            session.delete(session.get(Product, pid))


def _add(product_id: int, sender: str, text: str, size: str | None = None,
         color: str | None = None) -> list[dict[str, Any]]:
    entities = [{"entity": "product_id", "value": str(product_id)},
                *({"entity": name, "value": value} for name, value in (("size", size), ("color", color)) if value)]
    latest = {"text": text, "intent": {"name": "add_to_cart", "confidence": 0.9}, "entities": entities}
    dispatcher = CollectingDispatcher()
    ActionAddToCart().run(dispatcher, Tracker(sender, {}, latest, [], False, None, {}, "action_listen"), {})
    return dispatcher.messages


def test_the_chat_offers_sizes_in_stock_and_says_a_size_is_sold_out(in_catalog: dict[str, int]) -> None:
    sender = f"variants-{uuid.uuid4().hex[:10]}"
    runner = in_catalog["trail-runner"]
    [asked] = _add(runner, sender, "add the trail runner")
    assert asked["text"] == "Which size of Trail Runner?"
    assert [b["title"] for b in asked["buttons"]] == ["8", "9", "11"]  # size 10 has none in stock
    [sold_out] = _add(runner, sender, "size 10 please", size="10")
    assert sold_out["text"] == ("Sorry, Trail Runner in size 10 is out of stock. In stock: 8, 9, 11. "
                                "Which size would you like?")
    assert [b["title"] for b in sold_out["buttons"]] == ["8", "9", "11"]
    [added] = _add(runner, sender, "size 11", size="11")
    assert added["text"].startswith("Added 1 x Trail Runner (size 11, Black) to your cart.")
    [card_line] = added["custom"]["lines"]
    assert card_line["unit_price"] == 99.0 and card_line["variant"] == "size 11, Black"
    with session_scope() as session:
        [line] = cart.summary(session, cart.cart_key(sender, None)).lines
    assert (line.sku, line.unit_price) == ("TR-11-BLK", 99.0)


def test_the_chat_refuses_a_sold_out_color_instead_of_adding_another(in_catalog: dict[str, int]) -> None:
    """In size L the parka is in stock only in Blue, so the chat asks no color; "L in red" is still refused."""
    sender = f"variants-{uuid.uuid4().hex[:10]}"
    [refused] = _add(in_catalog["city-parka"], sender, "the parka in L, red", size="L", color="red")
    assert refused["text"] == "Sorry, City Parka (size L, Red) is out of stock. In stock in size L: Blue."
    [added] = _add(in_catalog["city-parka"], sender, "the parka in L", size="L")
    assert added["text"].startswith("Added 1 x City Parka (size L, Blue) to your cart.")
    assert added["custom"]["lines"][0]["unit_price"] == 120.0
