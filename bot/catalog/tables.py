"""Products and their variants (one per size/color combination, with its own SKU, price and stock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, Numeric, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base

DENSE_DESCRIPTION_WORDS = 30


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    brand: Mapped[str] = mapped_column(String(120), default="", index=True)
    category: Mapped[str] = mapped_column(String(300), default="", index=True)  # "Clothing > Jackets"
    price: Mapped[float | None] = mapped_column(Numeric(10, 2, asdecimal=False), nullable=True)  # None: on request
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    color: Mapped[str] = mapped_column(String(60), default="")
    material: Mapped[str] = mapped_column(String(80), default="")
    gender: Mapped[str] = mapped_column(String(20), default="")
    sizes: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rating: Mapped[float] = mapped_column(Float, default=0.0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    image_url: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())

    # Empty for a product sold as one item (the demo catalog, csv and jsonl imports): then its own price,
    # stock, sizes and colors apply. With variants (the Shopify import), ``sizes``, ``stock``, ``price`` and
    # ``attributes["colors"]`` are derived from them at import: sizes and colors in stock, their stock
    # summed, the lowest price in stock; the cart sells a variant at its own price, SKU and stock.
    variants: Mapped[list[ProductVariant]] = relationship(
        back_populates="product", cascade="all, delete-orphan", order_by="ProductVariant.position")

    @property
    def department(self) -> str:
        return self.category.split(" > ", 1)[0]

    def _facets(self) -> list[str]:
        parts = [self.brand, self.category.replace(" > ", " "), self.color, self.material]
        if self.gender:
            parts.append(f"for {self.gender}")
        return [p for p in parts if p]

    def search_text(self) -> str:
        """The text that is embedded: title, facets and the start of the description.

        Short texts embed better than long ones with MiniLM (measured on search-dev), so the
        description is cut to its first words here; BM25 gets all of it.
        """
        lead = " ".join(self.description.split()[:DENSE_DESCRIPTION_WORDS])
        return ". ".join(p for p in [self.title, *self._facets(), lead] if p)

    def lexical_fields(self) -> dict[str, str]:
        """The fields BM25F indexes, each with its own weight (``bot.search.lexical``)."""
        features = (self.attributes or {}).get("features") or []
        attributes = [self.color, self.material, self.gender, *(str(f) for f in features)]
        return {"title": self.title, "brand": self.brand, "category": self.category.replace(" > ", " "),
                "attributes": " ".join(a for a in attributes if a), "description": self.description}


class ProductVariant(Base):
    """One purchasable version of a product: a size and/or color (``options`` keeps every option the
    source named, e.g. ``{"Size": "10", "Color": "Black"}``) with its own SKU, price and stock."""

    __tablename__ = "product_variants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    size: Mapped[str] = mapped_column(String(20), default="")
    color: Mapped[str] = mapped_column(String(60), default="")
    options: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    price: Mapped[float | None] = mapped_column(Numeric(10, 2, asdecimal=False), nullable=True)  # None: on request
    stock: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)  # the order of the source's rows

    product: Mapped[Product] = relationship(back_populates="variants")
