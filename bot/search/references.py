"""Resolving what a shopper points at: "the second one", "the last", "the Sony ones", "2 of those",
and the short answers to "Which size?" / "Which color?" ("medium please", "a 10", "the black one")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.search.numbers import TENS, UNITS

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


# Sizes by name, as shoppers type them after "Which size?"
_SIZE_NAMES = {
    "extra small": "XS", "x small": "XS", "xsmall": "XS", "small": "S", "medium": "M", "med": "M", "large": "L",
    "extra large": "XL", "x large": "XL", "xlarge": "XL", "extra extra large": "XXL", "double extra large": "XXL",
    "xx large": "XXL", "xxlarge": "XXL", "double xl": "XXL", "2xl": "XXL", "3xl": "XXXL", "xxx large": "XXXL",
}
_LETTER_SIZES = {"xxs", "xs", "s", "m", "l", "xl", "xxl", "xxxl"}
# Words around an answer that say nothing about it: "the medium one please", "I'll take a 10".
_ANSWER_FILLER = frozenset([
    "the", "a", "an", "one", "ones", "in", "size", "sz", "colour", "color", "please", "pls", "plz", "thanks", "thank",
    "you", "thx", "ty", "i", "i'll", "ill", "i'd", "id", "i'm", "im", "take", "want", "like", "would", "get", "go",
    "with", "for", "me", "it", "that", "those", "this", "ok", "okay", "yes", "yeah", "yep", "sure", "oh", "um", "uh",
    "hmm", "just", "then", "let's", "lets", "make", "add", "to", "my", "cart", "basket", "pair", "of", "is", "fine",
    "will", "need", "cool", "great", "perfect", "wear", "usually", "am", "no", "sorry", "actually", "mean", "meant",
    "do", "have", "got", "option", "version", "variant",
])
_ANSWER_TOKEN = re.compile(r"\d+(?:\.\d+)?[a-z]?|[a-z']+")


def _size_word(word: str) -> str | None:
    """A size that one word names on its own: "xl", "10", "10.5", "2t", "ten"; None otherwise."""
    if word in _LETTER_SIZES or re.fullmatch(r"\d{1,2}(?:\.5)?|\d[t]|\d{2,3}", word):
        return word.upper()
    value = UNITS.get(word, TENS.get(word))
    return str(value) if value is not None and value > 1 else None


def variant_answer(text: str, sizes: Sequence[str], colors: Sequence[str],
                   known_colors: Sequence[str] = ()) -> tuple[str, str] | None:
    """The (size, color) a short answer names, or None when the text is anything more than such an answer.

    "M", "medium please" -> ("M", ""); "size 10", "a 10", "ten" -> ("10", ""); "the black one" -> ("", "Black").
    Values are spelled as in ``sizes`` and ``colors`` when the product has them, else as typed (upper case for
    sizes) so the caller can say the product does not come in that; ``known_colors`` are the other colors a
    shopper may name (the catalog's).
    """
    words = _ANSWER_TOKEN.findall(text.lower().replace("-", " "))
    size_lookup = {s.lower(): s for s in sizes}
    color_lookup = {c.lower(): c for c in known_colors} | {c.lower(): c for c in colors}
    phrases = sorted([*(p for p in _SIZE_NAMES), *color_lookup, *(s for s in size_lookup if " " in s)],
                     key=lambda p: -len(p.split()))
    found_sizes: list[str] = []
    found_colors: list[str] = []
    i = 0
    while i < len(words):
        for phrase in phrases:
            parts = phrase.split()
            if words[i: i + len(parts)] == parts:
                if phrase in color_lookup:
                    found_colors.append(color_lookup[phrase])
                else:
                    found_sizes.append(size_lookup.get(phrase) or _SIZE_NAMES[phrase])
                i += len(parts)
                break
        else:
            word = words[i]
            if word in ("size", "sz") and i + 1 < len(words) and (named := size_lookup.get(words[i + 1])
                                                                   or _size_word(words[i + 1])):
                found_sizes.append(named)
                i += 2
                continue
            if word in size_lookup:
                found_sizes.append(size_lookup[word])
            elif (named := _size_word(word)) is not None:
                found_sizes.append(size_lookup.get(named.lower(), named))
            elif word not in _ANSWER_FILLER:
                return None
            i += 1
    if len({s.lower() for s in found_sizes}) > 1 or len({c.lower() for c in found_colors}) > 1:
        return None
    if not found_sizes and not found_colors:
        return None
    size = found_sizes[0] if found_sizes else ""
    return size_lookup.get(size.lower(), size), (found_colors[0] if found_colors else "")
