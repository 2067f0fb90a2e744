"""The cart: variants, stock, quantities, merging a guest cart, checkout links and page, and the chat actions.

Service tests use a SQLite database of their own; the action tests use the test catalog, the real
actions and real trackers; the checkout page is served by the real gateway app.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from actions.cart import ActionAddToCart, ActionCheckout, ActionRemoveFromCart, ActionUpdateCartQuantity, ActionViewCart
from bot.catalog.tables import Product
from bot.config import Settings, get_settings
from bot.db import migrate, session_scope
from bot.knowledge.shop_policy_file import get_policy
from bot.shop import cart
from bot.shop.cart import MAX_QUANTITY, CartError, NotEnoughStock
from tests.support.scratch_db import OLD_SCARF, migrated_to

# --------------------------------------------------------------------------- the service, on its own database


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Session, dict[str, int]]]:
    url = f"sqlite:///{tmp_path / 'cart.sqlite3'}"
    migrate(url)
    with session_scope(url) as session:
        mug = Product(sku="MUG", title="Enamel Camp Mug", price=12.5, stock=5)
        jacket = Product(sku="JKT", title="Trail Jacket", price=60, stock=4, sizes=["S", "M", "L"],
                         color="Red", attributes={"colors": ["Red", "Blue"]})
        lamp = Product(sku="LMP", title="Desk Lamp", price=24, stock=50)
        session.add_all([mug, jacket, lamp])
        session.flush()
        yield session, {"mug": mug.id, "jacket": jacket.id, "lamp": lamp.id}


def test_a_product_with_variants_needs_its_size_and_color(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    with pytest.raises(CartError, match=r"Which size of Trail Jacket\? It comes in S, M, L"):
        cart.add_item(session, "c1", ids["jacket"])
    with pytest.raises(CartError, match=r"Which color of Trail Jacket\? It comes in Red, Blue"):
        cart.add_item(session, "c1", ids["jacket"], size="M")
    with pytest.raises(CartError, match="Trail Jacket comes in S, M, L"):
        cart.add_item(session, "c1", ids["jacket"], size="XXL", color="Red")
    with pytest.raises(CartError, match="Trail Jacket comes in Red, Blue"):
        cart.add_item(session, "c1", ids["jacket"], size="M", color="Green")
    cart.add_item(session, "c1", ids["jacket"], size="m", color="blue")  # spelled as the catalog does
    summary = cart.add_item(session, "c1", ids["jacket"], size="M", color="Red")
    assert [(line.size, line.color, line.quantity) for line in summary.lines] == [("M", "Blue", 1), ("M", "Red", 1)]
    assert summary.lines[0].variant == "size M, Blue"
    assert cart.add_item(session, "c1", ids["mug"], size="M", color="Blue").lines[-1].variant == ""


def test_stock_is_checked_and_what_is_left_is_offered(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    cart.add_item(session, "c1", ids["mug"], 3)
    with pytest.raises(NotEnoughStock, match="Only 5 of Enamel Camp Mug left in stock") as short:
        cart.add_item(session, "c1", ids["mug"], 3)
    assert short.value.available == 2
    assert cart.add_item(session, "c1", ids["mug"], short.value.available).item_count == 5
    with pytest.raises(NotEnoughStock, match="all in your cart already") as none_left:
        cart.add_item(session, "c1", ids["mug"])
    assert none_left.value.available == 0
    with pytest.raises(CartError, match=f"between 1 and {MAX_QUANTITY}"):
        cart.add_item(session, "c1", ids["lamp"], MAX_QUANTITY + 1)
    cart.add_item(session, "c1", ids["lamp"], MAX_QUANTITY)
    with pytest.raises(NotEnoughStock, match=f"at most {MAX_QUANTITY}"):
        cart.add_item(session, "c1", ids["lamp"])


def test_quantity_changes_and_zero_removes_only_in_its_own_cart(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    line = cart.add_item(session, "c1", ids["mug"]).lines[0]
    other = cart.add_item(session, "c2", ids["lamp"]).lines[0]
    assert cart.set_quantity(session, "c1", line.id, 4).lines[0].quantity == 4
    with pytest.raises(NotEnoughStock, match="Only 5 of") as short:
        cart.set_quantity(session, "c1", line.id, 6)
    assert short.value.available == 5
    with pytest.raises(CartError, match="not in your cart"):
        cart.set_quantity(session, "c1", other.id, 2)  # someone else's line
    with pytest.raises(CartError, match="not in your cart"):
        cart.remove_line(session, "c1", other.id)
    assert cart.set_quantity(session, "c1", line.id, 0).lines == []
    assert cart.summary(session, "c2").lines[0].quantity == 1


def test_merge_adds_up_within_stock_and_is_idempotent(shop) -> None:  # type: ignore[no-untyped-def]
    session, ids = shop
    cart.add_item(session, "guest-1", ids["mug"], 3)
    cart.add_item(session, "guest-1", ids["jacket"], 1, "M", "Red")
    cart.add_item(session, "guest-1", ids["lamp"], 2)
    customer = cart.customer_cart_key(7)
    cart.add_item(session, customer, ids["mug"], 4)
    cart.add_item(session, customer, ids["lamp"], MAX_QUANTITY - 1)
    merged = cart.merge(session, "guest-1", customer)
    got = {(line.title, line.size, line.color): line.quantity for line in merged.lines}
    assert got == {("Enamel Camp Mug", "", ""): 5,  # 3 + 4, capped at the stock of 5
                   ("Desk Lamp", "", ""): MAX_QUANTITY,  # 19 + 2, capped at the maximum
                   ("Trail Jacket", "M", "Red"): 1}
    assert cart.summary(session, "guest-1").lines == []
    assert cart.merge(session, "guest-1", customer) == merged  # again: nothing changes
    assert cart.merge(session, customer, customer) == merged


def test_checkout_reference_cannot_be_forged(shop) -> None:  # type: ignore[no-untyped-def]
    secret = "s" * 40
    ref = cart.checkout_reference("customer:7", secret)
    assert cart.cart_key_from_reference(ref, secret) == "customer:7"
    encoded, signature = ref.split(".")
    other = cart.checkout_reference("customer:8", secret)
    assert cart.cart_key_from_reference(f"{other.split('.')[0]}.{signature}", secret) is None  # another key
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert cart.cart_key_from_reference(f"{encoded}.{flipped}", secret) is None
    assert cart.cart_key_from_reference(ref, "t" * 40) is None
    for junk in ["customer:7", "", "a.b", f"{encoded}.{signature}.x", "<script>"]:
        assert cart.cart_key_from_reference(junk, secret) is None


def test_shipping_is_free_over_the_policy_threshold() -> None:
    shipping = get_policy().fact("shipping")
    free_over = float(shipping["free_over"])
    standard = next(m for m in shipping["methods"] if m["name"] == "Standard")
    below = cart.shipping_quote(free_over - 0.01, shipping)
    assert below.fee == standard["price"] and below.missing(free_over - 0.01) == 0.01
    assert cart.shipping_quote(free_over, shipping).fee == 0


def test_migration_0004_keeps_cart_lines_and_tells_colors_apart(tmp_path: Path) -> None:
    from alembic import command

    db = tmp_path / "old.sqlite3"
    cfg = migrated_to(db, "0003")
    with sqlite3.connect(db) as conn:
        conn.execute(OLD_SCARF)
        conn.execute("INSERT INTO cart_items (cart_key, product_id, size, quantity) VALUES ('c1', 7, '', 2)")
    command.upgrade(cfg, "0004")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT cart_key, product_id, size, color, quantity FROM cart_items").fetchall() == [
            ("c1", 7, "", "", 2)]
        conn.execute("INSERT INTO cart_items (cart_key, product_id, size, color, quantity) "
                     "VALUES ('c1', 7, '', 'Red', 1)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO cart_items (cart_key, product_id, size, color, quantity) "
                         "VALUES ('c1', 7, '', 'Red', 1)")
        assert [row[2] for row in conn.execute("PRAGMA foreign_key_list('cart_items')")] == ["products"]
    command.downgrade(cfg, "0003")  # lines that differ only by color merge back into one
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT cart_key, product_id, quantity FROM cart_items").fetchall() == [("c1", 7, 3)]


# --------------------------------------------------------------------------- the chat actions


def tracker(text: str, intent: str, sender: str, slots: dict[str, Any] | None = None,
            entities: list[dict[str, Any]] | None = None, customer_id: int | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.98}, "entities": entities or [],
              "metadata": {"customer_id": customer_id} if customer_id else {}}
    return Tracker(sender, slots or {}, latest, [], False, None, {}, "action_listen")


def run(action, t: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def press(button: dict[str, str]) -> list[dict[str, Any]]:
    """The entities a button's payload (``/intent{...}``) sets, as Rasa passes them to the action."""
    payload = json.loads("{" + button["payload"].split("{", 1)[1]) if "{" in button["payload"] else {}
    return [{"entity": k, "value": v} for k, v in payload.items()]


def cart_card(messages: list[dict[str, Any]]) -> dict[str, Any]:
    found = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and m["custom"]["type"] == "cart"]
    assert len(found) == 1, messages
    return found[0]


def _sender() -> str:
    return f"cart-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def two_tone(catalog: int) -> Iterator[int]:
    """A product with color variants (as the Shopify importer keeps them) in the test catalog."""
    with session_scope() as session:
        base = session.scalars(select(Product)
                               .where(func.json_array_length(Product.sizes) == 0, Product.price.is_not(None))
                               .order_by(Product.id).limit(1)).one()
        scarf = Product(sku=f"TWO-TONE-{uuid.uuid4().hex[:6]}", title="Two-Tone Test Scarf", brand=base.brand,
                        category=base.category, price=18.0, stock=6, color="Navy",
                        attributes={"colors": ["Navy", "Teal"]})
        session.add(scarf)
        session.flush()
        pid = scarf.id
    yield pid
    with session_scope() as session:
        session.execute(delete(cart.CartItem).where(cart.CartItem.product_id == pid))
        session.delete(session.get(Product, pid))


def test_add_asks_for_the_color_then_shows_the_cart_card(two_tone: int) -> None:
    sender = _sender()
    product = [{"entity": "product_id", "value": str(two_tone)}]
    messages, slots = run(ActionAddToCart(), tracker("add it", "add_to_cart", sender, entities=product))
    assert messages[0]["text"] == "Which color of Two-Tone Test Scarf?"
    assert [b["title"] for b in messages[0]["buttons"]] == ["Navy", "Teal"] and slots["focused_product"] == two_tone
    teal = messages[0]["buttons"][1]
    messages, _ = run(ActionAddToCart(), tracker(teal["payload"], "add_to_cart", sender, slots, press(teal)))
    assert messages[0]["text"].startswith("Added 1 x Two-Tone Test Scarf (Teal) to your cart.")
    card = cart_card(messages)
    assert card["item_count"] == 1 and card["total"] == 18.0 and card["total_label"] == "$18.00"
    assert card["added"] == {"product_id": two_tone, "quantity": 1}  # what analytics counts as an add-to-cart
    [line] = card["lines"]
    assert (line["title"], line["color"], line["quantity"], line["variant"]) == ("Two-Tone Test Scarf", "Teal", 1,
                                                                                  "Teal")
    assert [b["title"] for b in line["buttons"]] == ["−", "+", "Remove"]
    assert re.search(r"/checkout\?cart=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$", card["checkout_url"])
    # "in teal" in the shopper's own words picks the color too; a color it doesn't come in is refused
    messages, _ = run(ActionAddToCart(), tracker("add 2 of those in teal", "add_to_cart", sender, entities=product))
    assert cart_card(messages)["lines"][0]["quantity"] == 3
    assert cart_card(messages)["added"] == {"product_id": two_tone, "quantity": 2}
    messages, _ = run(ActionViewCart(), tracker("show my cart", "view_cart", sender))
    assert "added" not in cart_card(messages)  # only a successful add is marked
    color = [*product, {"entity": "color", "value": "purple"}]
    messages, _ = run(ActionAddToCart(), tracker("add it in purple", "add_to_cart", sender, entities=color))
    assert "doesn't come in purple" in messages[0]["text"] and len(messages[0]["buttons"]) == 2


def _product(session: Session, **where: Any) -> Product:
    stmt = select(Product).where(Product.price.is_not(None), func.json_array_length(Product.sizes) == 0)
    if "low_stock" in where:
        stmt = stmt.where(Product.stock > 1, Product.stock <= 5)
    else:
        stmt = stmt.where(Product.stock > 10, Product.stock < MAX_QUANTITY)
    return session.scalars(stmt.order_by(Product.id).limit(1)).one()


def test_add_offers_the_quantity_in_stock(db_session) -> None:  # type: ignore[no-untyped-def]
    product = _product(db_session, low_stock=True)
    sender = _sender()
    entities = [{"entity": "product_id", "value": str(product.id)}]
    messages, _ = run(ActionAddToCart(), tracker("add 9 of those", "add_to_cart", sender, entities=entities))
    assert messages[0]["text"] == (f"Only {product.stock} of {product.title} left in stock. "
                                   f"Should I add {product.stock}?")
    offer = messages[0]["buttons"][0]
    assert offer["title"] == f"Add {product.stock}"
    messages, _ = run(ActionAddToCart(), tracker(offer["payload"], "add_to_cart", sender, entities=press(offer)))
    assert cart_card(messages)["lines"][0]["quantity"] == product.stock


def test_quantity_changes_by_words_and_buttons_and_zero_removes(db_session) -> None:  # type: ignore[no-untyped-def]
    product = _product(db_session)
    sender = _sender()
    entities = [{"entity": "product_id", "value": str(product.id)}]
    _, slots = run(ActionAddToCart(), tracker("add it", "add_to_cart", sender, entities=entities))
    messages, _ = run(ActionUpdateCartQuantity(), tracker("make it 3", "update_cart_quantity", sender, slots))
    assert messages[0]["text"].startswith(f"Done: 3 x {product.title}.")
    line = cart_card(messages)["lines"][0]
    assert line["quantity"] == 3
    minus = line["buttons"][0]
    messages, _ = run(ActionUpdateCartQuantity(), tracker(minus["payload"], "update_cart_quantity", sender,
                                                          entities=press(minus)))
    assert cart_card(messages)["lines"][0]["quantity"] == 2
    too_many = [*entities, {"entity": "quantity", "value": str(product.stock + 1)}]
    messages, _ = run(ActionUpdateCartQuantity(), tracker("more", "update_cart_quantity", sender, entities=too_many))
    assert messages[0]["text"] == f"Only {product.stock} of {product.title} left in stock."
    assert messages[0]["buttons"][0]["title"] == f"Make it {product.stock}"
    messages, _ = run(ActionUpdateCartQuantity(), tracker("change it to zero", "update_cart_quantity", sender))
    assert messages[0]["text"] == f"Removed {product.title}.\nYour cart is empty now."
    messages, _ = run(ActionViewCart(), tracker("cart", "view_cart", sender))
    assert "empty" in messages[0]["text"]


def test_quantity_change_asks_which_line_when_it_is_unclear(db_session) -> None:  # type: ignore[no-untyped-def]
    first = _product(db_session)
    second = db_session.scalars(select(Product).where(Product.price.is_not(None),
                                                      func.json_array_length(Product.sizes) == 0,
                                                      Product.stock > 10, Product.id != first.id)
                                .order_by(Product.id).limit(1)).one()
    sender = _sender()
    for p in (first, second):
        run(ActionAddToCart(), tracker("add", "add_to_cart", sender, entities=[{"entity": "product_id",
                                                                               "value": str(p.id)}]))
    messages, _ = run(ActionUpdateCartQuantity(), tracker("make it 2", "update_cart_quantity", sender))
    assert messages[0]["text"] == "Which item should I change to 2?" and len(messages[0]["buttons"]) == 2
    messages, _ = run(ActionUpdateCartQuantity(), tracker("make the second one 4", "update_cart_quantity", sender))
    lines = cart_card(messages)["lines"]
    assert [(line["product_id"], line["quantity"]) for line in lines] == [(first.id, 1), (second.id, 4)]
    remove = lines[0]["buttons"][-1]
    messages, _ = run(ActionRemoveFromCart(), tracker(remove["payload"], "remove_from_cart", sender,
                                                      entities=press(remove)))
    assert messages[0]["text"].startswith(f"Removed {first.title}.")
    assert [line["product_id"] for line in cart_card(messages)["lines"]] == [second.id]


def test_a_signed_in_cart_follows_the_customer_not_the_conversation(db_session) -> None:  # type: ignore[no-untyped-def]
    product = _product(db_session)
    customer = 800_000 + uuid.uuid4().int % 10_000
    entities = [{"entity": "product_id", "value": str(product.id)}]
    run(ActionAddToCart(), tracker("add it", "add_to_cart", _sender(), entities=entities, customer_id=customer))
    messages, _ = run(ActionViewCart(), tracker("my cart", "view_cart", _sender(), customer_id=customer))
    assert [line["product_id"] for line in cart_card(messages)["lines"]] == [product.id]  # another device
    messages, _ = run(ActionViewCart(), tracker("my cart", "view_cart", _sender()))
    assert "empty" in messages[0]["text"]  # a guest sees nothing of it


@pytest.fixture
def gateway(catalog: int) -> Iterator[TestClient]:
    from bot.web.app import create_app

    with TestClient(create_app(Settings(rasa_url="http://127.0.0.1:9", actions_url="http://127.0.0.1:9"))) as client:
        yield client


def test_checkout_link_opens_that_cart_and_guessing_opens_none(db_session, gateway: TestClient) -> None:  # type: ignore[no-untyped-def]
    product = _product(db_session)
    sender = _sender()
    entities = [{"entity": "product_id", "value": str(product.id)}, {"entity": "quantity", "value": "2"}]
    run(ActionAddToCart(), tracker("add two", "add_to_cart", sender, entities=entities))
    messages, _ = run(ActionCheckout(), tracker("checkout", "checkout", sender))
    text = messages[0]["text"]
    assert text.startswith("Here's your order: 2 items, ") and "Checkout button" in text
    link = re.search(r"(/checkout\?cart=\S+)$", cart_card(messages)["checkout_url"])
    assert link, messages
    page = gateway.get(link.group(1))
    assert page.status_code == 200
    subtotal = round(product.price * 2, 2)
    policy = get_policy().fact("shipping")
    fee = cart.shipping_quote(subtotal, policy).fee
    assert escape(product.title) in page.text and f"${subtotal:,.2f}" in page.text
    assert f"${subtotal + fee:,.2f}" in page.text and ("Free" if fee == 0 else f"${fee:,.2f}") in page.text
    assert "Place order (demo)" in page.text and "no order was placed" in page.text

    # Someone else's cart: the raw key, a reference signed with another secret, or an altered one, show nothing.
    reference = link.group(1).split("=", 1)[1]
    forged = cart.checkout_reference(sender, "not-the-secret-" * 3)
    altered = cart.checkout_reference(cart.customer_cart_key(1), get_settings().jwt_secret).split(".")[0] + \
        "." + reference.split(".")[1]
    for guess in (sender, forged, altered, reference[:-1] + ("A" if reference[-1] != "A" else "B"), "<script>"):
        response = gateway.get("/checkout", params={"cart": guess})
        assert response.status_code == 404 and escape(product.title) not in response.text
        assert "isn't valid" in response.text


def test_typed_checkout_names_the_link_only_when_it_is_absolute(db_session, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 16, item 4: no relative path as plain text; the card's Checkout button always, the text's link
    only with SHOP_PUBLIC_URL."""
    product = _product(db_session)
    sender = _sender()
    run(ActionAddToCart(), tracker("add it", "add_to_cart", sender,
                                   entities=[{"entity": "product_id", "value": str(product.id)}]))
    messages, _ = run(ActionCheckout(), tracker("checkout", "checkout", sender))
    assert "/checkout" not in messages[0]["text"] and "Checkout button" in messages[0]["text"]
    assert cart_card(messages)["checkout_url"].startswith("/checkout?cart=")  # the widget resolves it
    monkeypatch.setenv("SHOP_PUBLIC_URL", "https://shop.example/")
    get_settings.cache_clear()
    try:
        messages, _ = run(ActionCheckout(), tracker("checkout", "checkout", sender))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    link = cart_card(messages)["checkout_url"]
    assert link.startswith("https://shop.example/checkout?cart=") and messages[0]["text"].endswith(f"here: {link}")


def test_checkout_page_escapes_product_titles() -> None:
    from bot.web import pages

    hostile = cart.CartLine(1, 1, "<img src=x onerror=alert(1)>", "M", "Red", 1, 10.0, "USD", 3)
    summary = cart.CartSummary([hostile])
    html = pages.checkout_page(summary, cart.shipping_quote(10.0, get_policy().fact("shipping")))
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
