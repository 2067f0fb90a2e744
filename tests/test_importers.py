"""Catalog importers: formats, mappings, row errors with line numbers, idempotent upserts."""

from __future__ import annotations

import json
import os
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


def test_shopify_variants_become_sizes_colors_price_and_stock() -> None:
    rows = list(importers.read(FIXTURES / "shopify_products.csv", Format.shopify))
    good = {r.product["sku"]: r.product for r in rows if r.product}
    parka = good["trail-parka"]
    assert parka["sizes"] == ["S", "M", "L"]
    assert parka["color"] == "Blue" and parka["attributes"] == {"colors": ["Blue", "Red"]}
    assert parka["price"] == 89.0 and parka["stock"] == 5
    assert parka["description"] == "Warm waterproof parka & hood"
    assert good["city-tee"]["sizes"] == ["M"]
    errors = [(r.line, r.error) for r in rows if r.error]
    assert errors == [(6, "missing price")]


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
    assert first.returncode == 1  # one bad row
    assert "2 inserted, 0 updated, 0 unchanged, 1 rejected" in first.stdout
    assert "shopify_products.csv:6: missing price" in first.stdout + first.stderr
    again = _cli(str(FIXTURES / "shopify_products.csv"), "--format", "shopify", db=db)
    assert "0 inserted, 0 updated, 2 unchanged, 1 rejected" in again.stdout


@pytest.mark.skipif(not SHARED.exists(), reason="../shared datasets are not present")
def test_real_fashion_catalog_imports(tmp_path: Path) -> None:
    args = [str(SHARED / "myntra_fashion.csv"), "--format", "csv"] + [a for m in FASHION_MAP for a in ("--map", m)]
    result = _cli(*args, db=tmp_path / "fashion.sqlite3")
    summary = result.stdout.strip().splitlines()[-2]
    inserted = int(summary.split(": ", 1)[1].split(" inserted")[0])
    assert inserted > 12000, result.stdout[-2000:] + result.stderr[-2000:]
