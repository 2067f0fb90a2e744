"""Writing products: upsert by SKU, so loading the same data twice changes nothing.

A row with a ``variants`` list (the Shopify import) also sets the product's variants, by variant SKU:
new ones are added, changed ones updated, those no longer listed removed. A row without the key
leaves the product's variants as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.tables import Product, ProductVariant

_FIELDS = ("title", "description", "brand", "category", "price", "currency", "color", "material", "gender",
           "sizes", "attributes", "rating", "rating_count", "stock", "image_url")
_VARIANT_FIELDS = ("size", "color", "options", "price", "stock", "position")


@dataclass
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


_IN_CHUNK = 900  # SKUs per IN (...) query: under every SQLite build's bound-parameter limit


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]


def _release_moved_variants(session: Session, rows: list[dict[str, Any]]) -> None:
    """Delete the variants whose SKU a row gives to another product than the one that has it now (a product
    renamed in the source), so the new owner can take the SKU without breaking its uniqueness."""
    owner = {variant["sku"]: row["sku"] for row in rows for variant in row.get("variants") or []}
    moved = False
    for chunk in _chunks(list(owner)):
        for variant, product_sku in session.execute(
                select(ProductVariant, Product.sku).join(Product).where(ProductVariant.sku.in_(chunk))).tuples():
            if owner[variant.sku] != product_sku:
                session.delete(variant)
                moved = True
    if moved:
        session.flush()
        session.expire_all()


def _set_variants(product: Product, wanted: list[dict[str, Any]]) -> bool:
    """Make ``product.variants`` the ``wanted`` ones (by SKU); whether anything changed."""
    changed = False
    keep = {variant["sku"] for variant in wanted}
    for gone in [v for v in product.variants if v.sku not in keep]:
        product.variants.remove(gone)  # delete-orphan: the row goes
        changed = True
    mine = {v.sku: v for v in product.variants}
    for data in wanted:
        variant = mine.get(data["sku"])
        if variant is None:
            fields = {f: data[f] for f in _VARIANT_FIELDS if f in data}
            product.variants.append(ProductVariant(sku=data["sku"], **fields))
            changed = True
            continue
        for f in _VARIANT_FIELDS:
            if f in data and getattr(variant, f) != data[f]:
                setattr(variant, f, data[f])
                changed = True
    return changed


def upsert_products(session: Session, rows: Iterable[dict[str, Any]]) -> UpsertStats:
    """Insert new SKUs, update changed ones. Only the SKUs in ``rows`` are loaded, so importing a
    large catalog batch by batch stays linear in its size."""
    stats = UpsertStats()
    rows = list(rows)
    with_variants = any("variants" in row for row in rows)
    if with_variants:
        _release_moved_variants(session, rows)
    existing: dict[str, Product] = {}
    for chunk in _chunks(list({row["sku"] for row in rows})):
        query = select(Product).where(Product.sku.in_(chunk))
        if with_variants:
            query = query.options(selectinload(Product.variants))
        existing.update((p.sku, p) for p in session.scalars(query))
    for row in rows:
        product = existing.get(row["sku"])
        if product is None:
            product = Product(sku=row["sku"], **{f: row[f] for f in _FIELDS if f in row})
            if row.get("variants"):
                _set_variants(product, row["variants"])
            session.add(product)
            existing[row["sku"]] = product
            stats.inserted += 1
            continue
        changed = False
        for f in _FIELDS:
            if f in row and getattr(product, f) != row[f]:
                setattr(product, f, row[f])
                changed = True
        if "variants" in row:
            changed = _set_variants(product, row["variants"]) or changed
        stats.updated += changed
        stats.unchanged += not changed
    session.flush()
    return stats


def product_count(session: Session) -> int:
    return int(session.scalar(select(func.count(Product.id))) or 0)
