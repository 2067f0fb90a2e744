"""Turns a shopper's words into a semantic query plus structured filters.

This first cut understands prices and catalog colors; brands, sizes and categories
follow with the spaCy patterns of the search issue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

_NUM = r"\$?\s?(\d+(?:[.,]\d{1,2})?)\s?(?:\$|usd|dollars?|bucks|eur|euros?)?"
_BETWEEN = re.compile(rf"\b(?:between|from)\s+{_NUM}\s+(?:and|to|-)\s+{_NUM}", re.I)
_RANGE = re.compile(rf"{_NUM}\s?(?:-|to)\s?{_NUM}", re.I)
_UNDER = re.compile(rf"\b(?:under|below|less than|cheaper than|max(?:imum)?|up to|no more than|within)\s+{_NUM}", re.I)
_OVER = re.compile(rf"\b(?:over|above|more than|at least|min(?:imum)?)\s+{_NUM}", re.I)
_CHEAP = re.compile(r"\b(?:cheap|cheapest|budget|affordable|inexpensive|low[- ]cost)\b", re.I)
_FILLER = re.compile(
    r"\b(?:i\s*(?:am|'m)\s+looking\s+for|looking\s+for|i\s+(?:want|need)|do\s+you\s+(?:have|sell)|"
    r"show\s+me|can\s+you\s+find|find\s+me|search\s+for|please|pls|plz|some|any|a|an)\b",
    re.I,
)


@dataclass(frozen=True)
class Filters:
    min_price: float | None = None
    max_price: float | None = None
    colors: tuple[str, ...] = ()
    in_stock: bool = False

    def describe(self) -> str:
        parts = []
        if self.min_price is not None and self.max_price is not None:
            parts.append(f"between ${self.min_price:g} and ${self.max_price:g}")
        elif self.max_price is not None:
            parts.append(f"under ${self.max_price:g}")
        elif self.min_price is not None:
            parts.append(f"over ${self.min_price:g}")
        if self.colors:
            parts.append(" or ".join(self.colors))
        return ", ".join(parts)

    def is_empty(self) -> bool:
        return self == Filters()


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    filters: Filters = field(default_factory=Filters)
    wants_cheap: bool = False


def _num(value: str) -> float:
    return float(value.replace(",", "."))


def parse(query: str, known_colors: frozenset[str] = frozenset()) -> ParsedQuery:
    text = query
    filters = Filters()
    if m := _BETWEEN.search(text) or _RANGE.search(text):
        low, high = sorted((_num(m.group(1)), _num(m.group(2))))
        filters = replace(filters, min_price=low, max_price=high)
        text = text.replace(m.group(0), " ")
    else:
        if m := _UNDER.search(text):
            filters = replace(filters, max_price=_num(m.group(1)))
            text = text.replace(m.group(0), " ")
        if m := _OVER.search(text):
            filters = replace(filters, min_price=_num(m.group(1)))
            text = text.replace(m.group(0), " ")
    wants_cheap = bool(_CHEAP.search(text))
    text = _CHEAP.sub(" ", text)
    words = re.findall(r"[a-z]+", text.lower())
    colors = tuple(dict.fromkeys(w for w in words if w in known_colors))
    if colors:
        filters = replace(filters, colors=colors)
    semantic = " ".join(_FILLER.sub(" ", text).split()).strip(" ?.!,")
    return ParsedQuery(semantic or query.strip(), filters, wants_cheap)
