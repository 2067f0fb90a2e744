"""Catalog importers: formats, mappings, row errors with line numbers, idempotent upserts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.catalog import importers
from bot.catalog.importers import Format
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared" / "datasets" / "catalogs"
FASHION_MAP = ["ProductID=sku", "ProductName=title", "ProductBrand=brand", "Gender=gender", "Price (INR)=price",
               "Description=description", "PrimaryColor=color"]
# Two columns into description: their non-empty values are joined in this order. The file escapes
# quotes as \" rather than "", hence --csv-escape '\'. It has no prices.
ELECTRONICS_MAP = ["upc=sku", "name=title", "manufacturer=brand", "short_description=description",
                   "long_description=description"]


def test_shopify_variants_become_sizes_colors_price_and_stock() -> None:
    rows = list(importers.read(FIXTURES / "shopify_products.csv", Format.shopify))
    good = {r.product["sku"]: r.product for r in rows if r.product}
    parka = good["trail-parka"]
    assert parka["sizes"] == ["S", "M", "L"]
    assert parka["color"] == "Blue" and parka["attributes"] == {"colors": ["Blue", "Red"]}
    assert parka["price"] == 89.0 and parka["stock"] == 5
    assert parka["description"] == "Warm waterproof parka & hood"
    assert good["city-tee"]["sizes"] == ["M"]
    assert good["broken-item"]["price"] is None  # no variant price: imported, "Price on request"
    assert [(r.line, r.error) for r in rows if r.error] == []


def test_generic_csv_with_mapping_reports_bad_rows_by_line() -> None:
    rows = list(importers.read(FIXTURES / "generic_products.csv", Format.csv, importers.parse_mapping(FASHION_MAP)))
    assert [r.product["sku"] for r in rows if r.product] == ["1001", "1004"]
    assert [(r.line, r.error) for r in rows if r.error] == [(3, "missing title"), (4, "price 'abc' is not a number")]


def test_jsonl_rows(tmp_path: Path) -> None:
    path = tmp_path / "products.jsonl"
    path.write_text("\n".join([
        json.dumps({"sku": "A1", "title": "Lamp", "price": "24.50", "sizes": "S|M", "rating": 4.5}),
        "{not json",
        json.dumps({"sku": "A2", "title": "Mug", "price": 8, "rating": 9}),
        json.dumps(["a list"]),
    ]))
    rows = list(importers.read(path, Format.jsonl))
    assert rows[0].product == {"sku": "A1", "title": "Lamp", "price": 24.5, "description": "", "sizes": ["S", "M"],
                               "rating": 4.5}
    assert rows[1].line == 2 and "Expecting property name" in rows[1].error
    assert rows[2].error == "rating 9.0 is outside 0..5"
    assert rows[3].error == "not a JSON object"


def test_bad_mapping_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="use COLUMN=FIELD"):
        importers.parse_mapping(["ProductName=name"])


def _cli(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    return subprocess.run([sys.executable, "-m", "bot", "catalog", "import", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_import_is_idempotent_and_keeps_good_rows(tmp_path: Path) -> None:
    db = tmp_path / "import.sqlite3"
    first = _cli(str(FIXTURES / "shopify_products.csv"), "--format", "shopify", db=db)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 inserted, 0 updated, 0 unchanged, 0 rejected" in first.stdout
    again = _cli(str(FIXTURES / "shopify_products.csv"), "--format", "shopify", db=db)
    assert "0 inserted, 0 updated, 3 unchanged, 0 rejected" in again.stdout


OPTIONAL_PRICES_MAP = [*ELECTRONICS_MAP, "price=price"]


def test_rows_without_price_import_and_a_bad_price_is_a_line_numbered_error() -> None:
    mapping = importers.parse_mapping(OPTIONAL_PRICES_MAP)
    rows = list(importers.read(FIXTURES / "optional_prices.csv", Format.csv, mapping, escapechar="\\"))
    good = {r.product["sku"]: r.product for r in rows if r.product}
    assert [(r.line, r.error) for r in rows if r.error] == [(5, "price 'twelve' is not a number")]
    # a UPC stays a string with its leading zero; whitespace-only fields are empty
    assert good["096009010836"] == {"sku": "096009010836", "title": "Fists of Bruce Lee - Dolby - DVD",
                                    "price": None, "description": "", "brand": ""}
    assert good["067003016025"]["price"] is None and good["067003016025"]["brand"] == "Nettwerk"
    assert good["067003016025"]["description"] == "Folk-pop album Second album of the band"
    assert good["1003"]["price"] == 24.5 and good["1003"]["description"] == "LED desk lamp"
    assert good["1005"]["title"] == 'TV Stand for TVs Up to 70"' and good["1005"]["price"] == 199.0


def test_misquoted_csv_row_is_reported_not_imported_shifted() -> None:
    mapping = importers.parse_mapping(OPTIONAL_PRICES_MAP)
    rows = list(importers.read(FIXTURES / "optional_prices.csv", Format.csv, mapping))
    errors = {r.line: r.error for r in rows if r.error}
    assert errors[6].startswith("expected 6 fields, found 5: check the quoting") and "--csv-escape" in errors[6]


def test_mapping_joins_text_fields_only() -> None:
    assert importers.parse_mapping(ELECTRONICS_MAP)["long_description"] == "description"
    with pytest.raises(ValueError, match="only one column can map to price"):
        importers.parse_mapping(["Price=price", "Sale price=price"])
    with pytest.raises(ValueError, match="already mapped"):
        importers.parse_mapping(["name=title", "name=description"])


def test_cli_imports_price_less_rows_and_rejects_a_bad_price(tmp_path: Path) -> None:
    db = tmp_path / "optional.sqlite3"
    args = [str(FIXTURES / "optional_prices.csv"), "--format", "csv", "--csv-escape", "\\"]
    result = _cli(*args, *(a for m in OPTIONAL_PRICES_MAP for a in ("--map", m)), db=db)
    assert result.returncode == 1  # one bad row
    assert "4 inserted, 0 updated, 0 unchanged, 1 rejected" in result.stdout
    assert "optional_prices.csv:5: price 'twelve' is not a number" in result.stdout + result.stderr
    with sqlite3.connect(db) as conn:
        prices = dict(conn.execute("SELECT sku, price FROM products"))
    assert prices == {"096009010836": None, "067003016025": None, "1003": 24.5, "1005": 199.0}


@pytest.mark.skipif(not (SHARED / "retrotech_electronics.csv").exists(), reason="../shared datasets are not present")
def test_real_electronics_catalog_imports_without_prices(tmp_path: Path) -> None:
    db = tmp_path / "electronics.sqlite3"
    args = [str(SHARED / "retrotech_electronics.csv"), "--format", "csv", "--csv-escape", "\\"]
    result = _cli(*args, *(a for m in ELECTRONICS_MAP for a in ("--map", m)), db=db)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # 48,194 rows; 2,038 of them repeat an earlier row's UPC (another edition) and update that product
    assert "46156 inserted, 2038 updated, 0 unchanged, 0 rejected" in result.stdout
    with sqlite3.connect(db) as conn:
        count, priced = conn.execute("SELECT count(*), count(price) FROM products").fetchone()
        rows = {sku: (title, brand, price) for sku, title, brand, price in conn.execute(
            "SELECT sku, title, brand, price FROM products WHERE sku IN ('096009010836', '067003016025')")}
        stand = conn.execute("SELECT title, brand FROM products WHERE sku = '634878802406'").fetchone()
    assert count == 46156 and priced == 0
    assert rows == {"096009010836": ("Fists of Bruce Lee - Dolby - DVD", "", None),
                    "067003016025": ("Summerbreeze - CD", "Nettwerk", None)}
    assert stand == ('Salamander Designs - Synergy 237 TV Stand for Most Flat-Panel or DLP TVs Up to 70"',
                     "Salamander Designs")  # a \" in the file, read with --csv-escape


@pytest.mark.skipif(not SHARED.exists(), reason="../shared datasets are not present")
def test_real_fashion_catalog_imports(tmp_path: Path) -> None:
    args = [str(SHARED / "myntra_fashion.csv"), "--format", "csv"] + [a for m in FASHION_MAP for a in ("--map", m)]
    result = _cli(*args, db=tmp_path / "fashion.sqlite3")
    summary = result.stdout.strip().splitlines()[-2]
    inserted = int(summary.split(": ", 1)[1].split(" inserted")[0])
    assert inserted > 12000, result.stdout[-2000:] + result.stderr[-2000:]
