"""Rasa message shapes the widget renders: product cards and quick-reply buttons."""

from __future__ import annotations

import json
from typing import Any

from actions.services import public_url
from bot.search.service import ProductView


def payload(intent: str, **entities: Any) -> str:
    """A button payload that triggers ``intent`` with entities, bypassing NLU."""
    return f"/{intent}{json.dumps({k: str(v) for k, v in entities.items()})}" if entities else f"/{intent}"


def button(title: str, intent: str, **entities: Any) -> dict[str, str]:
    return {"title": title, "payload": payload(intent, **entities)}


def money(amount: float, currency: str = "USD") -> str:
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
        "price": product.price,
        "currency": product.currency,
        "rating": product.rating,
        "stock": product.stock,
        "image": public_url(f"/media/products/{product.id}.svg"),
        "url": public_url(f"/products/{product.id}"),
        "reason": reason,
        "buttons": [
            button("Details", "product_details", product_id=product.id),
            button("Add to cart", "add_to_cart", product_id=product.id),
        ],
    }


def product_cards(products: list[tuple[ProductView, str]]) -> dict[str, Any]:
    return {"type": "product_cards", "products": [product_card(p, r) for p, r in products]}
