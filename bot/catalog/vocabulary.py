"""The catalog's vocabulary: every brand, color, category, material, size and gender it uses.

Two consumers: the spaCy query parser (``bot.search.query``) and Rasa, which gets the same values as
lookup tables (``data/nlu/lookups.yml``, written by :func:`write_rasa_lookups`) so that DIET sees a
"this word is a catalog brand/color/..." feature for values it never saw in a training example.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.catalog.tables import Product

ENTITIES: tuple[str, ...] = ("brand", "color", "category", "material", "size", "gender")
LOOKUPS_FILE = Path("data") / "nlu" / "lookups.yml"
CATEGORY_SEPARATOR = ">"

# Names whose last word is plural but has no singular ("jeans"), or has no plural ("yoga").
_NO_SINGULAR = frozenset({
    "jeans", "trousers", "pants", "shorts", "leggings", "tights", "pajamas", "pyjamas", "overalls", "sunglasses",
    "glasses", "goggles", "scissors", "tongs", "pliers", "binoculars", "headphones", "earphones", "earbuds",
    "electronics", "clothes", "sports", "athletics", "gymnastics", "cosmetics", "toiletries", "groceries", "news",
})
_NO_PLURAL = frozenset({
    "clothing", "apparel", "footwear", "outerwear", "sportswear", "swimwear", "underwear", "nightwear", "knitwear",
    "lingerie", "jewelry", "jewellery", "luggage", "furniture", "bedding", "cookware", "bakeware", "tableware",
    "kitchenware", "glassware", "homeware", "hardware", "software", "equipment", "gear", "skincare", "haircare",
    "makeup", "beauty", "health", "fitness", "yoga", "home", "garden", "kitchen", "decor", "lighting", "audio",
    "stationery", "media", "music", "travel", "outdoor", "outdoors", "fashion", "baby", "food", "coffee", "tea",
})
# "-ies" plurals whose singular ends in "-ie", not "-y".
_IE_SINGULAR = frozenset({"hoodies", "beanies", "onesies", "booties", "cookies", "movies", "ties", "pies", "selfies"})


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _inflect(word: str) -> str | None:
    """The other number of one lower-case word (singular <-> plural) when it is obvious, else None."""
    if len(word) < 3 or not word.isascii() or not word.replace("-", "").isalpha():
        return None
    if word in _NO_SINGULAR or word in _NO_PLURAL:
        return None
    if word.endswith("ies"):
        return word[:-1] if word in _IE_SINGULAR else word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zzes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word + "es" if word.endswith("ss") else None
    if word.endswith("s"):
        return word[:-1]
    if word.endswith(("ch", "sh", "x", "z")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("ware", "wear")) or (word.endswith("ing") and len(word) > 5):
        return None  # mass nouns: "cookware", "bedding" (but "rings")
    return word + "s"


def category_forms(name: str) -> list[str]:
    """A category name and, where obvious, its other number in lower case: "Jackets" -> "jacket"."""
    name = _clean(name)
    if not name:
        return []
    head, _, last = name.lower().rpartition(" ")
    other = _inflect(last)
    return [name] if other is None else [name, f"{head} {other}".strip()]


def _natural_key(value: str) -> tuple[tuple[int, int, str], ...]:
    """Sorts "8" before "10" and otherwise case-insensitively, with the exact spelling last."""
    parts = re.split(r"(\d+)", value.casefold())
    return (*((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p), (2, 0, value))


def _unique(counts: Counter[str], extra: Iterable[str] = ()) -> list[str]:
    """One spelling per value (case-insensitively): the catalog's most frequent, generated forms last."""
    chosen: dict[str, str] = {}
    for value, _count in sorted(counts.items(), key=lambda kv: (-kv[1], _natural_key(kv[0]))):
        if value:
            chosen.setdefault(value.casefold(), value)
    for value in extra:
        if value:
            chosen.setdefault(value.casefold(), value)
    return sorted(chosen.values(), key=_natural_key)


def catalog_vocabulary(session: Session) -> dict[str, list[str]]:
    """Every brand, color, category, material, size and gender the ``products`` table uses.

    Values are stripped (inner whitespace collapsed), de-duplicated case-insensitively (the most frequent
    catalog spelling wins), empty ones dropped, and sorted (numbers numerically). ``category`` holds the
    last segment of each category path ("Clothing > Jackets" -> "Jackets"), the department names
    ("Clothing"), and their obvious singular or plural forms in lower case ("jacket").
    """
    counts: dict[str, Counter[str]] = {name: Counter() for name in ENTITIES}
    for name in ("brand", "color", "material", "gender", "category"):
        column = getattr(Product, name)
        for value, count in session.execute(select(column, func.count()).group_by(column)):
            counts[name][_clean(value)] += int(count)
    paths = counts.pop("category")
    counts["category"] = Counter()
    for path, count in paths.items():
        segments = [_clean(s) for s in path.split(CATEGORY_SEPARATOR)]
        segments = [s for s in segments if s]
        if segments:
            counts["category"][segments[-1]] += count
            counts["category"][segments[0]] += count
    for sizes in session.scalars(select(Product.sizes)):
        for size in sizes or []:
            counts["size"][_clean(size)] += 1
    vocabulary = {name: _unique(counts[name]) for name in ENTITIES if name != "category"}
    forms = [form for value in counts["category"] for form in category_forms(value)[1:]]
    vocabulary["category"] = _unique(counts["category"], sorted(forms, key=_natural_key))
    return {name: vocabulary[name] for name in ENTITIES}


def rasa_lookups_yaml(vocabulary: Mapping[str, Iterable[str]]) -> str:
    """The Rasa 3 NLU file with one lookup table per entity, always the same text for the same vocabulary.

    One-letter values are left out (see the header); an entity with no values gets no table.
    """
    lines = [
        "# Generated by `python -m bot catalog lookups` from the product catalog; do not edit by hand.",
        "# `python -m bot setup-data` refreshes it too. Longest values come first so that a lookup regex",
        "# prefers \"wool blend\" to \"wool\". One-letter values (sizes S, M, L) are left out: matched without",
        "# case they would mark the \"s\" of every \"what's\"; DIET learns them from the annotated examples.",
        'version: "3.1"',
        "nlu:",
    ]
    names = [n for n in ENTITIES if n in vocabulary] + sorted(n for n in vocabulary if n not in ENTITIES)
    for name in names:
        values = {v for v in map(_clean, vocabulary[name]) if len(v) > 1 or v.isdigit()}
        if not values:
            continue  # Rasa rejects an empty lookup table
        lines += [f"- lookup: {name}", "  examples: |"]
        lines += [f"    - {v}" for v in sorted(values, key=lambda v: (-len(v), _natural_key(v)))]
    return "\n".join(lines) + "\n"


def write_rasa_lookups(vocabulary: Mapping[str, Iterable[str]], path: Path) -> bool:
    """Write the lookup tables to ``path``; True when its content changed.

    An identical file is left untouched: it is part of the Rasa model's training fingerprint.
    """
    content = rasa_lookups_yaml(vocabulary)
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
