"""Frozen views of catalog rows: what a conversation, a page or a card needs, detached from the session."""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalog.tables import Product


@dataclass(frozen=True)
class ProductView:
    """What a conversation needs to know about a product (detached from the session)."""

    id: int
    sku: str
    title: str
    brand: str
    category: str
    price: float | None  # None: the catalog has no price for it ("price on request")
    currency: str
    color: str
    material: str
    sizes: list[str]
    rating: float
    rating_count: int
    stock: int
    description: str
    features: list[str]

    @classmethod
    def of(cls, p: Product) -> ProductView:
        price = None if p.price is None else float(p.price)
        return cls(p.id, p.sku, p.title, p.brand, p.category, price, p.currency, p.color, p.material,
                   list(p.sizes or []), p.rating, p.rating_count, p.stock, p.description,
                   list((p.attributes or {}).get("features", [])))
