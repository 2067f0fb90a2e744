"""Rasa message shapes the widget renders: product cards and quick-reply buttons."""

from __future__ import annotations

import json
from typing import Any

from actions.services import public_url
from bot.catalog.views import ProductView


def payload(intent: str, **entities: Any) -> str:
    """A button payload that triggers ``intent`` with entities, bypassing NLU."""
    return f"/{intent}{json.dumps({k: str(v) for k, v in entities.items()})}" if entities else f"/{intent}"


def button(title: str, intent: str, **entities: Any) -> dict[str, str]:
    return {"title": title, "payload": payload(intent, **entities)}


def refine_button(title: str) -> dict[str, str]:
    """A quick reply that refines the running search with its own words, bypassing NLU."""
    return {"title": title, "payload": payload("refine_search", refinement=title.lower())}


PRICE_ON_REQUEST = "Price on request"


def money(amount: float | None, currency: str = "USD") -> str:
    """``$1,234.50``; a product without a price (``None``) shows "Price on request"."""
    if amount is None:
        return PRICE_ON_REQUEST
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "INR": "₹"}.get(currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}"


def stock_label(stock: int) -> str:
    if stock <= 0:
        return "Out of stock"
    return f"Only {stock} left" if stock <= 5 else "In stock"


def product_card(product: ProductView, reason: str = "") -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "title": product.title,
        "brand": product.brand,
        "price": product.price,  # None: no price (see price_label)
        "price_label": money(product.price, product.currency),
        "currency": product.currency,
        "rating": product.rating,
        "stock": product.stock,
        "image": public_url(f"/media/products/{product.id}.svg"),
        "url": public_url(f"/products/{product.id}"),
        "reason": reason,
        "buttons": [
            button("Details", "product_details", product_id=product.id),
            # a product without a price cannot go in the cart, so its card offers no button for it
            *([button("Add to cart", "add_to_cart", product_id=product.id)] if product.price is not None else []),
        ],
    }


def product_cards(products: list[tuple[ProductView, str]]) -> dict[str, Any]:
    return {"type": "product_cards", "products": [product_card(p, r) for p, r in products]}
