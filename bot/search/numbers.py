"""Prices as shoppers say them: number words, currency slang and round figures, rewritten as digits.

"under a hundred quid" -> "under 100 quid", "between twenty and forty" -> "between 20 and 40",
"20ish" -> "around 20", "under 1k" -> "under 1000", "2 grand" -> "2000 grand", "a tenner" -> "10 quid".
Number words and "k" become digits only where they are a price (after "under", "around", "between"...,
or before a currency word), so "two person tent" and "4k tv" keep their words. The query parser's price
patterns then read the digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000}
MONEY_WORDS = frozenset({"bucks", "buck", "dollars", "dollar", "quid", "pounds", "pound", "euros", "euro", "usd",
                         "gbp", "eur", "grand"})
SYMBOLS = frozenset({"$", "€", "£"})
# Words after which a number is a price ("under fifty", "around thirty", "less than twenty", "max forty").
_LEADS = frozenset({"under", "below", "over", "above", "than", "max", "maximum", "min", "minimum", "around", "about",
                    "approximately", "approx", "roughly", "circa", "between", "most", "least", "within", "from",
                    "budget", "upto", "spend", "costing", "priced"})
_JOINERS = frozenset({"to", "and", "-", "–"})
_AFTER = frozenset({"ish", "tops", "max"})
_TOKEN = re.compile(r"[A-Za-z]+|\d+(?:[.,]\d+)*|\S")
_SLANG = {"fiver": 5, "tenner": 10}


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int

    @property
    def lower(self) -> str:
        return self.text.lower()


def _is_digits(token: _Token) -> bool:
    return token.text[0].isdigit()


def _value(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def number_words(words: list[str], start: int = 0) -> tuple[int, int] | None:
    """The number that number words spell from ``words[start]`` on, and how many words it took.

    "a hundred and fifty" -> 150, "twenty-five" (as "twenty", "-", "five") -> 25, "fifteen hundred" -> 1500,
    "two thousand five hundred" -> 2500; None when ``words[start]`` starts no number.
    """
    total = current = 0
    i, seen, last = start, False, ""  # last: kind of the previous number word ("unit", "tens", "scale")
    if i < len(words) and words[i] in ("a", "an") and i + 1 < len(words) and words[i + 1] in SCALES:
        current, i = 1, i + 1
    while i < len(words):
        word = words[i]
        if word in UNITS and last in ("", "tens", "scale") and not (last == "tens" and UNITS[word] >= 10):
            current += UNITS[word]
            last = "unit"
        elif word in TENS and last in ("", "scale"):
            current += TENS[word]
            last = "tens"
        elif word == "hundred" and (seen or current) and last != "scale":
            current = max(current, 1) * 100
            last = "scale"
        elif word == "thousand" and (seen or current or total == 0):
            total += max(current, 1) * 1000
            current, last = 0, "scale"
        elif _joins(words, i, last):  # "twenty-five", "a hundred and fifty"
            i += 1
            continue
        else:
            break
        seen = True
        i += 1
    if not seen:
        return None
    return total + current, i - start


def _joins(words: list[str], i: int, last: str) -> bool:
    following = words[i + 1] if i + 1 < len(words) else ""
    if words[i] == "-":
        return last == "tens" and following in UNITS
    return words[i] == "and" and last == "scale" and (following in UNITS or following in TENS)


def spell_prices(text: str) -> str:
    """``text`` with prices in words and slang rewritten as digits (see the module docstring)."""
    text = re.sub(rf"\b({'|'.join([*UNITS, *TENS])})-?ish\b", r"\1 ish", text, flags=re.I)
    tokens = [_Token(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    words = [t.lower for t in tokens]
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in ``text``
    priced: set[int] = set()  # token positions of numbers that are prices
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.lower in _SLANG:  # "a tenner": money by itself
            start = tokens[i - 1].start if i > 0 and words[i - 1] == "a" else token.start
            edits.append((start, token.end, f"{_SLANG[token.lower]} quid"))
            priced.add(i)
            i += 1
            continue
        if words[i] in ("a", "an") and i + 1 < len(tokens) and words[i + 1] == "grand":  # "a grand"
            edits.append((token.start, token.end, "1000"))
            priced.update((i, i + 1))
            i += 2
            continue
        if _is_digits(token):
            value, taken = _value(token.text), 1
        else:
            found = number_words(words, i)
            if found is None:
                i += 1
                continue
            value, taken = float(found[0]), found[1]
        end = i + taken  # first token after the number
        if value is None:
            i = end
            continue
        adjacent = end < len(tokens) and tokens[end].start == tokens[end - 1].end
        thousand = end < len(tokens) and words[end] == "k" and adjacent  # "1k", "1.5k"
        last = end + (1 if thousand else 0)  # first token after the number and its "k"
        grand = last < len(words) and words[last] == "grand"
        if not (grand or _is_price(words, i, last, priced)):
            i = end
            continue
        priced.update(range(i, last))
        amount = value * (1000 if thousand or grand else 1)
        replacement = f"{amount:g}" if amount < 1e6 else f"{amount:.0f}"
        if last < len(tokens) and words[last] == "ish":  # "20ish", "twenty ish": around 20
            edits.append((token.start, tokens[last].end, f"around {replacement}"))
            i = last + 1
            continue
        if last < len(tokens) and words[last] == "-" and last + 1 < len(tokens) and words[last + 1] == "ish":
            edits.append((token.start, tokens[last + 1].end, f"around {replacement}"))
            i = last + 2
            continue
        if _is_digits(token) and not thousand and not grand:  # already digits: nothing to rewrite
            i = end
            continue
        edits.append((token.start, tokens[last - 1].end, replacement))
        i = last
    for start, end, replacement in reversed(edits):
        text = text[:start] + replacement + text[end:]
    return text


def _is_price(words: list[str], start: int, end: int, priced: set[int]) -> bool:
    """Whether the number in ``words[start:end]`` is a price, from the words around it."""
    before = [w for w in words[max(0, start - 3): start] if w not in SYMBOLS]
    after = words[end: end + 2]
    if start > 0 and words[start - 1] in SYMBOLS:
        return True
    if after and (after[0] in MONEY_WORDS or after[0] in SYMBOLS or after[0] in _AFTER):
        return True
    if after[:2] in (["or", "less"], ["or", "more"], ["or", "under"], ["or", "below"], ["and", "up"],
                     ["and", "under"], ["or", "cheaper"], ["-", "ish"]):
        return True
    if not before:
        return False
    previous = before[-1]
    if previous in _LEADS:
        return True
    if previous in ("of", "is") and len(before) > 1 and before[-2] == "budget":  # "budget of fifty"
        return True
    if previous == "to" and len(before) > 1 and before[-2] == "up":  # "up to fifty"
        return True
    if previous in _JOINERS:  # "twenty to forty", "between 20 and forty": the number before is a price
        first = start - 2
        while first >= 0 and (words[first] in SYMBOLS or words[first] in MONEY_WORDS):
            first -= 1
        return first in priced
    return False
