"""Relevance sets for ``bench search``: products, queries and graded judgements.

Two layouts are read:

- a folder with ``products.jsonl``, ``queries.tsv`` and ``qrels.tsv`` (search-dev's layout);
- a folder with ``set.json``, ``queries.tsv`` and ``qrels.tsv`` whose products come from a catalog file
  that is not in the project (the shop's or ``../shared/datasets/catalogs``): ``set.json`` names the
  file, its format and the column mapping of ``python -m bot catalog import``, and the folder where
  catalogs live is given by the user (``--catalogs``).

``qrels.tsv`` grades a query's products from 0 (irrelevant) up, 3 being exactly what was asked in our
sets; fractional gains (the mean of several raters' grades) are read as they are. Products not listed
count as 0.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.catalog import importers

SEARCH_DEV_MAPPING = {"id": "sku", "title": "title", "description": "description", "brand": "brand",
                      "category": "category", "price": "price"}


class RelevanceSetError(ValueError):
    """A relevance set that cannot be read: says which file and why."""


@dataclass(frozen=True)
class RelevanceSet:
    name: str
    products: list[dict[str, Any]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]


def _read_tsv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.exists():
        raise RelevanceSetError(f"{path} is missing")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows and not set(columns) <= set(rows[0]):
        raise RelevanceSetError(f"{path}: the header must name {', '.join(columns)}")
    return rows


def _products(path: Path, fmt: importers.Format, mapping: dict[str, str], escapechar: str | None
              ) -> list[dict[str, Any]]:
    by_sku: dict[str, dict[str, Any]] = {}  # a later row with the same SKU updates the product, as an import does
    for row in importers.read(path, fmt, mapping, escapechar):
        if row.error:
            raise RelevanceSetError(f"{path} line {row.line}: {row.error}")
        if row.product:
            by_sku[row.product["sku"]] = row.product
    return list(by_sku.values())


def load_products(directory: Path, catalogs: Path | None = None) -> list[dict[str, Any]]:
    """The products of the set in ``directory``; ``catalogs`` is where a ``set.json`` set finds its catalog."""
    spec_path = directory / "set.json"
    if spec_path.exists():
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            catalog, fmt = spec["catalog"], importers.Format(spec.get("format", "csv"))
            mapping = importers.parse_mapping(spec["map"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RelevanceSetError(f"{spec_path}: {exc}") from exc
        if catalogs is None:
            raise RelevanceSetError(f"{directory.name} reads its products from {catalog}: say where the catalogs "
                                    "are (--catalogs DIR)")
        source = catalogs / catalog
        if not source.exists():
            raise RelevanceSetError(f"{directory.name} needs the catalog {source}, which does not exist")
        return _products(source, fmt, mapping, spec.get("csv_escape"))
    return _products(directory / "products.jsonl", importers.Format.jsonl, SEARCH_DEV_MAPPING, None)


def load_queries(directory: Path) -> dict[str, str]:
    return {r["query_id"]: r["query"] for r in _read_tsv(directory / "queries.tsv", ("query_id", "query"))}


def load(directory: Path, catalogs: Path | None = None) -> RelevanceSet:
    """The set in ``directory``; ``catalogs`` is where a ``set.json`` set finds its catalog file."""
    products = load_products(directory, catalogs)
    queries = load_queries(directory)
    qrels: dict[str, dict[str, float]] = {}
    path = directory / "qrels.tsv"
    for number, r in enumerate(_read_tsv(path, ("query_id", "product_id", "gain")), start=2):
        try:
            gain = float(r["gain"])
        except (TypeError, ValueError):
            raise RelevanceSetError(f"{path} line {number}: gain {r['gain']!r} is not a number") from None
        if not math.isfinite(gain) or gain < 0:
            raise RelevanceSetError(f"{path} line {number}: gain {r['gain']!r} must be 0 or more")
        if r["query_id"] not in queries:
            raise RelevanceSetError(f"{path} line {number}: query {r['query_id']!r} is not in queries.tsv")
        qrels.setdefault(r["query_id"], {})[r["product_id"]] = gain
    return RelevanceSet(directory.name, products, queries, qrels)
