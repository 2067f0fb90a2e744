"""Resolving what a shopper points at: "the second one", "the last", "the Sony ones", "2 of those"."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10,
}
_CARDINALS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
              "ten": 10}
_NUMBER_REF = re.compile(r"\b(?:number|no\.?|nr\.?|item|option|product)\s*(\d{1,2})\b", re.I)
_LAST = re.compile(r"\b(?:last|final|bottom)\b", re.I)
_QTY = re.compile(
    r"\b(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)\s*(?:x\b|of\b|pieces?\b|pcs\b|pairs?\b|units?\b)",
    re.I,
)
_SIZE = re.compile(r"\b(?:size|sz|in)\s+(xxs|xs|s|m|l|xl|xxl|\d{1,2}(?:\.5)?|\dt|single|double|queen|king)\b", re.I)
_WORD = re.compile(r"[a-z0-9']+")
# Words that point at nothing: "the one with the hood" must not match every title with "The" in it.
_FILLER = frozenset([
    "the", "and", "for", "with", "from", "that", "this", "those", "these", "one", "ones", "its", "it's",
    "you", "your", "please", "want", "like", "would", "could", "can", "get", "add", "show", "tell", "about",
    "more", "just", "also", "some", "any", "all", "not", "but", "are", "was", "has", "have", "them", "they",
    "what", "which", "item", "items", "thing", "product", "products"
])


def positions(text: str, count: int) -> list[int]:
    """0-based positions in a list of ``count`` items that the text refers to, in the order mentioned."""
    found: list[tuple[int, int]] = []
    lowered = text.lower()
    for match in re.finditer(r"[a-z0-9]+", lowered):
        word = match.group(0)
        if word in _ORDINALS:
            found.append((match.start(), _ORDINALS[word] - 1))
    for match in _NUMBER_REF.finditer(lowered):
        found.append((match.start(), int(match.group(1)) - 1))
    for match in _LAST.finditer(lowered):
        found.append((match.start(), count - 1))
    ordered = [pos for _, pos in sorted(found)]
    return [p for p in dict.fromkeys(ordered) if 0 <= p < count]


def by_name(text: str, titles: Sequence[str]) -> list[int]:
    """Positions of titles that share the most distinctive words with the text (ties kept)."""
    words = {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _FILLER}
    scores = []
    for i, title in enumerate(titles):
        title_words = set(_WORD.findall(title.lower()))
        scores.append((len(words & title_words), i))
    best = max((s for s, _ in scores), default=0)
    if best == 0:
        return []
    return [i for s, i in scores if s == best]


def quantity(text: str, default: int = 1) -> int:
    match = _QTY.search(text)
    if not match:
        return default
    value = match.group(1).lower()
    return int(value) if value.isdigit() else _CARDINALS[value]


def size(text: str, available: Sequence[str]) -> str:
    """A size the text names that the product has, or ''."""
    lookup = {s.lower(): s for s in available}
    for match in _SIZE.finditer(text):
        if (wanted := match.group(1).lower()) in lookup:
            return lookup[wanted]
    for token in _WORD.findall(text.lower()):
        if len(token) <= 3 and token in lookup and token not in {"s", "m", "l"}:
            return lookup[token]
    return ""
