"""Catalog importers: Shopify product CSV exports, generic CSV with a column mapping, and JSONL.

Every importer yields one :class:`ImportRow` per product with the line it came from, so a bad
row can be reported precisely while the good rows still go in.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

FIELDS = ("sku", "title", "description", "brand", "category", "price", "currency", "color", "material", "gender",
          "sizes", "rating", "rating_count", "stock", "image_url")
_TAG = re.compile(r"<[^>]+>")
_PRICE = re.compile(r"-?\d+(?:[.,]\d+)?")


class Format(StrEnum):
    shopify = "shopify"
    csv = "csv"
    jsonl = "jsonl"


@dataclass
class ImportRow:
    line: int
    product: dict[str, Any] | None = None
    error: str | None = None


class RowError(ValueError):
    pass


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["name=title", "Price (INR)=price"]`` -> ``{"name": "title", "Price (INR)": "price"}``."""
    mapping = {}
    for pair in pairs:
        column, sep, field = pair.rpartition("=")
        if not sep or not column or field not in FIELDS:
            raise ValueError(f"bad --map {pair!r}: use COLUMN=FIELD with FIELD one of {', '.join(FIELDS)}")
        mapping[column] = field
    return mapping


def _text(value: Any) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", str(value or ""))).split())


def _number(value: Any, name: str, cast: type = float) -> Any:
    if value is None or str(value).strip() == "":
        return None
    match = _PRICE.search(str(value).replace(",", "") if str(value).count(",") and "." in str(value) else str(value))
    if not match:
        raise RowError(f"{name} {value!r} is not a number")
    return cast(float(match.group(0).replace(",", ".")))


def _sizes(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [s.strip() for s in re.split(r"[|,;/]", str(value or "")) if s.strip()]


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate and clean one product's fields; raises RowError with the reason."""
    product: dict[str, Any] = {}
    sku = str(raw.get("sku") or "").strip()
    if not sku:
        raise RowError("missing sku")
    title = _text(raw.get("title"))
    if not title:
        raise RowError("missing title")
    price = _number(raw.get("price"), "price")
    if price is None:
        raise RowError("missing price")
    if price < 0:
        raise RowError(f"negative price {price}")
    product.update(sku=sku[:64], title=title[:300], price=round(price, 2),
                   description=_text(raw.get("description"))[:5000])
    for field in ("brand", "category", "color", "material", "gender", "image_url"):
        if raw.get(field) is not None:
            product[field] = _text(raw[field])
    if raw.get("currency"):
        product["currency"] = str(raw["currency"]).strip().upper()[:3]
    if raw.get("sizes") is not None:
        product["sizes"] = _sizes(raw["sizes"])
    rating = _number(raw.get("rating"), "rating")
    if rating is not None:
        if not 0 <= rating <= 5:
            raise RowError(f"rating {rating} is outside 0..5")
        product["rating"] = rating
    for field in ("rating_count", "stock"):
        value = _number(raw.get(field), field, int)
        if value is not None:
            product[field] = max(0, value)
    return product


def _mapped(record: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    if not mapping:
        return {k: v for k, v in record.items() if k in FIELDS}
    out: dict[str, Any] = {}
    for column, field in mapping.items():
        if column in record:
            out[field] = record[column]
    return out


def read_jsonl(path: Path, mapping: dict[str, str]) -> Iterator[ImportRow]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise RowError("not a JSON object")
                yield ImportRow(line_no, normalise(_mapped(record, mapping)))
            except (RowError, json.JSONDecodeError) as exc:
                yield ImportRow(line_no, error=str(exc))


def read_csv(path: Path, mapping: dict[str, str]) -> Iterator[ImportRow]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            line_no = reader.line_num
            try:
                yield ImportRow(line_no, normalise(_mapped(record, mapping)))
            except RowError as exc:
                yield ImportRow(line_no, error=str(exc))


def read_shopify(path: Path, mapping: dict[str, str]) -> Iterator[ImportRow]:
    """Shopify's product export: one row per variant, grouped by Handle; options named Size/Color
    become the product's sizes and colors, price is the lowest variant price, stock their sum."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"Handle", "Title", "Variant Price"} - set(reader.fieldnames or [])
        if missing:
            yield ImportRow(1, error=f"not a Shopify product export: missing columns {', '.join(sorted(missing))}")
            return
        groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for record in reader:
            groups.setdefault(record["Handle"].strip(), []).append((reader.line_num, record))
    for handle_name, rows in groups.items():
        first_line, first = rows[0]
        try:
            sizes: list[str] = []
            colors: list[str] = []
            prices: list[float] = []
            stock = 0
            for _, row in rows:
                for n in (1, 2, 3):
                    option, value = (row.get(f"Option{n} Name") or first.get(f"Option{n} Name") or "").lower(), \
                        (row.get(f"Option{n} Value") or "").strip()
                    if value and option in ("size", "sizes"):
                        sizes.append(value)
                    elif value and option in ("color", "colour"):
                        colors.append(value)
                if (price := _number(row.get("Variant Price"), "Variant Price")) is not None:
                    prices.append(price)
                stock += _number(row.get("Variant Inventory Qty"), "Variant Inventory Qty", int) or 0
            raw = {
                "sku": handle_name or first.get("Variant SKU"), "title": first.get("Title"),
                "description": first.get("Body (HTML)"), "brand": first.get("Vendor"),
                "category": first.get("Product Category") or first.get("Type"),
                "price": min(prices) if prices else None, "stock": stock, "image_url": first.get("Image Src"),
                "sizes": list(dict.fromkeys(sizes)), "color": colors[0] if colors else None,
            }
            raw.update(_mapped(first, mapping) if mapping else {})
            product = normalise(raw)
            if len(set(colors)) > 1:
                product["attributes"] = {"colors": list(dict.fromkeys(colors))}
            yield ImportRow(first_line, product)
        except RowError as exc:
            yield ImportRow(first_line, error=str(exc))


READERS = {Format.shopify: read_shopify, Format.csv: read_csv, Format.jsonl: read_jsonl}


def read(path: Path, fmt: Format, mapping: dict[str, str] | None = None) -> Iterator[ImportRow]:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    return READERS[fmt](path, mapping or {})
