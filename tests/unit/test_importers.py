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
    assert parka["sizes"] == ["S", "M"]  # L (only in Red) has no stock: neither is offered
    assert parka["color"] == "Blue" and parka["attributes"] == {}
    assert parka["price"] == 89.0 and parka["stock"] == 5
    assert [(v["sku"], v["size"], v["color"], v["price"], v["stock"]) for v in parka["variants"]] == [
        ("TP-S-B", "S", "Blue", 89.0, 3), ("TP-M-B", "M", "Blue", 89.0, 2), ("TP-L-R", "L", "Red", 94.5, 0)]
    assert parka["description"] == "Warm waterproof parka & hood"
    assert good["city-tee"]["sizes"] == ["M"]
    assert good["broken-item"]["price"] is None  # no variant price: imported, "Price on request"
    assert good["broken-item"]["variants"] == []  # Shopify's "Default Title": sold as one item
    assert [(r.line, r.error) for r in rows if r.error] == []


def test_a_shopify_product_is_one_product_with_a_variant_per_row() -> None:
    """Per-variant SKU, price and stock; only the sizes and colors in stock are offered; an image-only row
    is no variant."""
    rows = list(importers.read(FIXTURES / "shopify_variants.csv", Format.shopify))
    assert [(r.line, r.error) for r in rows if r.error] == []
    good = {r.product["sku"]: r.product for r in rows if r.product}
    runner = good["trail-runner"]
    assert runner["sizes"] == ["8", "9", "11"]  # size 10 has 0 in stock
    assert runner["stock"] == 11 and runner["price"] == 90.0
    assert [(v["sku"], v["size"], v["price"], v["stock"]) for v in runner["variants"]] == [
        ("TR-8-BLK", "8", 90.0, 2), ("TR-9-BLK", "9", 90.0, 5), ("TR-10-BLK", "10", 90.0, 0),
        ("TR-11-BLK", "11", 99.0, 4)]
    assert runner["variants"][0]["options"] == {"Size": "8", "Color": "Black"}
    parka = good["city-parka"]
    assert parka["sizes"] == ["M", "L"] and parka["attributes"] == {"colors": ["Blue", "Red"]}
    assert parka["price"] == 120.0 and parka["stock"] == 6


HEADER = ("Handle,Title,Body (HTML),Vendor,Type,Option1 Name,Option1 Value,Variant SKU,Variant Price,"
          "Variant Inventory Qty\n")
UNCLOSED_AT_THE_END = HEADER + """mug,Camp Mug,Enamel mug,Acme,Kitchen,Size,One,MUG-1,12.00,5
lamp,Desk Lamp,"LED lamp, warm light,Lumo,Home,Size,One,LAMP-1,24.00,3
scarf,Wool Scarf,Soft scarf,Acme,Accessories,Size,One,SCARF-1,20.00,4
hat,Wool Hat,Warm hat,Acme,Accessories,Size,One,HAT-1,15.00,2
"""
# The quote opened on line 3 is closed by the quotes of line 4, so the record has the right number of fields.
UNCLOSED_THEN_CLOSED = HEADER + """mug,Camp Mug,Enamel mug,Acme,Kitchen,Size,One,MUG-1,12.00,5
lamp,Desk Lamp,"LED lamp, warm light,Lumo,Home,Size,One,LAMP-1,24.00,3
tee,City Tee,"Organic cotton",Acme,Clothing,Size,S,TEE-S,19.00,4
tee,,,,,,M,TEE-M,19.00,6
hat,Wool Hat,Warm hat,Acme,Accessories,Size,One,HAT-1,15.00,2
"""


@pytest.mark.parametrize(("text", "rejected", "imported"), [
    (UNCLOSED_AT_THE_END, [(3, 5, "a quote opened on line 3 is never closed: lines 3-5 (to the end of the file) "
                                  "were read as one row; none of them is imported")], ["mug"]),
    (UNCLOSED_THEN_CLOSED, [(3, 4, "a quoted value opened on line 3 runs on to line 4 and takes in line 4, which reads "
                                   "as a row of its own (a quote not closed on line 3?); lines 3-4 are rejected, none "
                                   "of them is imported"),
                            (5, None, "product 'tee' is not imported: its row on line 4 could not be read")],
     ["mug", "hat"]),
])
def test_an_unclosed_quote_is_rejected_with_its_lines_and_nothing_half_parsed_goes_in(
        tmp_path: Path, text: str, rejected: list[tuple[int, int | None, str]], imported: list[str]) -> None:
    path = tmp_path / "products.csv"
    path.write_text(text)
    rows = list(importers.read(path, Format.shopify))
    assert [(r.line, r.end_line, r.error) for r in rows if r.error] == rejected
    assert [r.product["sku"] for r in rows if r.product] == imported
    # the generic reader rejects the same lines
    mapping = importers.parse_mapping(["Handle=sku", "Title=title", "Variant Price=price"])
    generic = list(importers.read(path, Format.csv, mapping))
    assert next((r.line, r.end_line) for r in generic if r.error) == (3, rejected[0][1])
    assert "lamp" not in [r.product["sku"] for r in generic if r.product]


def test_a_short_row_is_rejected_not_imported_without_its_price(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text(HEADER + "mug,Camp Mug,Enamel mug,Acme,Kitchen,Size,One,MUG-1,12.00,5\n"
                    + "lamp,Desk Lamp,LED lamp,Lumo,Home,Size,One,LAMP-1\n")
    rows = list(importers.read(path, Format.shopify))
    assert [(r.line, r.error) for r in rows if r.error] == [
        (3, "expected 10 fields, found 8: check the quoting (quotes escaped with a backslash? try --csv-escape '\\')")]
    assert [r.product["sku"] for r in rows if r.product] == ["mug"]


def test_cli_reports_the_rejected_lines_and_imports_only_whole_rows(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text(UNCLOSED_THEN_CLOSED)
    db = tmp_path / "unclosed.sqlite3"
    result = _cli(str(path), "--format", "shopify", db=db)
    assert result.returncode == 1
    assert "2 inserted, 0 updated, 0 unchanged, 2 rejected (lines 3-4, 5)" in result.stdout
    assert f"{path}:3-4: a quoted value opened on line 3" in result.stdout + result.stderr
    with sqlite3.connect(db) as conn:
        assert sorted(sku for (sku,) in conn.execute("SELECT sku FROM products")) == ["hat", "mug"]
        assert sorted(sku for (sku,) in conn.execute("SELECT sku FROM product_variants")) == ["HAT-1", "MUG-1"]


def test_cli_imports_variants_idempotently_and_updates_their_stock(tmp_path: Path) -> None:
    db = tmp_path / "variants.sqlite3"
    first = _cli(str(FIXTURES / "shopify_variants.csv"), "--format", "shopify", db=db)
    assert "2 inserted, 0 updated, 0 unchanged, 0 rejected" in first.stdout, first.stdout + first.stderr
    again = _cli(str(FIXTURES / "shopify_variants.csv"), "--format", "shopify", db=db)
    assert "0 inserted, 0 updated, 2 unchanged, 0 rejected" in again.stdout
    restocked = tmp_path / "restocked.csv"  # size 10 is back, size 8 sold out
    text = (FIXTURES / "shopify_variants.csv").read_text()
    restocked.write_text(text.replace("TR-10-BLK,90.00,0", "TR-10-BLK,90.00,7").replace("TR-8-BLK,90.00,2",
                                                                                        "TR-8-BLK,90.00,0"))
    third = _cli(str(restocked), "--format", "shopify", db=db)
    assert "0 inserted, 1 updated, 1 unchanged, 0 rejected" in third.stdout
    with sqlite3.connect(db) as conn:
        sizes, stock = conn.execute("SELECT sizes, stock FROM products WHERE sku = 'trail-runner'").fetchone()
        variants = conn.execute("SELECT v.sku, v.stock FROM product_variants v JOIN products p ON p.id = v.product_id "
                                "WHERE p.sku = 'trail-runner' ORDER BY v.position").fetchall()
    assert json.loads(sizes) == ["9", "10", "11"] and stock == 16
    assert variants == [("TR-8-BLK", 0), ("TR-9-BLK", 5), ("TR-10-BLK", 7), ("TR-11-BLK", 4)]


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


def test_a_bad_variant_rejects_its_product_at_the_variant_line(tmp_path: Path) -> None:
    path = tmp_path / "variants.csv"
    path.write_text(HEADER + "mug,Camp Mug,,Acme,Kitchen,Size,S,MUG-S,12.00,5\n"
                             "mug,,,,,,M,MUG-M,twelve,5\n"
                             "cup,Cup,,Acme,Kitchen,Size,S,CUP-S,8.00,5\n"
                             "jar,Jar,,Acme,Kitchen,Size,S,CUP-S,9.00,5\n")
    rows = list(importers.read(path, Format.shopify))
    assert [(r.line, r.error) for r in rows if r.error] == [
        (3, "Variant Price 'twelve' is not a number (product 'mug' is not imported)"),
        (5, "variant SKU 'CUP-S' is already used by product 'cup' on line 4 (product 'jar' is not imported)")]
    assert [r.product["sku"] for r in rows if r.product] == ["cup"]
