"""Catalog importers: Shopify product CSV exports, generic CSV with a column mapping, and JSONL.

Every importer yields one :class:`ImportRow` per product with the line it came from, so a bad
row can be reported precisely while the good rows still go in.

A CSV record that cannot be read as one row is rejected whole, with the lines it spans and the
reason, and nothing of it goes in: more or fewer values than the header (a short row, a stray
quote), a quote that is never closed (the file ends inside it), or a quoted value that takes in
later lines which look like rows of their own (an unclosed quote that a later quote happens to close).

A price is optional: a row without one imports with ``price`` None ("price on request"); a price
that is present but not a number is a row error. Values that are only whitespace count as empty.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as default
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

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
    end_line: int | None = None  # the last line of a record that spans several lines

    @property
    def lines(self) -> str:
        """"5", or "3-5" for a record over several lines."""
        return f"{self.line}-{self.end_line}" if self.end_line and self.end_line > self.line else str(self.line)


class RowError(ValueError):
    pass


class _RowErrorAt(RowError):
    """A RowError about one of a product's several rows (a Shopify variant)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


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


def _field_count_error(found: int, columns: int, escapechar: str | None) -> str:
    """A row with more or fewer values than the header is misquoted or cut short, so its values are
    in the wrong fields (a short row would go in without its price): it is reported, not imported."""
    hint = "" if escapechar else " (quotes escaped with a backslash? try --csv-escape '\\')"
    return f"expected {columns} fields, found {found}: check the quoting{hint}"


@dataclass
class _Record:
    """One CSV record: the lines it spans, its values, and why it cannot be imported (None: it can)."""

    start: int
    end: int
    values: list[str]
    error: str | None = None
    # lines inside a quoted value that read as rows of their own: (line number, their values)
    swallowed: list[tuple[int, list[str]]] = default(default_factory=list)

    def row(self, error: str | None = None, product: dict[str, Any] | None = None) -> ImportRow:
        return ImportRow(self.start, product, error, self.end if self.end > self.start else None)


class _Lines:
    """The file's lines for the csv reader, counted, and kept until the record they belong to is read."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.count = 0
        self.eof = False
        self.pending: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._handle)
        except StopIteration:
            self.eof = True
            raise
        self.count += 1
        self.pending.append(line)
        return line


class _CsvRecords:
    """The records of a CSV file after its header, each checked (see the module's docstring)."""

    def __init__(self, handle: TextIO, escapechar: str | None) -> None:
        self._lines = _Lines(handle)
        self._escapechar = escapechar
        self._reader = csv.reader(self._lines, escapechar=escapechar)
        self.header = next(self._reader, [])
        self._lines.pending = []

    def __iter__(self) -> Iterator[_Record]:
        start = self._lines.count + 1
        for values in self._reader:
            end, raw, self._lines.pending = self._lines.count, self._lines.pending, []
            if values:  # [] is a blank line
                yield self._checked(_Record(start, end, values), raw)
            start = end + 1

    def _alone(self, line: str) -> list[str]:
        return next(csv.reader([line], escapechar=self._escapechar), [])

    def _checked(self, record: _Record, raw: list[str]) -> _Record:
        columns = len(self.header)
        if record.end > record.start:
            record.swallowed = [(record.start + i, values) for i, line in enumerate(raw[1:], start=1)
                                if len(values := self._alone(line)) == columns]
        if self._lines.eof:  # the reader needed more lines to close a quote and found the end of the file
            last = record.values[-1]
            opened = record.end - last.count("\n") + last.endswith("\n")
            record.error = f"a quote opened on line {opened} is never closed: " + (
                f"lines {record.start}-{record.end} (to the end of the file) were read as one row; none of them "
                "is imported" if record.end > record.start else "the file ends inside it; the row is not imported")
        elif record.swallowed:
            opened = record.start
            for value in record.values:
                if "\n" in value:
                    break
                opened += value.count("\n")
            rows = ", ".join(str(line) for line, _ in record.swallowed)
            taken = (f"lines {rows}, which read as rows of their own" if len(record.swallowed) > 1
                     else f"line {rows}, which reads as a row of its own")
            record.error = (f"a quoted value opened on line {opened} runs on to line {record.end} and takes in "
                            f"{taken} (a quote not closed on line {opened}?); lines {record.start}-{record.end} "
                            "are rejected, none of them is imported")
        elif len(record.values) != columns:
            record.error = _field_count_error(len(record.values), columns, self._escapechar)
        return record


def read_csv(path: Path, mapping: dict[str, str], escapechar: str | None = None) -> Iterator[ImportRow]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = _CsvRecords(handle, escapechar)
        for record in records:
            if record.error:
                yield record.row(record.error)
                continue
            fields = dict(zip(records.header, record.values, strict=True))
            try:
                yield record.row(product=normalise(_mapped(fields, mapping)))
            except RowError as exc:
                yield record.row(str(exc))


SIZE_OPTIONS = ("size", "sizes", "shoe size")
COLOR_OPTIONS = ("color", "colour")
DEFAULT_OPTION = ("title", "default title")  # Shopify's option of a product sold as one item


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _shopify_variants(handle_name: str, rows: list[tuple[int, dict[str, str]]]) -> list[dict[str, Any]]:
    """One dict per variant row (size, color, options, SKU, price, stock); image-only rows are skipped.
    A bad value raises _RowErrorAt with the line of its row."""
    first = rows[0][1]
    names = [(first.get(f"Option{n} Name") or "").strip() for n in (1, 2, 3)]
    variants: list[dict[str, Any]] = []
    for line_no, row in rows:
        values = [(row.get(f"Option{n} Value") or "").strip() for n in (1, 2, 3)]
        sku, price_raw, stock_raw = (row.get("Variant SKU") or "").strip(), row.get("Variant Price"), \
            row.get("Variant Inventory Qty")
        if not any(values) and not sku and _blank(price_raw) and _blank(stock_raw):
            continue  # an extra image of the product
        try:
            price = _number(price_raw, "Variant Price")
            if price is not None and price < 0:
                raise RowError(f"negative Variant Price {price}")
            stock = max(0, _number(stock_raw, "Variant Inventory Qty", int) or 0)
        except RowError as exc:
            raise _RowErrorAt(line_no, str(exc)) from exc
        options = {(row.get(f"Option{n} Name") or "").strip() or names[n - 1] or f"Option{n}": value
                   for n, value in zip((1, 2, 3), values, strict=True) if value}
        if [(k.lower(), v.lower()) for k, v in options.items()] in ([DEFAULT_OPTION], []):
            options = {}
        size = next((v for k, v in options.items() if k.lower() in SIZE_OPTIONS), "")
        color = next((v for k, v in options.items() if k.lower() in COLOR_OPTIONS), "")
        variants.append({"line": line_no, "sku": (sku or "/".join([handle_name, *options.values()]))[:64],
                         "size": size[:20], "color": color[:60], "options": options,
                         "price": None if price is None else round(price, 2), "stock": stock})
    return variants


def _shopify_product(handle_name: str, rows: list[tuple[int, dict[str, str]]], mapping: dict[str, str],
                     skus: dict[str, tuple[str, int]]) -> ImportRow:
    """One product from its rows. With options (sizes, colors), each row is a variant with its own SKU,
    price and stock; the product offers the sizes and colors in stock, its price is the lowest in stock
    (else the lowest), its stock their sum. Without options it is sold as one item, as before."""
    first_line, first = rows[0]
    try:
        variants = _shopify_variants(handle_name, rows)
    except _RowErrorAt as exc:
        return ImportRow(exc.line, error=f"{exc} (product {handle_name!r} is not imported)")
    with_options = [v for v in variants if v["options"]]
    seen: dict[str, int] = {}
    for variant in with_options:
        if variant["sku"] in seen:
            return ImportRow(variant["line"], error=f"variant SKU {variant['sku']!r} is also on line "
                                                    f"{seen[variant['sku']]} (product {handle_name!r} is not imported)")
        if variant["sku"] in skus and skus[variant["sku"]][0] != handle_name:
            other, line = skus[variant["sku"]]
            return ImportRow(variant["line"], error=f"variant SKU {variant['sku']!r} is already used by product "
                                                    f"{other!r} on line {line} "
                                                    f"(product {handle_name!r} is not imported)")
        seen[variant["sku"]] = variant["line"]
    in_stock = [v for v in variants if v["stock"] > 0]
    prices = [v["price"] for v in in_stock if v["price"] is not None] or \
             [v["price"] for v in variants if v["price"] is not None]
    colors = _unique(v["color"] for v in in_stock)
    raw = {
        "sku": handle_name or first.get("Variant SKU"), "title": first.get("Title"),
        "description": first.get("Body (HTML)"), "brand": first.get("Vendor"),
        "category": first.get("Product Category") or first.get("Type"),
        "price": min(prices) if prices else None, "stock": sum(v["stock"] for v in variants),
        "image_url": first.get("Image Src"), "sizes": _unique(v["size"] for v in in_stock),
        "color": next(iter(colors or _unique(v["color"] for v in variants)), None),
    }
    raw.update(_mapped(first, mapping) if mapping else {})
    try:
        product = normalise(raw)
    except RowError as exc:
        return ImportRow(first_line, error=str(exc))
    product["attributes"] = {"colors": colors} if len(colors) > 1 else {}
    product["variants"] = [{k: v for k, v in variant.items() if k != "line"} | {"position": n}
                           for n, variant in enumerate(with_options)]
    skus.update((v["sku"], (handle_name, v["line"])) for v in with_options)
    return ImportRow(first_line, product)


def read_shopify(path: Path, mapping: dict[str, str], escapechar: str | None = None) -> Iterator[ImportRow]:
    """Shopify's product export: one row per variant, grouped by Handle into one product with its
    variants (``_shopify_product``). A product with a row that cannot be read is not imported at all,
    rather than without that variant; nor are the products of rows an unclosed quote took in."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = _CsvRecords(handle, escapechar)
        missing = {"Handle", "Title", "Variant Price"} - set(records.header)
        if missing:
            yield ImportRow(1, error=f"not a Shopify product export: missing columns {', '.join(sorted(missing))}")
            return
        at = records.header.index("Handle")
        groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
        unreadable: dict[str, int] = {}  # handle -> the line of its first row that could not be read
        for record in records:
            if record.error:
                yield record.row(record.error)
                for line, values in [(record.start, record.values), *record.swallowed]:
                    if len(values) > at and values[at].strip():
                        unreadable.setdefault(values[at].strip(), line)
                continue
            row = dict(zip(records.header, record.values, strict=True))
            groups.setdefault(row["Handle"].strip(), []).append((record.start, row))
    skus: dict[str, tuple[str, int]] = {}
    for handle_name, rows in groups.items():
        if handle_name in unreadable:
            yield ImportRow(rows[0][0], error=f"product {handle_name!r} is not imported: its row on line "
                                              f"{unreadable[handle_name]} could not be read")
            continue
        yield _shopify_product(handle_name, rows, mapping, skus)


# The delimited formats; JSON Lines has no escape character and is read by read_jsonl.
READERS: dict[Format, Callable[[Path, dict[str, str], str | None], Iterator[ImportRow]]] = {
    Format.shopify: read_shopify, Format.csv: read_csv}


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
