"""Writing products: upsert by SKU, so loading the same data twice changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.catalog.models import Product

_FIELDS = ("title", "description", "brand", "category", "price", "currency", "color", "material", "gender",
           "sizes", "attributes", "rating", "rating_count", "stock", "image_url")


@dataclass
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


_IN_CHUNK = 900  # SKUs per IN (...) query: under every SQLite build's bound-parameter limit


def upsert_products(session: Session, rows: Iterable[dict[str, Any]]) -> UpsertStats:
    """Insert new SKUs, update changed ones. Only the SKUs in ``rows`` are loaded, so importing a
    large catalog batch by batch stays linear in its size."""
    stats = UpsertStats()
    rows = list(rows)
    skus = list({row["sku"] for row in rows})
    existing: dict[str, Product] = {}
    for start in range(0, len(skus), _IN_CHUNK):
        chunk = skus[start:start + _IN_CHUNK]
        existing.update((p.sku, p) for p in session.scalars(select(Product).where(Product.sku.in_(chunk))))
    for row in rows:
        product = existing.get(row["sku"])
        if product is None:
            product = Product(sku=row["sku"], **{f: row[f] for f in _FIELDS if f in row})
            session.add(product)
            existing[row["sku"]] = product
            stats.inserted += 1
            continue
        changed = False
        for f in _FIELDS:
            if f in row and getattr(product, f) != row[f]:
                setattr(product, f, row[f])
                changed = True
        stats.updated += changed
        stats.unchanged += not changed
    session.flush()
    return stats


def product_count(session: Session) -> int:
    return int(session.scalar(select(func.count(Product.id))) or 0)
