"""Products without a price ("Price on request"): schema migration, cart refusal and display."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func

from bot.catalog.tables import Product
from bot.db import MIGRATIONS_DIR, migrate, session_scope
from bot.shop import cart
from bot.shop.cart import CartError


def _alembic_upgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, revision)


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_migration_from_0001_keeps_products_and_carts_and_allows_null_price(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    _alembic_upgrade(f"sqlite:///{db}", "0001")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO products (id, sku, title, description, brand, category, price, currency, color, "
                     "material, gender, sizes, attributes, rating, rating_count, stock, image_url) VALUES "
                     "(7, '096009010836', 'Old Lamp', '', 'Lumo', 'Home', 24.5, 'USD', '', '', '', '[]', '{}', "
                     "4.0, 3, 2, '')")
        conn.execute("INSERT INTO cart_items (cart_key, product_id, size, quantity) VALUES ('c1', 7, '', 1)")
        with pytest.raises(sqlite3.IntegrityError):  # 0001: price is NOT NULL
            conn.execute("INSERT INTO products (sku, title, description, brand, category, price, currency, color, "
                         "material, gender, sizes, attributes, rating, rating_count, stock, image_url) VALUES "
                         "('X', 'No price', '', '', '', NULL, 'USD', '', '', '', '[]', '{}', 0, 0, 0, '')")
    migrate(f"sqlite:///{db}")  # to head, as every command does
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (_head(),)
        assert conn.execute("SELECT id, sku, title, price FROM products").fetchall() == [
            (7, "096009010836", "Old Lamp", 24.5)]
        assert conn.execute("SELECT cart_key, product_id FROM cart_items").fetchall() == [("c1", 7)]
        conn.execute("INSERT INTO products (sku, title, description, brand, category, price, currency, color, "
                     "material, gender, sizes, attributes, rating, rating_count, stock, image_url) VALUES "
                     "('X', 'No price', '', '', '', NULL, 'USD', '', '', '', '[]', '{}', 0, 0, 0, '')")
        indexes = {row[1] for row in conn.execute("PRAGMA index_list('products')")}
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert [row[2] for row in conn.execute("PRAGMA foreign_key_list('cart_items')")] == ["products"]
        with pytest.raises(sqlite3.IntegrityError):  # the unique SKU index survived the table copy
            conn.execute("INSERT INTO products (sku, title, description, brand, category, price, currency, color, "
                         "material, gender, sizes, attributes, rating, rating_count, stock, image_url) VALUES "
                         "('X', 'Again', '', '', '', 1, 'USD', '', '', '', '[]', '{}', 0, 0, 0, '')")
    assert {"ix_products_sku", "ix_products_brand", "ix_products_category"} <= indexes


def test_cart_refuses_a_product_without_price(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cart.sqlite3'}"
    migrate(url)
    with session_scope(url) as session:
        quote = Product(sku="096009010836", title="Fists of Bruce Lee - DVD", price=None, stock=5)
        lamp = Product(sku="L1", title="Desk Lamp", price=24.5, stock=5)
        session.add_all([quote, lamp])
        session.flush()
        with pytest.raises(CartError, match=r"Fists of Bruce Lee - DVD has no online price \(price on request\)"):
            cart.add_item(session, "c1", quote.id)
        summary = cart.add_item(session, "c1", lamp.id)
        assert [line.title for line in summary.lines] == ["Desk Lamp"] and summary.total == 24.5
        # a price removed later (catalog re-import) leaves the line out instead of pricing it at 0
        lamp.price = None
        session.flush()
        assert cart.summary(session, "c1").lines == []


@pytest.mark.usefixtures("catalog")
def test_add_to_cart_action_refuses_a_product_without_price(monkeypatch: pytest.MonkeyPatch) -> None:
    from actions import cart as cart_actions
    from actions import services
    from actions.cart import ActionAddToCart, ActionViewCart

    search = services.product_search()
    with session_scope() as session:
        pid = (session.query(Product.id).filter(Product.stock > 0, func.json_array_length(Product.sizes) == 0)
               .limit(1).scalar())
    product = dataclasses.replace(search.get(pid), price=None)
    monkeypatch.setattr(cart_actions, "referred_products", lambda tracker, limit=1: [product])
    sender = f"noprice-{uuid.uuid4().hex[:8]}"
    latest = {"text": "add it", "intent": {"name": "add_to_cart", "confidence": 0.98}, "entities": []}
    tracker = Tracker(sender, {}, latest, [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    events = ActionAddToCart().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"] == f"Sorry, {product.title} has no online price (price on request), " \
                                             "so it can't be added to the cart."
    assert dispatcher.messages[0]["buttons"][0]["title"] == "Similar products"
    assert [e["value"] for e in events if e.get("name") == "focused_product"] == [float(pid)]
    dispatcher = CollectingDispatcher()
    ActionViewCart().run(dispatcher, tracker, {})
    assert "empty" in dispatcher.messages[0]["text"]


@pytest.mark.usefixtures("catalog")
def test_price_less_product_is_shown_as_price_on_request() -> None:
    from actions import services
    from actions.messages import money, product_card
    from bot.web.pages import product_page

    with session_scope() as session:
        pid = session.query(Product.id).limit(1).scalar()
    priced = services.product_search().get(pid)
    quote = dataclasses.replace(priced, price=None)
    assert money(None) == "Price on request" and money(1234.5) == "$1,234.50"
    card = product_card(quote)
    assert card["price"] is None and card["price_label"] == "Price on request"
    assert [b["title"] for b in card["buttons"]] == ["Details"]  # nothing to add to a cart
    assert [b["title"] for b in product_card(priced)["buttons"]] == ["Details", "Add to cart"]
    assert '<p class="price">Price on request</p>' in product_page(quote)
