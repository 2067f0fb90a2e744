"""A real Chromium opens the shop, talks to the assistant in the widget, and clicks a quick reply."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.support.widget_socket import open_widget, play_chat_socket

pytestmark = [pytest.mark.browser, pytest.mark.integration]




def test_shopper_chats_in_the_widget(stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(stack.gateway_url + "/")
    page.get_by_test_id("sa-bubble").click()
    panel = page.get_by_test_id("sa-panel")
    panel.wait_for(state="visible")
    page.get_by_test_id("sa-input").fill("hello")
    page.get_by_test_id("sa-input").press("Enter")
    page.locator(".sa-msg-user", has_text="hello").wait_for()
    page.locator(".sa-msg-bot", has_text="shopping assistant").wait_for(timeout=30000)

    bot_count = page.locator(".sa-msg-bot").count()
    page.locator(".sa-quick-reply", has_text="Shipping options").first.click()
    page.locator(".sa-msg-bot", has_text="Standard").wait_for(timeout=30000)
    assert page.locator(".sa-msg-bot").count() > bot_count

    page.get_by_test_id("sa-input").fill("show me running shoes")
    page.get_by_test_id("sa-send").click()
    page.locator(".sa-card").first.wait_for(timeout=30000)
    assert page.locator(".sa-card").count() >= 1

    # The conversation survives a reload.
    page.reload()
    page.locator(".sa-msg-user", has_text="running shoes").wait_for(state="attached", timeout=10000)
    page.close()


def test_text_is_rendered_as_text_not_html(stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.gateway_url + "/")
    page.evaluate("window.__pwned = false")
    page.get_by_test_id("sa-bubble").click()
    hostile = '<img src=x onerror="window.__pwned=true">'
    page.get_by_test_id("sa-input").fill(hostile)
    page.get_by_test_id("sa-input").press("Enter")
    page.locator(".sa-msg-user", has_text="<img").wait_for()
    page.locator(".sa-msg-bot").last.wait_for(timeout=30000)
    assert page.evaluate("window.__pwned") is False
    assert page.locator(".sa-msg-user img").count() == 0
    page.close()


def test_widget_fits_a_phone_screen(stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 375, "height": 667})
    page.goto(stack.gateway_url + "/")
    page.get_by_test_id("sa-bubble").click()
    box = page.get_by_test_id("sa-panel").bounding_box()
    assert box is not None and box["width"] <= 375 and box["width"] >= 360
    page.keyboard.press("Escape")
    page.get_by_test_id("sa-panel").wait_for(state="hidden")
    page.close()


# --- Product cards -----------------------------------------------------------------------------------------------

MONEY = re.compile(r"^\$\d{1,3}(,\d{3})*\.\d{2}$")


def _bot_messages(page) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Collects every message the gateway sends the widget (the Rasa output), as the card data to compare with."""
    messages: list[dict[str, Any]] = []

    def on_frame(payload: str | bytes) -> None:
        try:
            frame = json.loads(payload)
        except ValueError:
            return
        if isinstance(frame, dict) and frame.get("type") == "bot":
            messages.extend(m for m in frame.get("messages") or [] if isinstance(m, dict))

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    return messages


def _card_lists(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [m["custom"]["products"] for m in messages
            if isinstance(m.get("custom"), dict) and m["custom"].get("type") == "product_cards"]


def _money(price: float, currency: str) -> str:
    assert currency == "USD", f"the demo catalog is priced in USD, got {currency!r}"
    return f"${price:,.2f}"


def _stock(stock: int) -> tuple[str, str]:
    """The label and CSS class the widget gives a stock count (same rules as ``actions.messages.stock_label``)."""
    if stock <= 0:
        return "Out of stock", "sa-stock-out"
    if stock <= 5:
        return f"Only {stock} left", "sa-stock-low"
    return "In stock", "sa-stock-in"


def _check_card(card, data: dict[str, Any], base_url: str) -> None:  # type: ignore[no-untyped-def]
    """One rendered ``li.sa-card`` shows what its card data says. Text is read with text_content, as the brand is
    upper-cased by CSS."""
    from playwright.sync_api import expect

    card.scroll_into_view_if_needed()
    img = card.locator("img.sa-card-img")
    expect(img).to_have_count(1)  # on a load error the widget swaps the <img> for a placeholder
    assert img.get_attribute("src") == urljoin(base_url + "/", data["image"])
    expect(img).to_have_js_property("complete", True, timeout=10000)
    assert img.evaluate("i => i.naturalWidth") > 0, f"image {data['image']} did not load"
    assert img.get_attribute("alt") == data["title"]

    title = card.locator(".sa-card-title")
    assert title.text_content() == data["title"]
    assert title.locator("a").get_attribute("href") == urljoin(base_url + "/", data["url"])
    assert data["brand"] and card.locator(".sa-card-brand").text_content() == data["brand"]

    price = card.locator(".sa-card-price").text_content() or ""
    assert MONEY.match(price), f"price {price!r} is not formatted as money"
    assert price == _money(data["price"], data["currency"])

    rating = card.locator(".sa-card-rating")
    assert rating.text_content() == f"★ {data['rating']:.1f}"
    assert rating.get_attribute("aria-label") == f"Rated {data['rating']:.1f} out of 5"

    label, cls = _stock(data["stock"])
    stock = card.locator(".sa-card-stock")
    assert stock.text_content() == label
    assert cls in (stock.get_attribute("class") or "").split()

    assert data["reason"], "a search result card should say why it was picked"
    assert card.locator(".sa-card-reason").text_content() == data["reason"]

    buttons = card.locator(".sa-card-btn")
    assert buttons.all_text_contents() == [b["title"] for b in data["buttons"]] == ["Details", "Add to cart"]


def test_product_cards_render_and_details_opens_the_second_product(stack, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    messages = _bot_messages(page)
    page.goto(stack.gateway_url + "/")
    page.get_by_test_id("sa-bubble").click()
    page.get_by_test_id("sa-panel").wait_for(state="visible")
    page.get_by_test_id("sa-input").fill("waterproof jacket under 150")
    page.get_by_test_id("sa-send").click()

    results = page.locator(".sa-carousel").first
    results.locator(".sa-card").first.wait_for(timeout=30000)
    sent = _card_lists(messages)
    assert len(sent) == 1, f"expected one card message for the search, got {messages}"
    products = sent[0]
    cards = results.locator(".sa-card")
    expect(cards).to_have_count(len(products))
    assert len(products) >= 2, "the search should find at least two jackets"
    for i, data in enumerate(products):
        card = cards.nth(i)
        assert card.get_attribute("data-product-id") == str(data["id"])
        _check_card(card, data, stack.gateway_url)

    # "Details" on the second card: the bot answers with that product, one card, and offers to add it to the cart.
    second = products[1]
    rows = page.locator("[data-testid=sa-log] > .sa-row")
    before = rows.count()
    cards.nth(1).get_by_role("button", name=f"Details: {second['title']}").click()
    page.locator(".sa-msg-user").last.filter(has_text="Details").wait_for()
    reply = page.locator(f"[data-testid=sa-log] > .sa-row:nth-child(n+{before + 1})")
    follow_up = reply.locator(".sa-quick-reply", has_text="Add to cart")
    follow_up.wait_for(timeout=30000)

    texts = reply.locator(".sa-msg-bot").all_text_contents()
    assert any(second["title"] in t for t in texts), texts
    if products[0]["title"] != second["title"]:
        assert not any(products[0]["title"] in t for t in texts), "these are the first product's details"
    shown = reply.locator(".sa-card")
    expect(shown).to_have_count(1)
    assert shown.get_attribute("data-product-id") == str(second["id"])
    assert shown.locator(".sa-card-title").text_content() == second["title"]
    expect(shown.locator(".sa-card-btn", has_text="Add to cart")).to_be_visible()
    expect(follow_up).to_be_enabled()
    assert _card_lists(messages)[-1][0]["id"] == second["id"]
    page.close()


def test_card_price_is_money_and_a_missing_price_prints_no_garbage(stack, browser) -> None:  # type: ignore[no-untyped-def]
    """A card message injected through the widget's own path (WebSocket frame -> sanitize -> render), the chat
    socket being mocked by Playwright. A card without a price says "Price on request"."""
    from playwright.sync_api import expect

    page = browser.new_page()
    # No connect_to_server: the socket is mocked and nothing reaches the gateway or Rasa.
    sockets = play_chat_socket(page)
    page.goto(stack.gateway_url + "/")
    open_widget(page, sockets)
    page.wait_for_function("() => document.querySelector('[data-testid=sa-panel]')")

    def card(pid: str, title: str, price: float | None) -> dict[str, Any]:
        return {"id": pid, "title": title, "brand": "Northwind", "price": price, "currency": "USD", "rating": 4.5,
                "stock": 3, "image": None, "url": f"/products/{pid}", "reason": "injected",
                "buttons": [{"title": "Details", "payload": f'/product_details{{"product_id": "{pid}"}}'}]}

    products = [card("9001", "Priced Jacket", 49), card("9002", "Unpriced Jacket", None),
                card("9003", "Dear Jacket", 1234.5)]
    sockets[0].send(json.dumps({"type": "bot", "messages": [
        {"text": "Injected cards"}, {"custom": {"type": "product_cards", "products": products}}]}))

    cards = page.locator(".sa-card")
    expect(cards).to_have_count(3)
    priced, unpriced, dear = (page.locator(f".sa-card[data-product-id='{p['id']}']") for p in products)
    assert priced.locator(".sa-card-price").text_content() == "$49.00"
    assert dear.locator(".sa-card-price").text_content() == "$1,234.50"

    expect(unpriced.locator(".sa-card-title")).to_have_text("Unpriced Jacket")
    expect(unpriced.locator(".sa-card-price")).to_have_text("Price on request")
    expect(unpriced.locator(".sa-card-rating")).to_have_text("★ 4.5")
    expect(unpriced.locator(".sa-card-stock")).to_have_text("Only 3 left")
    text = unpriced.text_content() or ""
    for garbage in ("null", "NaN", "undefined", "$0.00"):
        assert garbage not in text, f"{garbage!r} in a card without a price: {text!r}"
    page.close()


# --- Cart ---------------------------------------------------------------------------------------------------------


def test_add_to_cart_from_a_card_fills_the_cart_and_the_cart_renders(stack, browser) -> None:  # type: ignore[no-untyped-def]
    """A product card's "Add to cart" (answering the size question when the product has sizes) puts it in the
    cart; the widget renders the cart card from the bot's ``{"type": "cart"}`` payload, the shop's header counts
    it, the checkout link opens that cart on the checkout page, and the cart survives a reload."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    messages = _bot_messages(page)
    page.goto(stack.gateway_url + "/")
    page.get_by_test_id("sa-bubble").click()
    page.get_by_test_id("sa-input").fill("noise cancelling headphones")
    page.get_by_test_id("sa-send").click()
    page.locator(".sa-carousel .sa-card").first.wait_for(timeout=30000)
    products = _card_lists(messages)[-1]
    pick = next(p for p in products if p["stock"] > 0 and p["price"] is not None)
    card = page.locator(f".sa-carousel .sa-card[data-product-id='{pick['id']}']").first
    expect(page.get_by_test_id("sa-cart")).to_have_count(0)
    card.get_by_role("button", name=f"Add to cart: {pick['title']}").click()

    size_question = page.locator(".sa-msg-bot", has_text=f"Which size of {pick['title']}")
    cart_card = page.get_by_test_id("sa-cart")
    cart_card.or_(size_question).first.wait_for(timeout=30000)
    if size_question.count():  # a product with sizes: answer with the first one offered
        page.locator(".sa-row-bot").last.locator(".sa-quick-reply").first.click()
    cart_card.first.wait_for(timeout=30000)
    expect(cart_card).to_have_count(1)

    sent = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and m["custom"].get("type") == "cart"]
    assert len(sent) == 1 and sent[0]["item_count"] == 1
    line = cart_card.locator(".sa-cart-line")
    expect(line).to_have_count(1)
    assert line.get_attribute("data-product-id") == str(pick["id"])
    assert line.locator(".sa-cart-title").text_content() == pick["title"]
    assert line.locator(".sa-cart-qty").text_content() == "Qty 1"
    assert line.locator(".sa-cart-line-total").text_content() == _money(pick["price"], pick["currency"])
    assert cart_card.locator(".sa-cart-total-value").text_content() == _money(pick["price"], pick["currency"])
    assert cart_card.locator(".sa-cart-count").text_content() == "1 item"
    assert [b.text_content() for b in line.locator(".sa-cart-btn").all()][-1] == "Remove"
    expect(page.locator("[data-cart-button] .cart-count")).to_have_text("1")  # the shop's header follows

    checkout = cart_card.get_by_test_id("sa-cart-checkout")
    href = checkout.get_attribute("href") or ""
    assert re.search(r"/checkout\?cart=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$", href), href
    shop = browser.new_page()
    shop.goto(href)
    expect(shop.locator("h1")).to_have_text("Checkout")
    expect(shop.locator("td").first).to_have_text(pick["title"])
    shop.get_by_role("button", name="Place order (demo)").click()
    expect(shop.locator("#demo-notice")).to_be_visible()
    shop.close()

    page.reload()
    page.get_by_test_id("sa-cart").wait_for(state="attached", timeout=10000)
    expect(page.get_by_test_id("sa-cart").locator(".sa-cart-title")).to_have_text(pick["title"])
    page.close()


def test_the_cart_card_renders_its_data_as_text(stack, browser) -> None:  # type: ignore[no-untyped-def]
    """A hostile cart payload, injected through a mocked chat socket, stays text; a bad checkout URL is dropped."""
    from playwright.sync_api import expect

    page = browser.new_page()
    sockets = play_chat_socket(page)
    page.goto(stack.gateway_url + "/")
    page.evaluate("window.__pwned = false")
    open_widget(page, sockets)
    hostile = '<img src=x onerror="window.__pwned=true">'
    cart = {"type": "cart", "item_count": 2, "currency": "USD", "total": 30, "total_label": "$30.00",
            "shipping_note": hostile, "checkout_url": "javascript:window.__pwned=true",
            "lines": [{"product_id": 5, "title": hostile, "variant": "size M", "quantity": 2, "total": 30,
                       "url": "/products/5", "buttons": [{"title": "Remove", "payload": "/remove_from_cart",
                                                          "text": "Remove it"}]}]}
    sockets[0].send(json.dumps({"type": "bot", "messages": [{"custom": cart}]}))
    box = page.get_by_test_id("sa-cart")
    expect(box).to_have_count(1)
    expect(box.locator(".sa-cart-title")).to_have_text(hostile)
    expect(box.locator(".sa-cart-note")).to_have_text(hostile)
    assert box.locator("img[src=x]").count() == 0 and page.evaluate("window.__pwned") is False
    expect(box.get_by_test_id("sa-cart-checkout")).to_have_count(0)  # javascript: is no link
    expect(box.locator(".sa-cart-total-value")).to_have_text("$30.00")
    page.close()
