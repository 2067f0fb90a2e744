"""Catalog importers: Shopify product CSV exports, generic CSV with a column mapping, and JSONL.

Every importer yields one :class:`ImportRow` per product with the line it came from, so a bad
row can be reported precisely while the good rows still go in.

A price is optional: a row without one imports with ``price`` None ("price on request"); a price
that is present but not a number is a row error. Values that are only whitespace count as empty.
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
# Fields that several columns may map to: their non-empty values are joined with a space, in --map order.
JOINABLE = ("title", "description", "brand", "category", "color", "material", "gender")
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
    """``["name=title", "Price (INR)=price"]`` -> ``{"name": "title", "Price (INR)": "price"}``.

    Several columns may map to one text field (see ``JOINABLE``), e.g. ``short_description=description``
    and ``long_description=description``: the field gets their non-empty values joined in this order.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, field = pair.rpartition("=")
        if not sep or not column or field not in FIELDS:
            raise ValueError(f"bad --map {pair!r}: use COLUMN=FIELD with FIELD one of {', '.join(FIELDS)}")
        if column in mapping and mapping[column] != field:
            raise ValueError(f"bad --map {pair!r}: column {column!r} is already mapped to {mapping[column]}")
        if field in mapping.values() and field not in JOINABLE and mapping.get(column) != field:
            raise ValueError(f"bad --map {pair!r}: only one column can map to {field} "
                             f"(several columns can map to {', '.join(JOINABLE)})")
        mapping[column] = field
    return mapping


def _text(value: Any) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", str(value or ""))).split())


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any, name: str, cast: type = float) -> Any:
    if _blank(value):
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
    price = _number(raw.get("price"), "price")  # None: no price, shown as "Price on request"
    if price is not None and price < 0:
        raise RowError(f"negative price {price}")
    product.update(sku=sku[:64], title=title[:300], price=None if price is None else round(price, 2),
                   description=_text(raw.get("description"))[:5000])
    for field in ("brand", "category", "color", "material", "gender", "image_url"):
        if raw.get(field) is not None:
            product[field] = _text(raw[field])
    if not _blank(raw.get("currency")):
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
        if column not in record:
            continue
        value = record[column]
        if field in out and field in JOINABLE:  # a second column for a text field: join non-empty values
            value = " ".join(str(v).strip() for v in (out[field], value) if not _blank(v))
        out[field] = value
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


def _field_count_error(record: dict[Any, Any], columns: int, escapechar: str | None) -> str | None:
    """A row with more or fewer values than the header: csv.DictReader puts surplus values in a
    list under the key None and fills missing ones with None. Such a row is misquoted, so its
    values are in the wrong fields: it is reported instead of imported."""
    surplus = len(record.get(None) or [])
    missing = sum(1 for key, value in record.items() if key is not None and value is None)
    if not surplus and not missing:
        return None
    hint = "" if escapechar else " (quotes escaped with a backslash? try --csv-escape '\\')"
    return f"expected {columns} fields, found {columns + surplus - missing}: check the quoting{hint}"


def read_csv(path: Path, mapping: dict[str, str], escapechar: str | None = None) -> Iterator[ImportRow]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, escapechar=escapechar)
        for record in reader:
            line_no = reader.line_num
            if error := _field_count_error(record, len(reader.fieldnames or ()), escapechar):
                yield ImportRow(line_no, error=error)
                continue
            try:
                yield ImportRow(line_no, normalise(_mapped(record, mapping)))
            except RowError as exc:
                yield ImportRow(line_no, error=str(exc))


def read_shopify(path: Path, mapping: dict[str, str], escapechar: str | None = None) -> Iterator[ImportRow]:
    """Shopify's product export: one row per variant, grouped by Handle; options named Size/Color
    become the product's sizes and colors, price is the lowest variant price (None when no
    variant has one), stock their sum."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, escapechar=escapechar)
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


def read(path: Path, fmt: Format, mapping: dict[str, str] | None = None,
         escapechar: str | None = None) -> Iterator[ImportRow]:
    """Rows of ``path``. ``escapechar`` (CSV formats only) is the character that escapes a quote
    inside a quoted field, for files written as ``"15\\" screen"`` instead of ``"15"" screen"``."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if escapechar is not None and (fmt == Format.jsonl or len(escapechar) != 1):
        raise ValueError("--csv-escape takes one character and applies to the csv and shopify formats")
    if fmt == Format.jsonl:
        return read_jsonl(path, mapping or {})
    return READERS[fmt](path, mapping or {}, escapechar)
