"""Structured product attributes in memory, for filtering inside retrieval.

Filters become a boolean mask indexed by product id in well under a millisecond, which the
dense and lexical indexes apply while they search (never a post-filter after a top-k cut).
Values are compared case-insensitively; a category filter matches any level of the category
path ("Jackets" matches "Clothing > Jackets"). Exclusions ("not Nike", "no Boots") remove the
products with that value; an excluded material also removes products whose material or title
has the word ("not leather" removes "vegan leather" and a "Leather Belt" without a material).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.tables import Product
from bot.search.query import Filters

_WORD = re.compile(r"[a-z0-9]+")


def _key(value: str) -> str:
    return " ".join(value.lower().split())


def _words(value: str) -> set[str]:
    return set(_WORD.findall(value.lower()))


@dataclass
class Facets:
    size: int = 0  # length of the id-indexed arrays (max id + 1)
    exists: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    price: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # NaN: no price
    rating: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    stock: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    rating_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    postings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # field -> value key -> ids
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> value key -> catalog spelling
    # title word -> ids, for the words of catalog materials only ("not leather" and a "Leather Belt")
    title_words: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Facets:
        rows = session.execute(select(
            Product.id, Product.price, Product.rating, Product.rating_count, Product.stock, Product.brand,
            Product.category,
            Product.color, Product.material, Product.gender, Product.sizes, Product.title,
        )).all()
        size = (max((r.id for r in rows), default=0) + 1) if rows else 0
        facets = cls(size, np.zeros(size, bool), np.full(size, np.nan, np.float32), np.zeros(size, np.float32),
                     np.zeros(size, np.int32), np.zeros(size, np.int32))
        postings: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        names: dict[str, dict[str, str]] = defaultdict(dict)

        def post(name: str, value: str, pid: int) -> None:
            key = _key(value)
            postings[name][key].append(pid)
            names[name].setdefault(key, " ".join(value.split()))

        for r in rows:
            facets.exists[r.id] = True
            if r.price is not None:
                facets.price[r.id] = r.price
            facets.rating[r.id] = r.rating or 0.0
            facets.stock[r.id] = r.stock or 0
            facets.rating_count[r.id] = r.rating_count or 0
            for name, value in (("brand", r.brand), ("color", r.color), ("material", r.material),
                                ("gender", r.gender)):
                if value and value.strip():
                    post(name, value, r.id)
            for level in (r.category or "").split(">"):
                if level.strip():
                    post("category", level, r.id)
            for value in r.sizes or []:
                if str(value).strip():
                    post("size", str(value), r.id)
        facets.postings = {name: {v: np.asarray(ids, np.int64) for v, ids in values.items()}
                           for name, values in postings.items()}
        facets.names = dict(names)
        material_words = {w for value in postings.get("material", {}) for w in _words(value)}
        titles: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            for word in _words(r.title or "") & material_words:
                titles[word].append(r.id)
        facets.title_words = {w: np.asarray(ids, np.int64) for w, ids in titles.items()}
        return facets

    def vocabulary(self) -> dict[str, list[str]]:
        """Every filterable value of the catalog, as the catalog spells it (for query parsing)."""
        return {name: sorted(values.values(), key=str.lower) for name, values in sorted(self.names.items())}

    def count(self, name: str, value: str) -> int:
        ids = self.postings.get(name, {}).get(_key(value))
        return 0 if ids is None else len(ids)

    def _any_of(self, name: str, values: tuple[str, ...]) -> np.ndarray:
        mask = np.zeros(self.size, bool)
        table = self.postings.get(name, {})
        for value in values:
            ids = table.get(_key(value))
            if ids is not None:
                mask[ids] = True
        return mask

    def _having_material(self, materials: tuple[str, ...]) -> np.ndarray:
        """Products whose material or title has any of these materials' words ("leather": "vegan leather")."""
        mask = np.zeros(self.size, bool)
        for material in materials:
            wanted = _words(material)
            if not wanted:
                continue
            for value, ids in self.postings.get("material", {}).items():
                if wanted <= _words(value):
                    mask[ids] = True
            in_title = np.ones(self.size, bool)
            for word in wanted:
                has = np.zeros(self.size, bool)
                if (title_ids := self.title_words.get(word)) is not None:
                    has[title_ids] = True
                in_title &= has
            mask |= in_title
        return mask

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Products that satisfy every filter, or None when there is no filter at all."""
        if filters.is_empty():
            return None
        mask = self.exists.copy()
        with np.errstate(invalid="ignore"):  # NaN prices compare False: no price fails a price filter
            if filters.min_price is not None:
                mask &= self.price >= filters.min_price
            if filters.max_price is not None:
                mask &= self.price <= filters.max_price
        if filters.min_rating is not None:
            mask &= self.rating >= filters.min_rating
        if filters.in_stock:
            mask &= self.stock > 0
        for name, values in (("brand", filters.brands), ("category", filters.categories),
                             ("color", filters.colors), ("size", filters.sizes), ("gender", filters.genders),
                             ("material", filters.materials)):
            if values:
                if name == "gender":  # unisex products suit everyone
                    values = (*values, "unisex")
                mask &= self._any_of(name, values)
        for name, values in (("brand", filters.exclude_brands), ("category", filters.exclude_categories),
                             ("color", filters.exclude_colors)):
            if values:
                mask &= ~self._any_of(name, values)
        if filters.exclude_materials:
            mask &= ~self._having_material(filters.exclude_materials)
        if filters.exclude_ids:
            excluded = np.asarray([i for i in filters.exclude_ids if 0 <= i < self.size], np.int64)
            mask[excluded] = False
        return mask
